"""The base of envs that wrap another env (action clipping, random episode offsets): everything a
wrapper does not override is the wrapped env's, including the attributes and methods that
:class:`~genpo.envs.base.BatchedEnv` gives defaults for (``restores_state``, ``critic_observation_dim``,
``set_episode_steps``), which plain attribute forwarding would leave at the base class's values."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs.base import BatchedEnv


class EnvWrapper(BatchedEnv):
    """``env`` unchanged; subclasses override what they change."""

    def __init__(self, env: BatchedEnv):
        self.env = env

    def __getattr__(self, name: str):
        # Only reached for attributes this wrapper does not define: the wrapped env's (num_envs, model, ...).
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def restores_state(self) -> bool:
        return self.env.restores_state

    @property
    def critic_observation_dim(self) -> int | None:
        return self.env.critic_observation_dim

    def reset(self) -> TensorDict:
        return self.env.reset()

    def step(self, action: torch.Tensor) -> TensorDict:
        return self.env.step(action)

    def state_dict(self) -> dict:
        return self.env.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.env.load_state_dict(state)

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        self.env.set_episode_steps(steps)

    def close(self) -> None:
        self.env.close()
