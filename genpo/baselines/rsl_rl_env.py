"""rsl_rl's ``VecEnv`` over a genpo ``BatchedEnv``, so that rsl-rl-lib's ``OnPolicyRunner`` trains on
genpo's envs with genpo's episode bookkeeping (see :mod:`genpo.baselines.rsl_rl`)."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs.base import BatchedEnv
from genpo.training.episodes import EpisodeTracker


def import_rsl_rl():
    """rsl-rl-lib's ``VecEnv`` and ``OnPolicyRunner``; a missing install names the extra."""
    try:
        from rsl_rl.env import VecEnv
        from rsl_rl.runners import OnPolicyRunner
    except ImportError as error:
        raise ImportError(
            "the rsl_rl trainer needs rsl-rl-lib (5.x): pip install -e '.[bench]'"
        ) from error
    return VecEnv, OnPolicyRunner


def vec_env(env: BatchedEnv):
    """rsl_rl's ``VecEnv`` over a genpo ``BatchedEnv``: observations as the ``policy`` group,
    ``dones = terminated | truncated``, ``extras["time_outs"] = truncated``. Finished episodes are
    recorded by genpo's :class:`EpisodeTracker`, so returns are measured exactly as genpo's trainer
    measures them."""
    VecEnv, _ = import_rsl_rl()

    class BatchedVecEnv(VecEnv):
        def __init__(self, env: BatchedEnv):
            self.env = env
            self.num_envs = env.num_envs
            self.num_actions = env.action_dim
            self.max_episode_length = env.max_episode_steps
            self.device = env.device
            self.cfg = {}
            self.episodes = EpisodeTracker(env.num_envs, env.device)
            self.stepped = False  # the env's state is saved only once it has been stepped
            self._observations = self._group(env.reset()["observation"])

        @property
        def episode_length_buf(self) -> torch.Tensor:
            """The running episodes' lengths (rsl_rl's name for them)."""
            return self.episodes.episode_length

        @episode_length_buf.setter
        def episode_length_buf(self, lengths: torch.Tensor) -> None:
            self.episodes.episode_length.copy_(lengths)

        def _group(self, observation: torch.Tensor) -> TensorDict:
            return TensorDict({"policy": observation}, batch_size=[self.num_envs], device=self.device)

        def get_observations(self) -> TensorDict:
            return self._observations

        def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
            self.stepped = True
            result = self.env.step(actions)
            truncated = result["truncated"]
            dones = result["terminated"] | truncated
            self.episodes.step(result["reward"], dones, result.get("episode_info", None))
            self._observations = self._group(result["observation"])
            return self._observations, result["reward"], dones.long(), {"time_outs": truncated}

        def pop_episodes(self) -> dict[str, torch.Tensor]:
            """``return``, ``length`` and ``info/<key>`` of each episode finished since the last call."""
            return self.episodes.pop()

        def restart(self) -> None:
            """Reset every env and start new episodes."""
            self._observations = self._group(self.env.reset()["observation"])
            self.episodes.restart()

        def state_dict(self) -> dict:
            """The env's state (None before its first step: a resume rebuilds it from its seed, as
            genpo's rollout collector does), the observations to act on next and the running
            episodes' accumulators."""
            return {
                "env": self.env.state_dict() if self.stepped else None,
                "observation": self._observations["policy"].clone(),
                **self.episodes.state_dict(),
            }

        def load_state_dict(self, state: dict) -> None:
            if state["env"] is None:
                if self.stepped:
                    self.restart()
                    self.stepped = False
                return
            self.env.load_state_dict(state["env"])
            self.stepped = True
            if not self.env.restores_state:
                self.restart()  # the saved episodes cannot continue
                return
            self._observations = self._group(state["observation"].to(self.device))
            self.episodes.load_state_dict(state)

    return BatchedVecEnv(env)
