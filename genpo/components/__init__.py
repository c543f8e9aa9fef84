"""Registered components: importing this package registers them all."""

from genpo.components import (  # noqa: F401
    actors,
    advantages,
    couplings,
    estimators,
    flows,
    losses,
    networks,
    normalizers,
    optim,
)
