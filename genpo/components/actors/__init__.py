"""Actors: policies that follow the actor contract (see docs/actor_contract.md)."""

from genpo.components.actors import (  # noqa: F401
    fpo,
    gaussian,
    genpo_flow,
    noisy_chain,
    readout,
    reversible_multistep,
    velocity_flow,
)
from genpo.components.actors.base import Actor

__all__ = ["Actor"]
