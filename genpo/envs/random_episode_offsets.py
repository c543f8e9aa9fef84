"""Episodes that start at random offsets of the time limit, as rsl_rl's ``init_at_random_ep_len``.

With every episode started on the same step, all envs time out together (HalfCheetah's 1000-step
episodes all end on the same iteration) and the rollouts alternate between no finished episode and a
burst of them. IsaacLab's training script starts rsl_rl with random episode lengths instead. Done in the
env seam, every contender gets the same offsets from the same seed.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs.base import BatchedEnv
from genpo.envs.wrapper import EnvWrapper


class RandomEpisodeOffsets(EnvWrapper):
    """``env`` whose full resets start each episode with a random number of steps already taken, drawn
    uniformly from ``[0, max_episode_steps)`` with a generator seeded by ``seed`` (its state is part of
    :meth:`state_dict`, so a resume continues exactly). Auto-resets inside ``step`` start from 0."""

    def __init__(self, env: BatchedEnv, seed: int):
        super().__init__(env)
        self.offset_generator = torch.Generator().manual_seed(seed)

    def reset(self) -> TensorDict:
        observation = self.env.reset()
        offsets = torch.randint(0, self.env.max_episode_steps, (self.env.num_envs,), generator=self.offset_generator)
        self.env.set_episode_steps(offsets)
        return observation

    def state_dict(self) -> dict:
        return {"env": self.env.state_dict(), "offset_generator": self.offset_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.env.load_state_dict(state["env"])
        self.offset_generator.set_state(state["offset_generator"])
