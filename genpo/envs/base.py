"""The batched-environment seam: the one env interface the trainer talks to.

Why this shape and not torchrl's ``EnvBase``: IsaacLab's RL wrappers, ``mujoco.batch`` and pure-torch
simulators are all already batched, auto-resetting and tensor-native; the rsl_rl ``VecEnv`` shape maps
onto them one to one. ``EnvBase`` adds spec checks and per-step TensorDict re-keying that cost more
than a pure-torch env's whole step on CPU. We keep TensorDicts at the boundary (one per step) so that
rollout storage stays a ``TensorDict[T, B]``; see ``docs/environments.md``.

Contract of :meth:`BatchedEnv.step` (all tensors on ``env.device``, batch size ``[num_envs]``):

- ``observation`` [B, obs_dim] float: the observation to act on next (already reset where done);
- ``critic_observation`` [B, critic_obs_dim] (only if ``critic_observation_dim`` is not None);
- ``reward`` [B] float, ``terminated`` [B] bool, ``truncated`` [B] bool (time limit);
- ``final_observation`` [B, obs_dim]: the last observation of the episode that just ended where
  ``terminated | truncated``, else equal to ``observation``; used to bootstrap time-outs
  (and ``final_critic_observation`` likewise when critic observations exist);
- optionally ``episode_info``: a TensorDict [B] of per-episode scalars (e.g. which mode an episode
  used), meaningful where the episode ended; the trainer averages them over finished episodes.

``reset`` returns ``observation`` (and ``critic_observation``). Envs keep all randomness in their own
``torch.Generator`` / state so that :meth:`state_dict` captures everything needed for an exact resume.
"""

from __future__ import annotations

import abc

import torch
from tensordict import TensorDict

from genpo.registry import require_contract


class BatchedEnv(abc.ABC):
    """A batch of ``num_envs`` independent episodes stepped together, with auto-reset in ``step``."""

    num_envs: int
    observation_dim: int
    action_dim: int
    critic_observation_dim: int | None = None
    max_episode_steps: int
    device: torch.device
    #: False for simulators that cannot snapshot their state (IsaacLab on GPU): after
    #: ``load_state_dict`` the trainer resets the env and restarts episodes instead of continuing.
    restores_state: bool = True

    @abc.abstractmethod
    def reset(self) -> TensorDict:
        """Reset every env; returns ``observation`` (and ``critic_observation``)."""

    @abc.abstractmethod
    def step(self, action: torch.Tensor) -> TensorDict:
        """Apply ``action`` [B, action_dim]; see the module docstring for the returned keys."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: simulator state, step counters, RNG state."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; the next ``step`` continues as if never interrupted."""

    def close(self) -> None:
        """Release simulator resources (threads, GPU memory)."""

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        """Set how many steps each env's running episode has taken ([B] integers in
        ``[0, max_episode_steps)``): its time limit then comes that much sooner. Used to start episodes
        at random offsets (:class:`~genpo.envs.random_episode_offsets.RandomEpisodeOffsets`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot set its episodes' step counters")

    def check_action(self, action: torch.Tensor) -> None:
        """Fail early, naming the env, on an action of the wrong shape."""
        expected = (self.num_envs, self.action_dim)
        if tuple(action.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}.step: action has shape {tuple(action.shape)}, expected {expected}"
            )


def env_name(env: BatchedEnv) -> str:
    """How a config names ``env``'s simulator (``gym:<id>``, ``isaaclab:<task>``), else its class name; for
    messages. Looks through wrappers (action clipping, episode offsets)."""
    while isinstance(vars(env).get("env"), BatchedEnv):
        env = vars(env)["env"]
    for attribute, prefix in (("env_id", "gym:"), ("task", "isaaclab:")):
        if isinstance(getattr(env, attribute, None), str):
            return f"{prefix}{getattr(env, attribute)}"
    return type(env).__name__


# Every registered env is a BatchedEnv with all of its abstract methods implemented (checked at
# registration); check_batched_env (genpo/envs/checks.py) checks the behaviour the types cannot state.
require_contract("env", BatchedEnv)
