"""Invertible coupling steps on the dummy action pair (x, y)."""

from genpo.components.couplings import affine, genpo_euler, leapfrog  # noqa: F401
