"""Build any environment by name behind the BatchedEnv seam."""

from __future__ import annotations

import gin
import torch

from genpo import registry
from genpo.envs.base import BatchedEnv
from genpo.envs.clipped_actions import ClippedActions
from genpo.envs.random_episode_offsets import RandomEpisodeOffsets


@gin.configurable(module="genpo")
def build_env(
    name: str = gin.REQUIRED,
    num_envs: int = gin.REQUIRED,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    clip_actions: float | None = None,
    random_episode_offsets: bool = False,
    **options,
) -> BatchedEnv:
    """An env by registered name (``pendulum``, ``halfcheetah``, ...), ``gym:<id>`` or ``isaaclab:<task>``.

    ``clip_actions``: clamp every action to ``[-clip_actions, clip_actions]`` before the env applies it
    (:class:`~genpo.envs.clipped_actions.ClippedActions`; IsaacLab's own wrapper does it for its tasks);
    the trainers still store the unclipped sample. ``random_episode_offsets``: full resets start each
    episode a random number of steps into its time limit (:class:`~genpo.envs.random_episode_offsets.
    RandomEpisodeOffsets`, seeded by ``seed``), so time-outs do not all fall on one step. ``options`` go
    to the env's constructor (e.g. ``num_threads`` for MuJoCo envs).
    """
    if num_envs < 1:
        raise ValueError(f"build_env: num_envs must be >= 1, got {num_envs!r}")
    try:
        return _build_env(name, num_envs, seed, device, clip_actions, random_episode_offsets, options)
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "allocate" not in str(error):
            raise
        raise ValueError(f"build_env: num_envs = {num_envs} envs of {name!r} do not fit in memory ({out_of_memory(error)})") from None


def out_of_memory(error: BaseException) -> str:
    """The size an allocation asked for, from torch's or numpy's out-of-memory message."""
    import re

    asked = re.search(r"allocate (?:memory: you tried to allocate )?(\d+) bytes|allocate ([\d.]+ \w?iB)", str(error))
    if asked is None:
        return "out of memory"
    return f"{int(asked.group(1)) / 2**30:.3g} GiB asked for" if asked.group(1) else f"{asked.group(2)} asked for"


def _build_env(name, num_envs, seed, device, clip_actions, random_episode_offsets, options) -> BatchedEnv:
    if name.startswith("isaaclab:"):  # IsaacLabEnv clamps actions itself (clip_actions)
        from genpo.envs.isaaclab import IsaacLabEnv

        task = name.removeprefix("isaaclab:")
        env = IsaacLabEnv(task, num_envs, seed=seed, device=device, clip_actions=clip_actions, **options)
        return RandomEpisodeOffsets(env, seed) if random_episode_offsets else env
    if name.startswith("gym:"):
        from genpo.envs.gym_adapter import GymnasiumBatchedEnv

        env = GymnasiumBatchedEnv(name.removeprefix("gym:"), num_envs, seed=seed, device=device, **options)
    else:
        env = registry.get("env", name)(num_envs, seed=seed, device=device, **options)
    if random_episode_offsets:
        env = RandomEpisodeOffsets(env, seed)
    return env if clip_actions is None else ClippedActions(env, clip_actions)
