"""Action clipping between a policy and any env, as its users run a Gaussian PPO baseline.

IsaacLab's ``RslRlVecEnvWrapper(clip_actions=...)`` and CleanRL's ``ClipAction`` clamp the action that
reaches the simulator while PPO keeps the unclipped sample for its likelihood. Done here, in the env
seam, every contender (genpo's trainer, rsl_rl's runner, evaluation) gets the same clipping from one
``genpo.build_env.clip_actions`` setting, and the trainers keep storing the unclipped sample.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs.base import BatchedEnv
from genpo.envs.wrapper import EnvWrapper
from genpo.validation import check_positive


class ClippedActions(EnvWrapper):
    """``env`` with every action clamped to ``[-bound, bound]`` before it is applied; everything else
    (dims, state, time limit, env-specific attributes) is the wrapped env's."""

    def __init__(self, env: BatchedEnv, bound: float):
        super().__init__(env)
        self.bound = float(check_positive("clip_actions", "bound", bound))

    def step(self, action: torch.Tensor) -> TensorDict:
        return self.env.step(action.clamp(-self.bound, self.bound))
