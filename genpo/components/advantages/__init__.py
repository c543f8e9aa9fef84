"""Advantage estimators."""

from genpo.components.advantages import gae  # noqa: F401
