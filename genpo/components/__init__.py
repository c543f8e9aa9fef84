"""Registered components: importing this package registers them all."""

from genpo.components import actors, couplings, estimators, flows, networks  # noqa: F401
