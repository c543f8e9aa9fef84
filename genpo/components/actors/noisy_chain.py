"""Noisy flow chains: DPPO (fixed per-step sigma) and ReinFlow (learned, bounded sigma).

Both schemes share :class:`NoisyChainActor`; they differ only in where the per-step noise scale comes
from (:meth:`NoisyChainActor.step_sigma`).

The chain over N steps from x_0 ~ N(0, I_d)::

    x_{k+1} = m_k(x_k) + sigma_k eps_k,   eps_k ~ N(0, I_d),   k = 0 .. N-1
    action  = x_N

The stored sample is the whole chain ``chain`` [*B, N+1, d] (x_0 ... x_N); its log-likelihood is exact::

    log pi(chain | s) = log N(x_0; 0, I) + sum_k log N(x_{k+1}; m_k(x_k), sigma_k^2 I)

**What the ODE solver changes.** The drift ``m_k(x_k)`` is one step of the actor's ``solver`` (an
``ode_solver`` component) on the velocity field from x_k at t_k: Euler (the default, DPPO's and
ReinFlow's own chain) gives ``x_k + dt v(x_k, s, t_k)``; midpoint / Heun / RK4 evaluate v at further
points that are all functions of x_k alone. **What stays Euler(-Maruyama):** the noise is added once per
step, after the deterministic step, with sigma_k taken at (x_k, t_k) (ReinFlow's head reads the first
stage's network output). So x_{k+1} given x_k stays Gaussian with mean m_k(x_k) and covariance
sigma_k^2 I, the chain's Jacobian stays triangular with diagonal sigma, and the likelihood, the inverse
and DPPO's constant entropy are exact for every solver; noise inside the stages would make the
transition non-Gaussian. A k-stage solver costs k network calls per step, in sampling and in
``log_prob``. Zero noise gives the deterministic solver path (deterministic evaluation).

(the density of the *chain*, not of the action x_N alone, whose marginal has no closed form; PPO on the
chain is the "denoising MDP" view of DPPO and ReinFlow). The base noise is
``(x_0, eps_0, ..., eps_{N-1})`` flattened to [*B, (N+1) d]: :meth:`~NoisyChainActor.inverse` returns it
from the stored chain, and zeros give the deterministic Euler action. ``log_prob`` evaluates all N
steps of the stored chain in one batched network call (no sequential loop).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase

from genpo.components.actors.base import LOG_2PI, standard_normal_log_prob
from genpo.components.actors.velocity_flow import VelocityFlowActor
from genpo.components.networks.velocity_network import VelocityMLP
from genpo.components.ode_solvers import ODESolver, check_solver
from genpo.registry import register


class NoisyChainActor(VelocityFlowActor):
    """Base of the Gaussian-chain schemes; subclasses define :meth:`step_sigma` (sigma > 0 always).

    ``solver``: the ODE solver of each step's drift (Euler when None; see the module doc for what it
    changes and what stays Euler).
    """

    sample_keys = ("chain",)
    log_prob_term_reduction = "sum"

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
        sigma_min: float = 0.1,
        solver: ODESolver | None = None,
    ):
        super().__init__(observation_dim, action_dim, velocity_network=velocity_network, num_steps=num_steps)
        if not sigma_min > 0:
            raise ValueError(f"{type(self).__name__}: sigma_min must be > 0 (the chain needs noise), got {sigma_min!r}")
        self.sigma_min = float(sigma_min)
        self.solver = check_solver(type(self).__name__, solver)

    @property
    def noise_dim(self) -> int:
        return (self.num_steps + 1) * self.action_dim

    def step_sigma(self, extra_field: torch.Tensor | None, step: int | None) -> torch.Tensor:
        """sigma_k, broadcastable to the state: at step ``step``, or for all steps stacked on dim -2
        when ``step`` is None. ``extra_field`` is the network's second output field (None if it has one)."""
        raise NotImplementedError

    def split_fields(self, fields: torch.Tensor, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        velocity, *extra = fields.chunk(self.velocity_fields, dim=-1)
        return velocity, self.step_sigma(extra[0] if extra else None, step)

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        start = noise[..., : self.action_dim]
        step_noise = noise[..., self.action_dim :].unflatten(-1, (self.num_steps, self.action_dim))
        chain, log_scales = self.integrate(observation, start, step_noise)
        terms = standard_normal_log_prob(step_noise) - log_scales
        tensordict.set("chain", chain)
        tensordict.set("action", chain[..., -1, :])
        tensordict.set("action_log_prob", standard_normal_log_prob(start) + terms.sum(-1))
        tensordict.set("action_log_prob_terms", terms)
        return tensordict

    def _invert(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_0 [*B, d], step noise eps_k [*B, N, d], per step sum_j log sigma_kj [*B, N]) reproducing the
        stored chain, all steps in one network call."""
        observation = self.observation(tensordict)
        chain = self.stored(tensordict, "chain", self.action_dim)
        if chain.dim() < 2 or chain.shape[-2] != self.num_steps + 1:
            raise ValueError(
                f"{type(self).__name__}: 'chain' has shape {tuple(chain.shape)}, expected [..., "
                f"{self.num_steps + 1}, {self.action_dim}] (num_steps + 1 states)"
            )
        observation_context, stages = self.stage_contexts(observation, self.solver)
        observation_context = observation_context.unsqueeze(-2)
        states, following = chain[..., :-1, :], chain[..., 1:, :]

        def velocity(state: torch.Tensor, stage: int) -> torch.Tensor:
            return self.split_fields(self.fields(state, observation_context + stages[stage]), None)[0]

        first, scale = self.split_fields(self.fields(states, observation_context + stages[0]), None)
        step_noise = (following - self.solver.step(velocity, states, self.dt, first=first)) / scale
        return chain[..., 0, :], step_noise, scale.log().expand_as(states).sum(-1)

    def log_prob_terms(self, tensordict: TensorDictBase) -> torch.Tensor:
        """log N(x_{k+1}; m_k(x_k), sigma_k^2 I) per step [*B, N]: DPPO's per-denoising-step terms (x_0's
        density, the rest of log_prob, does not depend on the weights)."""
        _, step_noise, log_scales = self._invert(tensordict)
        return standard_normal_log_prob(step_noise) - log_scales

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        start, step_noise, log_scales = self._invert(tensordict)
        return standard_normal_log_prob(start) + (standard_normal_log_prob(step_noise) - log_scales).sum(-1)

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        """``(x_0, eps_0, ..., eps_{N-1})`` flattened: the noise that reproduces the stored chain."""
        start, step_noise, _ = self._invert(tensordict)
        return torch.cat([start, step_noise.flatten(-2)], dim=-1)


@register("actor", "dppo")
class DPPOActor(NoisyChainActor):
    """DPPO (Ren et al. 2024) on a flow sampler: a fixed per-step sigma_k, floored at ``sigma_min``.

    ``sigma`` is one value for every step or a sequence of ``num_steps`` values (a schedule, e.g.
    decreasing); each is raised to at least ``sigma_min`` (DPPO's exploration floor, 0.1), so the chain
    density always exists. sigma is a buffer, not learned. The chain's entropy is then a constant,
    ``(N+1) d (1 + log 2 pi) / 2 + d sum_k log sigma_k`` (:meth:`entropy`).
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
        sigma: float | Sequence[float] = 0.1,
        sigma_min: float = 0.1,
        solver: ODESolver | None = None,
    ):
        super().__init__(
            observation_dim,
            action_dim,
            velocity_network=velocity_network,
            num_steps=num_steps,
            sigma_min=sigma_min,
            solver=solver,
        )
        sigmas = torch.as_tensor(sigma, dtype=torch.float64).flatten()
        if sigmas.numel() == 1:
            sigmas = sigmas.expand(num_steps)
        if sigmas.numel() != num_steps or not bool((sigmas >= 0).all()):
            raise ValueError(
                f"{type(self).__name__}: sigma must be one value >= 0 or {num_steps} of them (one per step), "
                f"got {sigma!r}"
            )
        self.register_buffer("sigmas", sigmas.clamp(min=self.sigma_min).float())

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, sigmas={[round(s, 4) for s in self.sigmas.tolist()]}"

    def step_sigma(self, extra_field: torch.Tensor | None, step: int | None) -> torch.Tensor:
        return self.sigmas[step] if step is not None else self.sigmas.unsqueeze(-1)

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor:
        observation = self.observation(tensordict)
        d = self.action_dim
        value = 0.5 * (self.num_steps + 1) * d * (1.0 + LOG_2PI) + d * self.sigmas.double().log().sum().item()
        return torch.full(observation.shape[:-1], value, dtype=observation.dtype, device=observation.device)


