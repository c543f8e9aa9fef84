"""The KL between the rollout policy's and the current policy's *env action*, from moment-matched Gaussians.

Why: ``k1``/``k3`` estimate the KL of the density the likelihood is defined on. For GenPO that is the
doubled action (x, y), and by the chain rule its KL is the action's plus E_a[KL of the hidden half given
a], so a target on it is a tighter trust region than the same target on a Gaussian's action KL. The action
has no tractable density under GenPO, but it can be sampled; this estimator compares the action's first
two moments under the two policies.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torch.func import functional_call

from genpo.components.actors.base import Actor
from genpo.components.estimators.kl import KLEstimator
from genpo.registry import register


def exact_moment_noise(states: int, count: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Standard-normal-like noise [states, count, dim] whose sample mean is exactly 0 and sample covariance
    (divisor count - 1) exactly I at every state: random Gaussian draws, centred and orthonormalised.
    Needs ``count > dim``."""
    draws = torch.randn(states, count, dim, dtype=torch.float64, device=like.device)
    orthonormal, _ = torch.linalg.qr(draws - draws.mean(-2, keepdim=True))
    return (math.sqrt(count - 1) * orthonormal).to(like.dtype)


def gaussian_kl(p_samples: torch.Tensor, q_samples: torch.Tensor) -> torch.Tensor:
    """KL(N(m_p, S_p) || N(m_q, S_q)) of the sample means and covariances of each batch row's point clouds
    [*B, n, d] -> [*B], in float64."""
    p_samples, q_samples = p_samples.double(), q_samples.double()
    dim, count = p_samples.shape[-1], p_samples.shape[-2]
    mean_p, mean_q = p_samples.mean(-2), q_samples.mean(-2)
    centred_p, centred_q = p_samples - mean_p.unsqueeze(-2), q_samples - mean_q.unsqueeze(-2)
    covariance_p = centred_p.transpose(-1, -2) @ centred_p / (count - 1)
    covariance_q = centred_q.transpose(-1, -2) @ centred_q / (q_samples.shape[-2] - 1)
    cholesky_p, cholesky_q = torch.linalg.cholesky(covariance_p), torch.linalg.cholesky(covariance_q)
    trace = torch.cholesky_solve(covariance_p, cholesky_q).diagonal(dim1=-2, dim2=-1).sum(-1)
    whitened = torch.linalg.solve_triangular(cholesky_q, (mean_q - mean_p).unsqueeze(-1), upper=False).squeeze(-1)
    log_det_q = 2.0 * cholesky_q.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_det_p = 2.0 * cholesky_p.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace - dim + whitened.pow(2).sum(-1) + log_det_q - log_det_p)


def sample_actions(
    actor: Actor, observation: torch.Tensor, noise: torch.Tensor, parameters: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """The env actions of base noise [S, n, noise_dim] at states [S, observation_dim] -> [S, n, action_dim],
    under the actor's current parameters or ``parameters`` (a state dict of the same actor)."""
    states, count = noise.shape[0], noise.shape[1]
    repeated = observation.unsqueeze(1).expand(states, count, observation.shape[-1])
    batch = TensorDict({actor.observation_key: repeated}, batch_size=[states, count])
    if parameters is None:
        return actor.sample(batch, noise)["action"]
    return functional_call(actor, parameters, (batch,), {"noise": noise})["action"]


@register("kl_estimator", "gaussian_action")
class GaussianActionKL(KLEstimator):
    """KL(pi_old(a|s) || pi_theta(a|s)) of the env action, averaged over up to ``num_states`` minibatch
    states, between the Gaussians with the action's mean and covariance under each policy.

    At each state both policies map the same ``num_samples`` base noises, chosen with sample mean exactly 0
    and sample covariance exactly I; the rollout policy is a parameter snapshot taken in
    :meth:`start_update`. Where the action is Gaussian given the state (the Gaussian actor; a GenPO flow
    affine in its noise) the moments, and so the KL, are exact: no sampling error. Otherwise it is the KL
    of the moment-matched Gaussians (benchmarks/kl_units.py checks that approximation on the doubled
    action, where the exact KL is known). It is the KL of the *unclipped* action.

    Cost per minibatch: ``2 x num_samples x num_states`` actor sampling passes without gradients, a QR of
    [num_samples, noise_dim] and two Cholesky factorisations of [action_dim, action_dim] per state; per
    update a copy of the actor's parameters: +55 % per minibatch step on HalfCheetah with the defaults
    (docs/results/kl_units/README.md). ``num_samples`` must exceed the actor's ``noise_dim``; by default
    it is ``noise_dim + 8`` (20 for a 6-D GenPO action).
    """

    def __init__(self, num_samples: int | None = None, num_states: int = 64):
        super().__init__()
        name = type(self).__name__
        if num_samples is not None and num_samples < 2:
            raise ValueError(f"{name}: num_samples must be >= 2, got {num_samples!r}")
        if num_states < 1:
            raise ValueError(f"{name}: num_states must be >= 1, got {num_states!r}")
        self.num_samples = num_samples
        self.num_states = num_states
        self.rollout_parameters: dict[str, torch.Tensor] | None = None

    def samples_for(self, actor: Actor) -> int:
        return actor.noise_dim + 8 if self.num_samples is None else self.num_samples

    def start_update(self, actor: Actor) -> None:
        if self.samples_for(actor) <= actor.noise_dim:
            raise ValueError(
                f"kl_estimator.gaussian_action: num_samples ({self.num_samples}) must exceed the actor's noise "
                f"width {actor.noise_dim}; bind kl_estimator.gaussian_action.num_samples = {actor.noise_dim + 8}"
            )
        self.rollout_parameters = {name: value.detach().clone() for name, value in actor.state_dict(keep_vars=True).items()}

    def forward(
        self, actor: Actor, tensordict: TensorDictBase, old_log_prob: torch.Tensor, log_prob: torch.Tensor
    ) -> torch.Tensor:
        if self.rollout_parameters is None:
            raise RuntimeError("kl_estimator.gaussian_action: start_update(actor) must run before an update's first minibatch")
        observation = tensordict.get(actor.observation_key).reshape(-1, actor.observation_dim)
        if observation.shape[0] > self.num_states:
            chosen = torch.randperm(observation.shape[0], device=observation.device)[: self.num_states]
            observation = observation[chosen]
        noise = exact_moment_noise(observation.shape[0], self.samples_for(actor), actor.noise_dim, observation)
        with torch.no_grad():
            old_actions = sample_actions(actor, observation, noise, self.rollout_parameters)
            new_actions = sample_actions(actor, observation, noise)
        return gaussian_kl(old_actions, new_actions).mean().to(observation.dtype)
