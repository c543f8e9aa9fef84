"""Batched pure-torch Pendulum swing-up with the dynamics, reward and resets of gymnasium ``Pendulum-v1``."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict

from genpo.envs._batched import TensorStateEnv
from genpo.registry import register


def angle_normalize(angle: torch.Tensor) -> torch.Tensor:
    """Wrap an angle to [-pi, pi) as gymnasium does."""
    return ((angle + math.pi) % (2 * math.pi)) - math.pi


@register("env", "pendulum")
class PendulumEnv(TensorStateEnv):
    """Swing a pendulum up and hold it, for ``num_envs`` pendulums at once.

    Matches gymnasium ``Pendulum-v1`` step for step: observation ``[cos th, sin th, thdot]``, the raw
    action is a torque clipped to ``[-2, 2]``, reward ``-(angle_normalize(th)^2 + 0.1 thdot^2 +
    0.001 u^2)``, ``thdot`` clipped to ``[-8, 8]``, initial ``th ~ U(-pi, pi)``, ``thdot ~ U(-1, 1)``,
    episodes end by truncation after ``max_episode_steps`` (200) only.

    The state is float64 like gymnasium's: the swinging pendulum is chaotic, and a float32 state drifts
    from gymnasium by ~1e-2 within one episode, while float64 reproduces gymnasium fed float64 actions
    exactly (observations and rewards are returned as float32). Devices without float64 (MPS) are
    therefore not supported.
    """

    observation_dim = 3
    action_dim = 1
    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    mass = 1.0
    length = 1.0

    def __init__(
        self,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        g: float = 10.0,
        max_episode_steps: int = 200,
    ):
        super().__init__(num_envs, seed=seed, device=device, max_episode_steps=max_episode_steps)
        self.g = g

    def _initial_state(self) -> TensorDict:
        return TensorDict(
            {"theta": self._uniform(math.pi), "theta_dot": self._uniform(1.0)},
            batch_size=[self.num_envs],
            device=self.device,
        )

    def _uniform(self, high: float) -> torch.Tensor:
        """Samples of U(-high, high) for every env."""
        unit = torch.rand(self.num_envs, generator=self.generator, device=self.device, dtype=torch.float64)
        return (2 * unit - 1) * high

    def _observe(self, state: TensorDict) -> torch.Tensor:
        theta = state["theta"]
        return torch.stack([theta.cos(), theta.sin(), state["theta_dot"]], dim=-1).float()

    def _transition(self, state: TensorDict, action: torch.Tensor):
        theta, theta_dot = state["theta"], state["theta_dot"]
        torque = action[:, 0].to(theta.dtype).clamp(-self.max_torque, self.max_torque)
        cost = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * torque**2
        angular_acceleration = (
            3 * self.g / (2 * self.length) * theta.sin() + 3.0 / (self.mass * self.length**2) * torque
        )
        next_theta_dot = (theta_dot + angular_acceleration * self.dt).clamp(-self.max_speed, self.max_speed)
        next_theta = theta + next_theta_dot * self.dt
        next_state = TensorDict(
            {"theta": next_theta, "theta_dot": next_theta_dot}, batch_size=[self.num_envs], device=self.device
        )
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return next_state, (-cost).float(), terminated, None
