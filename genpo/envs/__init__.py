"""Batched environments behind the :class:`~genpo.envs.base.BatchedEnv` seam (registered as kind ``env``)."""

from genpo.envs import mujoco_locomotion  # noqa: F401  (registers halfcheetah, hopper, walker2d, ant, humanoid)
from genpo.envs import pendulum  # noqa: F401  (registers "pendulum")
from genpo.envs import two_goals  # noqa: F401  (registers "two_goals")
from genpo.envs.base import BatchedEnv
from genpo.envs.gym_adapter import GymnasiumBatchedEnv

__all__ = ["BatchedEnv", "GymnasiumBatchedEnv"]
