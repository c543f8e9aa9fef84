"""Readouts: the env action from a dummy action (x, y)."""

from __future__ import annotations

import torch

from genpo.components.base import TensorDictComponent
from genpo.registry import register


@register("readout", "linear")
class LinearReadout(TensorDictComponent):
    """``action = alpha * x + (1 - alpha) * y``; alpha = 0.5 (the paper's best) averages the halves."""

    in_keys = ["dummy_action"]
    out_keys = ["action"]

    def __init__(self, alpha: float = 0.5):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{type(self).__name__}: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def compute(self, dummy_action: torch.Tensor) -> torch.Tensor:
        x, y = dummy_action.chunk(2, dim=-1)
        return self.alpha * x + (1.0 - self.alpha) * y
