"""Batched environments behind the :class:`~genpo.envs.base.BatchedEnv` seam (registered as kind ``env``)."""

from genpo.envs.base import BatchedEnv

__all__ = ["BatchedEnv"]
