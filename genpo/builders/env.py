"""Build any environment by name behind the BatchedEnv seam."""

from __future__ import annotations

import gin
import torch

from genpo import registry
from genpo.envs.base import BatchedEnv


@gin.configurable(module="genpo")
def build_env(
    name: str = gin.REQUIRED, num_envs: int = gin.REQUIRED, *, seed: int = 0, device: str | torch.device = "cpu", **options
) -> BatchedEnv:
    """An env by registered name (``pendulum``, ``halfcheetah``, ...), ``gym:<id>`` or ``isaaclab:<task>``.

    ``options`` go to the env's constructor (e.g. ``num_threads`` for MuJoCo envs).
    """
    if num_envs < 1:
        raise ValueError(f"build_env: num_envs must be >= 1, got {num_envs!r}")
    if name.startswith("gym:"):
        from genpo.envs.gym_adapter import GymnasiumBatchedEnv

        return GymnasiumBatchedEnv(name.removeprefix("gym:"), num_envs, seed=seed, device=device, **options)
    if name.startswith("isaaclab:"):
        from genpo.envs.isaaclab import IsaacLabEnv

        return IsaacLabEnv(name.removeprefix("isaaclab:"), num_envs, seed=seed, device=device, **options)
    return registry.get("env", name)(num_envs, seed=seed, device=device, **options)
