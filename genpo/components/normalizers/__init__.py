"""Observation normalisers and reward scalers."""

from genpo.components.normalizers import observation, reward  # noqa: F401