@register("actor", "reinflow")
class ReinFlowActor(NoisyChainActor):
    """ReinFlow (Zhang et al. 2025): a learned, state-dependent sigma bounded in [sigma_min, sigma_max].

    The velocity network gets a second output field h (its last layer is the small noise head):
    ``sigma_k = sigma_min + (sigma_max - sigma_min) * sigmoid(h(x_k, s, t_k))`` per action dimension.
    sigma_k depends only on x_k (not on x_{k+1}), so the chain's Jacobian stays triangular and the
    likelihood stays exact; its log-det ``sum_k sum_j log sigma_kj`` now depends on the weights and
    the state, so the chain entropy is not a constant; :meth:`entropy` gives it given the stored states.
    """

    velocity_fields = 2

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
        sigma_min: float = 0.1,
        sigma_max: float = 0.3,
        solver: ODESolver | None = None,
    ):
        super().__init__(
            observation_dim,
            action_dim,
            velocity_network=velocity_network,
            num_steps=num_steps,
            sigma_min=sigma_min,
            solver=solver,
        )
        if not sigma_max > self.sigma_min or not math.isfinite(sigma_max):
            raise ValueError(
                f"{type(self).__name__}: sigma_max must be finite and > sigma_min={sigma_min}, got {sigma_max!r}"
            )
        self.sigma_max = float(sigma_max)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, sigma in [{self.sigma_min}, {self.sigma_max}]"

    def step_sigma(self, extra_field: torch.Tensor | None, step: int | None) -> torch.Tensor:
        return self.sigma_min + (self.sigma_max - self.sigma_min) * torch.sigmoid(extra_field)

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor:
        """ReinFlow's entropy of the chain given its stored states, per state (differentiable in the noise
        head): ``H(x_0) + sum_k H(x_{k+1} | x_k) = (N+1) d (1 + log 2 pi) / 2 + sum_k sum_j log sigma_kj(x_k)``.

        Each step's Gaussian entropy is exact given x_k, so over chains drawn from the policy its mean is
        the chain's entropy (the expectation of -log pi). ReinFlow's entropy bonus maximises this (with
        ``loss.ppo.log_prob_normalization = 'noise_dim'``, per noise dimension, as ReinFlow divides it by
        the N+1 densities and the d action dims): it pushes sigma towards ``sigma_max``.
        """
        _, _, log_scales = self._invert(tensordict)
        return 0.5 * self.noise_dim * (1.0 + LOG_2PI) + log_scales.sum(-1)
