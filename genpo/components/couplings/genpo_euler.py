"""GenPO's coupled Euler step with mixing (EDICT-style), the default coupling."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from genpo.registry import register

Velocity = Callable[[torch.Tensor], torch.Tensor]


@register("coupling", "genpo")
class GenPOCoupling(nn.Module):
    """One exactly invertible step on the pair (x, y) (docs/method.md §3).

    Forward, with the updated half feeding the next update::

        x' = x + dt v(y);  y' = y + dt v(x');  x1 = p x' + (1-p) y';  y1 = p y' + (1-p) x1

    Each shear has determinant 1 and each mixing ``p^d``, so a step's log|det| is the constant
    ``2 d log p``; the inverse divides by p twice, so round-trip error grows like ``p^(-2N)``.

    Subclasses change the shear (:meth:`shear` / :meth:`unshear`, e.g. a learned scale whose
    log-det depends on the state) or which half goes first (:meth:`x_first`). Every registered
    coupling states ``state_independent_log_det`` in its own body (the registry checks it).
    """

    # Each step's log|det| is exactly constant_log_det(d): the shears return no state-dependent term.
    state_independent_log_det = True
    fields_per_half = 1

    def __init__(self, p: float = 0.9):
        super().__init__()
        if not 0.0 < p <= 1.0:
            raise ValueError(f"{type(self).__name__}: mixing coefficient p must be in (0, 1], got {p!r}")
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def constant_log_det(self, half_dim: int) -> float:
        """The part of one step's log|det dF/dz| that does not depend on the state: the two mixings."""
        return 2.0 * half_dim * math.log(self.p)

    def x_first(self, step: int) -> bool:
        """Whether step ``step`` updates x before y."""
        return True

    def shear(self, target: torch.Tensor, field: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Update ``target`` from the velocity-network output ``field``; returns (new, log-det or None)."""
        return target + dt * field, None

    def unshear(self, target: torch.Tensor, field: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Exact inverse of :meth:`shear`; the log-det is that of the forward shear."""
        return target - dt * field, None

    def forward_step(
        self, x: torch.Tensor, y: torch.Tensor, velocity: Velocity, dt: float, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x_i, y_i) -> (x_{i+1}, y_{i+1}, state-dependent log-det term or None)."""
        first, second = (x, y) if self.x_first(step) else (y, x)
        first, log_det_first = self.shear(first, velocity(second), dt)
        second, log_det_second = self.shear(second, velocity(first), dt)
        first = self.p * first + (1.0 - self.p) * second
        second = self.p * second + (1.0 - self.p) * first
        x, y = (first, second) if self.x_first(step) else (second, first)
        return x, y, add_log_det_terms(log_det_first, log_det_second)

    def inverse_step(
        self, x: torch.Tensor, y: torch.Tensor, velocity: Velocity, dt: float, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x_{i+1}, y_{i+1}) -> (x_i, y_i, the forward step's state-dependent log-det term or None)."""
        first, second = (x, y) if self.x_first(step) else (y, x)
        second = (second - (1.0 - self.p) * first) / self.p
        first = (first - (1.0 - self.p) * second) / self.p
        second, log_det_second = self.unshear(second, velocity(first), dt)
        first, log_det_first = self.unshear(first, velocity(second), dt)
        x, y = (first, second) if self.x_first(step) else (second, first)
        return x, y, add_log_det_terms(log_det_first, log_det_second)


def add_log_det_terms(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """Sum of two optional log-det terms (None stands for a zero that was never materialised)."""
    if a is None:
        return b
    return a if b is None else a + b
