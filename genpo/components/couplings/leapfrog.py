"""Alternating-order (leapfrog) variant of the GenPO coupling."""

from __future__ import annotations

from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.registry import register


@register("coupling", "leapfrog")
class LeapfrogCoupling(GenPOCoupling):
    """GenPO's step with the update order alternating: x first on even steps, y first on odd ones.

    Removes the fixed x-before-y asymmetry of the plain coupling (x always sees an older y);
    the log-det is the same constant ``2 d log p`` per step.
    """

    state_independent_log_det = True  # the plain coupling's shears and mixings, reordered

    def x_first(self, step: int) -> bool:
        return step % 2 == 0
