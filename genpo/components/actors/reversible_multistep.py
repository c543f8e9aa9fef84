"""Reversible multistep flow (BDIA family): an exact likelihood without doubling the executed action.

The sampler is a two-step recurrence over the d-dim action (BDIA, Zhang et al. 2023, written for a
flow integrated from t = 0 to t = 1; t_k = k/N, dt = 1/N, v = v(x, s, t))::

    x_0     = z_0
    x_1     = x_0 + dt v(x_0, t_0) + s_0 z_1                          (first Euler step + start noise)
    x_{k+1} = a_k x_k + b_k x_{k-1} + c_k dt v(x_k, t_k),   k = 1 .. N-1
    BDIA:     a_k = 1 - gamma,  b_k = gamma,  c_k = 1 + gamma

with base noise ``z = (z_0, z_1) ~ N(0, I_2d)``. gamma = 1 is the leapfrog/midpoint rule
``x_{k+1} = x_{k-1} + 2 dt v(x_k)``; gamma -> 0 tends to plain Euler (not invertible). Every step is
consistent with Euler (substituting x_{k-1} = x_k - dt v gives x_{k+1} = x_k + dt v). The extra mode of
the two-step recurrence (the difference between consecutive states) decays like (-gamma)^k.

Exact inverse, k = N-1 .. 1, then the start::

    x_{k-1} = (x_{k+1} - a_k x_k - c_k dt v(x_k, t_k)) / b_k           (needs b_k != 0)
    z_0 = x_0,   z_1 = (x_1 - x_0 - dt v(x_0, t_0)) / s_0

**What is exact.** The map z = (z_0, z_1) in R^2d -> (x_{N-1}, x_N) in R^2d is a bijection. The start
is a shear plus a scaling (log|det| = d log s_0) and each step (x_{k-1}, x_k) -> (x_k, x_{k+1}) has
Jacobian ``[[0, I], [b_k I, a_k I + c_k dt dv/dx]]`` with |det| = |b_k|^d, so::

    log|det d(x_{N-1}, x_N) / dz| = d log s_0 + d sum_{k=1}^{N-1} log|b_k|        (a constant)
    log pi(x_{N-1}, x_N | s)       = log N(z; 0, I_2d) - that constant

This is the exact density of the final *state pair*, not of the action x_N alone (whose marginal has no
closed form). The env sees x_N (dimension d); the buffer stores the history state ``previous_state`` =
x_{N-1} [*B, d] next to ``action`` = x_N, and PPO's ratio is that of the pair densities. With the
default s_0 = 1 the start has determinant 1 and the log-det is exactly the sum of the d log|b_k| terms.

Why a start noise z_1: a two-step recurrence needs two initial states; if x_1 were the noise-free Euler
step of x_0, the pair would lie on a d-dim manifold of R^2d and have no density. s_0 z_1 spreads it
into R^2d (s_0 -> 0 recovers the noise-free start, at the cost of an ill-conditioned inverse).

Round-trip error grows like 1 / (s_0 prod_k |b_k|) = gamma^-(N-1) / s_0. Subclasses change the family
by overriding :meth:`ReversibleMultistepActor.coefficients` (e.g. per-step or BELM-style
coefficients); the log-det follows from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from genpo.components.actors.base import LOG_2PI, standard_normal_log_prob
from genpo.components.actors.velocity_flow import VelocityFlowActor
from genpo.components.networks.velocity_network import VelocityMLP
from genpo.registry import register


@register("actor", "reversible_multistep")
class ReversibleMultistepActor(VelocityFlowActor):
    """BDIA-gamma two-step flow over the action; exact density of (x_{N-1}, x_N) with a constant log-det.

    Stored: ``action`` = x_N [*B, d] and ``previous_state`` = x_{N-1} [*B, d]. Base noise: (z_0, z_1),
    [*B, 2d]; zeros give the deterministic action. ``log_prob`` is one inverse pass (N velocity calls)
    plus a constant; no Jacobian.
    """

    sample_keys = ("previous_state",)

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
        gamma: float = 0.9,
        start_noise_scale: float = 1.0,
    ):
        super().__init__(observation_dim, action_dim, velocity_network=velocity_network, num_steps=num_steps)
        name = type(self).__name__
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"{name}: gamma must be in (0, 1] (b_k = gamma must be nonzero), got {gamma!r}")
        if not (start_noise_scale > 0 and math.isfinite(start_noise_scale)):
            raise ValueError(f"{name}: start_noise_scale must be finite and > 0, got {start_noise_scale!r}")
        self.gamma = float(gamma)
        self.start_noise_scale = float(start_noise_scale)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, gamma={self.gamma}, start_noise_scale={self.start_noise_scale}"

    @property
    def noise_dim(self) -> int:
        return 2 * self.action_dim

    def coefficients(self, step: int) -> tuple[float, float, float]:
        """(a_k, b_k, c_k) of step k = 1 .. N-1: ``x_{k+1} = a_k x_k + b_k x_{k-1} + c_k dt v(x_k, t_k)``."""
        return 1.0 - self.gamma, self.gamma, 1.0 + self.gamma

    @property
    def constant_log_det(self) -> float:
        """log|det d(x_{N-1}, x_N)/dz| = d log s_0 + d sum_k log|b_k|: weights-, state- and noise-free."""
        log_b = sum(math.log(abs(self.coefficients(step)[1])) for step in range(1, self.num_steps))
        return self.action_dim * (math.log(self.start_noise_scale) + log_b)

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        contexts = self.contexts(observation)
        z_0, z_1 = noise.chunk(2, dim=-1)
        previous = z_0
        current = z_0 + self.dt * self.step_fields(z_0, contexts, 0) + self.start_noise_scale * z_1
        for step in range(1, self.num_steps):
            a, b, c = self.coefficients(step)
            velocity = self.step_fields(current, contexts, step)
            previous, current = current, a * current + b * previous + c * self.dt * velocity
        tensordict.set("previous_state", previous)
        tensordict.set("action", current)
        tensordict.set("action_log_prob", standard_normal_log_prob(noise) - self.constant_log_det)
        return tensordict

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        """z = (z_0, z_1) from the stored pair (x_{N-1}, x_N) by the exact inverse recurrence."""
        observation = self.observation(tensordict)
        previous = self.stored(tensordict, "previous_state", self.action_dim)
        current = self.stored(tensordict, "action", self.action_dim)
        contexts = self.contexts(observation)
        for step in reversed(range(1, self.num_steps)):
            a, b, c = self.coefficients(step)
            velocity = self.step_fields(previous, contexts, step)
            previous, current = (current - a * previous - c * self.dt * velocity) / b, previous
        z_1 = (current - previous - self.dt * self.step_fields(previous, contexts, 0)) / self.start_noise_scale
        return torch.cat([previous, z_1], dim=-1)

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        return standard_normal_log_prob(self.inverse(tensordict)) - self.constant_log_det

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Entropy of the pair density: ``d (1 + log 2 pi) + log|det|``, a constant."""
        observation = self.observation(tensordict)
        value = self.action_dim * (1.0 + LOG_2PI) + self.constant_log_det
        return torch.full(observation.shape[:-1], value, dtype=observation.dtype, device=observation.device)
