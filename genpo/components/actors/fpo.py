"""FPO (McAllister et al. 2025, "Flow Policy Optimization"): a flow-matching policy with a surrogate ratio.

The policy is a conditional flow over the d-dim action, sampled from x_0 ~ N(0, I_d) by N steps of an
ODE solver (``solver``, an ``ode_solver`` component; Euler by default: ``x_{k+1} = x_k + dt v(x_k, s,
t_k)``), action = x_N; zero noise gives the deterministic evaluation action. Its likelihood is never
computed. Instead, at sampling time the actor draws ``num_mc`` (tau, eps) pairs per action (tau ~ U[0, 1),
eps ~ N(0, I_d)) and scores the action with the conditional flow-matching (CFM) loss along the linear
path from eps (t = 0) to the action (t = 1)::

    x_tau     = (1 - tau) eps + tau a,        target velocity  u = a - eps
    L_cfm(theta; a, tau, eps) = mean_j (v_theta(x_tau, s, tau) - u)_j^2       (mean over action dims)
    action_log_prob := -(1 / N_mc) sum_i L_cfm(theta_old; a, tau_i, eps_i)

``cfm_target = 'noise'`` scores the noise the velocity implies instead (FPO's "eps-MSE", its best
setting in the paper's Table 1): ``eps_hat = x_tau - tau v``, so ``|eps_hat - eps|^2 = tau^2 |v - u|^2``,
a weighting towards the action end of the path.

``log_prob(td)`` recomputes the same quantity under the current weights with the *stored* pairs, so the
PPO loss's ratio ``exp(log_prob - action_log_prob)`` is FPO's ``exp(L_old - L_new)``: exactly 1 on
fresh data, above 1 where the current flow fits the sampled action better than the rollout's did.

**This is a surrogate, not a likelihood:** -L_cfm is (up to a weighting and a constant) an ELBO-style
bound on log pi, so the "ratio" only tracks the likelihood ratio's direction. ``action_log_prob`` is
not a normalised log-density; log-prob-based diagnostics (k1/k3 "KL", the sample entropy estimate) are
surrogate quantities too, so the trainer refuses a KL-adaptive learning rate for it
(``has_likelihood = False``). FPO uses a fixed lr, a tighter clip (0.05, ``gin/policies/fpo.gin``), no
entropy term and no compression.

Stored per transition: ``action`` [*B, d], ``fpo_tau`` [*B, N_mc], ``fpo_noise`` [*B, N_mc, d], the
old CFM score as ``action_log_prob`` and its per-pair terms ``-L_cfm(theta_old; a, tau_i, eps_i)`` as
``action_log_prob_terms`` [*B, N_mc] (FPO++'s per-sample ratio, ``loss.ppo.ratio = 'per_term'``, clips
each pair's ``exp(L_old,i - L_i)`` on its own). There is no exact inverse: :meth:`FPOActor.inverse` raises.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from genpo.components.actors.velocity_flow import VelocityFlowActor
from genpo.components.networks.velocity_network import VelocityMLP
from genpo.components.ode_solvers import ODESolver, check_solver
from genpo.registry import register
from genpo.validation import check_positive_int


@register("actor", "fpo")
class FPOActor(VelocityFlowActor):
    """Flow-matching policy whose ``log_prob`` is FPO's surrogate ``-mean_i L_cfm`` (see module doc).

    ``solver``: the ODE solver of the sampler (``@ode_solver.euler()`` when None; ``midpoint``, ``heun``
    and ``rk4`` cost 2, 2 and 4 velocity calls per step). The surrogate does not depend on the sampler,
    so every solver trains with the same loss.
    """

    sample_keys = ("fpo_tau", "fpo_noise")
    exact_likelihood = False
    has_likelihood = False
    log_prob_term_reduction = "mean"
    CFM_TARGETS = ("velocity", "noise")

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
        num_mc: int = 8,
        solver: ODESolver | None = None,
        cfm_target: str = "velocity",
    ):
        super().__init__(observation_dim, action_dim, velocity_network=velocity_network, num_steps=num_steps)
        self.num_mc = check_positive_int(type(self).__name__, "num_mc", num_mc)
        self.solver = check_solver(type(self).__name__, solver)
        if cfm_target not in self.CFM_TARGETS:
            raise ValueError(f"{type(self).__name__}: cfm_target must be one of {self.CFM_TARGETS}, got {cfm_target!r}")
        self.cfm_target = cfm_target

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, num_mc={self.num_mc}, cfm_target={self.cfm_target!r}"

    def solve(self, observation: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """The action: the flow ODE from ``start`` = x_0 over [0, 1] with :attr:`solver`."""
        return self.integrate(observation, start)[0][..., -1, :]

    @property
    def noise_dim(self) -> int:
        return self.action_dim

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        """Sample from ``noise`` = x_0; the (tau, eps) pairs always come from torch's global generator."""
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        action = self.solve(observation, noise)
        shape = (*observation.shape[:-1], self.num_mc)
        tau = torch.rand(shape, dtype=observation.dtype, device=observation.device)
        eps = torch.randn((*shape, self.action_dim), dtype=observation.dtype, device=observation.device)
        terms = -self.cfm_losses(observation, action, tau, eps)
        tensordict.set("action", action)
        tensordict.set("fpo_tau", tau)
        tensordict.set("fpo_noise", eps)
        tensordict.set("action_log_prob", terms.mean(-1))
        tensordict.set("action_log_prob_terms", terms)
        return tensordict

    def cfm_losses(
        self, observation: torch.Tensor, action: torch.Tensor, tau: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        """Per-pair CFM losses [*B, N_mc] (``cfm_target`` 'noise': times tau^2); the observation is
        projected once for all N_mc pairs."""
        net = self.velocity_network
        x_tau = (1.0 - tau).unsqueeze(-1) * eps + tau.unsqueeze(-1) * action.unsqueeze(-2)
        context = net.project_observation(observation).unsqueeze(-2) + net.project_times(tau)
        losses = (net.velocity(x_tau, context) - (action.unsqueeze(-2) - eps)).pow(2).mean(-1)
        return losses * tau.pow(2) if self.cfm_target == "noise" else losses

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The surrogate ``-mean_i L_cfm(theta; a, tau_i, eps_i)`` on the stored pairs (differentiable)."""
        return self.log_prob_terms(tensordict).mean(-1)

    def log_prob_terms(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The per-pair surrogate terms ``-L_cfm(theta; a, tau_i, eps_i)`` [*B, N_mc] on the stored pairs."""
        observation = self.observation(tensordict)
        action = self.stored(tensordict, "action", self.action_dim)
        tau = self.stored(tensordict, "fpo_tau", self.num_mc)
        eps = tensordict.get("fpo_noise")
        if tuple(eps.shape[-2:]) != (self.num_mc, self.action_dim):
            raise ValueError(
                f"{type(self).__name__}: 'fpo_noise' has shape {tuple(eps.shape)}, "
                f"expected [..., {self.num_mc}, {self.action_dim}]"
            )
        return -self.cfm_losses(observation, action, tau, eps)

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__}: FPO has no exact inverse (its ODE sampler is not invertible in closed "
            "form, and its log_prob is a CFM surrogate that needs none); it is not an exact-likelihood scheme"
        )
