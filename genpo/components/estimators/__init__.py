"""Entropy and KL estimators."""

from genpo.components.estimators import entropy, kl  # noqa: F401
