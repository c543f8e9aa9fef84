"""The actor contract shared by every policy the trainer can train."""

from __future__ import annotations

import abc
import math

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(noise: torch.Tensor) -> torch.Tensor:
    """log N(noise; 0, I) summed over the last dimension."""
    return -0.5 * noise.pow(2).sum(-1) - 0.5 * noise.shape[-1] * LOG_2PI


class Actor(TensorDictModuleBase, abc.ABC):
    """A stochastic policy with a likelihood the PPO loss can differentiate.

    Called on a TensorDict with ``observation`` [*B, observation_dim] it writes ``action``
    [*B, action_dim] (what the env receives), ``action_log_prob`` [*B] and the keys in
    :attr:`sample_keys`, the stored sample its likelihood is defined on. :meth:`log_prob` recomputes
    that likelihood under the current parameters; :meth:`inverse` returns the base noise that
    produced the sample; :meth:`sample` takes given base noise (zeros for deterministic evaluation).
    """

    sample_keys: tuple[str, ...] = ()
    observation_key = "observation"
    # False where log_prob is a surrogate, not a log-density (FPO): its k1/k3 "KL" is then no KL, so the
    # trainer refuses an lr controller that reacts to the KL.
    has_likelihood = True
    # 'sum' or 'mean' where log_prob splits into K terms that a per-term PPO ratio (loss.ppo.ratio =
    # 'per_term') clips one by one: the chains' denoising steps (DPPO), FPO's (tau, eps) pairs (FPO++).
    # Such an actor stores the terms at sampling time as ``action_log_prob_terms`` [*B, K], and
    # log_prob(theta) - log_prob(theta_old) is that reduction of the terms' differences.
    log_prob_term_reduction: str | None = None

    def __init__(self, observation_dim: int, action_dim: int):
        super().__init__()
        self.observation_dim = observation_dim
        self.action_dim = action_dim
        self.in_keys = [self.observation_key]
        terms = ["action_log_prob_terms"] if self.log_prob_term_reduction else []
        self.out_keys = ["action", "action_log_prob", *terms, *self.sample_keys]

    @property
    @abc.abstractmethod
    def noise_dim(self) -> int:
        """Width of the base noise one action is sampled from."""

    @abc.abstractmethod
    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        """Write ``action``, ``action_log_prob`` and the sample keys; noise ~ N(0, I) when not given."""

    @abc.abstractmethod
    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Differentiable log-likelihood of the stored sample under the current parameters."""

    @abc.abstractmethod
    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The base noise that maps to the stored sample."""

    def log_prob_terms(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The per-term parts [*B, K] of :meth:`log_prob` (see ``log_prob_term_reduction``), differentiable."""
        raise NotImplementedError(f"{type(self).__name__} does not split its log-likelihood into terms")

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor | None:
        """The analytic entropy per state where it has a closed form, else None."""
        return None

    def forward(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        return self.sample(tensordict, noise)

    def observation(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The observation, checked for width; a wrong width fails naming the actor."""
        observation = tensordict.get(self.observation_key)
        if observation.shape[-1] != self.observation_dim:
            raise ValueError(
                f"{type(self).__name__}: {self.observation_key!r} has width {observation.shape[-1]}, "
                f"expected observation_dim={self.observation_dim}"
            )
        return observation

    def draw_noise(self, observation: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Given noise checked for shape, or fresh N(0, I) noise shaped like the observation batch."""
        shape = (*observation.shape[:-1], self.noise_dim)
        if noise is None:
            return torch.randn(shape, dtype=observation.dtype, device=observation.device)
        if tuple(noise.shape) != shape:
            raise ValueError(f"{type(self).__name__}: noise has shape {tuple(noise.shape)}, expected {shape}")
        return noise

    def stored(self, tensordict: TensorDictBase, key: str, width: int) -> torch.Tensor:
        """A stored sample tensor, checked for width."""
        value = tensordict.get(key)
        if value.shape[-1] != width:
            raise ValueError(f"{type(self).__name__}: {key!r} has width {value.shape[-1]}, expected {width}")
        return value
