"""Actors: policies that follow the actor contract (see docs/actor_contract.md).

Every module here is imported by ``genpo.components`` (discovery), which registers its actors.
"""

from genpo.components.actors.base import Actor

__all__ = ["Actor"]
