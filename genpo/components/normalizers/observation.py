"""Empirical observation normalisation (rsl_rl's ``EmpiricalNormalization`` rule)."""

from __future__ import annotations

import torch

from genpo.components.base import TensorDictComponent
from genpo.validation import check_positive_int
from genpo.components.normalizers.running_moments import RunningMoments
from genpo.registry import register


@register("normalizer", "empirical")
class EmpiricalNormalizer(TensorDictComponent):
    """``(obs - mean) / (std + eps)``, clipped to [-clip, clip] (``clip=None``: not clipped, rsl_rl's
    ``EmpiricalNormalization``), with statistics updated from every collected batch.

    The rollout stores the *normalised* observation, so the statistics may move between sampling and
    update without breaking ``ratio == 1`` on fresh data.
    """

    def __init__(
        self, observation_dim: int, *, key: str = "observation", epsilon: float = 1e-2, clip: float | None = 10.0
    ):
        super().__init__()
        check_positive_int(type(self).__name__, "observation_dim", observation_dim)
        if clip is not None and not clip > 0:
            raise ValueError(f"{type(self).__name__}: clip must be > 0 or None (no clipping), got {clip!r}")
        self.in_keys = [key]
        self.out_keys = [key]
        self.epsilon = epsilon
        self.clip = clip
        self.moments = RunningMoments((observation_dim,))

    def update(self, observation: torch.Tensor) -> None:
        self.moments.update(observation)

    def compute(self, observation: torch.Tensor) -> torch.Tensor:
        mean = self.moments.mean.to(observation.dtype)
        std = self.moments.variance.sqrt().to(observation.dtype)
        normalized = (observation - mean) / (std + self.epsilon)
        return normalized if self.clip is None else normalized.clamp(-self.clip, self.clip)


@register("normalizer", "identity")
class IdentityNormalizer(TensorDictComponent):
    """No normalisation."""

    def __init__(self, observation_dim: int, *, key: str = "observation"):
        super().__init__()
        self.in_keys = [key]
        self.out_keys = [key]

    def update(self, observation: torch.Tensor) -> None:
        """Nothing to track."""

    def compute(self, observation: torch.Tensor) -> torch.Tensor:
        return observation
