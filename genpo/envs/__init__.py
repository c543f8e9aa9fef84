"""Batched environments behind the :class:`~genpo.envs.base.BatchedEnv` seam (registered as kind ``env``).

Importing this package imports every module in it (discovery), which registers their envs; a new env is
a new file with a ``@register("env", name)`` class. One module is left out on purpose:

- ``isaaclab``: the Isaac Lab adapter. It registers nothing (``isaaclab:<task>`` names are resolved by
  ``genpo.builders.env``, which imports it on use) and belongs to the optional ``isaaclab`` extra, so
  ``import genpo`` never loads it. Its module level only imports torch and tensordict today, but keeping
  it out of discovery means an Isaac Lab import added there later can never reach ``import genpo``.
"""

from genpo.envs.base import BatchedEnv
from genpo.envs.gym_adapter import GymnasiumBatchedEnv
from genpo.registry import discover

# Modules only imported on use: adapters of optional extras (see the docstring).
ON_USE_ONLY = ("isaaclab",)

discover(__name__, exclude=ON_USE_ONLY)

__all__ = ["BatchedEnv", "GymnasiumBatchedEnv"]
