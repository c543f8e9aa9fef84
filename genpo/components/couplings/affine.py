"""Affine coupling: GenPO's step with a learned, state-dependent scale on each shear."""

from __future__ import annotations

import torch

from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.registry import register


@register("coupling", "affine")
class AffineCoupling(GenPOCoupling):
    """Each shear becomes ``target * exp(dt * s) + dt * v`` with ``s = scale_bound * tanh(raw)``.

    The velocity network outputs (v, raw) per half (``fields_per_half = 2``). The shear's log|det| is
    ``dt * sum(s)``: it depends on the observation, the time and the other half, so this coupling
    exercises the per-step log-det path that constant-determinant couplings skip. ``scale_bound``
    keeps ``exp(dt * s)`` bounded so the inverse stays well conditioned.
    """

    state_independent_log_det = False  # each shear adds dt * sum(s(state)): no closed-form entropy
    fields_per_half = 2

    def __init__(self, p: float = 0.9, scale_bound: float = 1.0):
        super().__init__(p)
        if not scale_bound > 0:
            raise ValueError(f"{type(self).__name__}: scale_bound must be > 0, got {scale_bound!r}")
        self.scale_bound = float(scale_bound)

    def extra_repr(self) -> str:
        return f"p={self.p}, scale_bound={self.scale_bound}"

    def _shift_and_log_scale(self, field: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw_scale = field.chunk(2, dim=-1)
        return dt * shift, dt * self.scale_bound * torch.tanh(raw_scale)

    def shear(self, target, field, dt):
        shift, log_scale = self._shift_and_log_scale(field, dt)
        return target * log_scale.exp() + shift, log_scale.sum(-1)

    def unshear(self, target, field, dt):
        shift, log_scale = self._shift_and_log_scale(field, dt)
        return (target - shift) * (-log_scale).exp(), log_scale.sum(-1)
