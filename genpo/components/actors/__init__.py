"""Actors: policies that follow the actor contract (see docs/actor_contract.md)."""

from genpo.components.actors import gaussian, genpo_flow, readout  # noqa: F401
from genpo.components.actors.base import Actor

__all__ = ["Actor"]
