"""Reward scaling by the running standard deviation of the discounted return."""

from __future__ import annotations

import torch
from torch import nn

from genpo.components.normalizers.running_moments import RunningMoments
from genpo.registry import register


@register("reward_scaler", "return_std")
class ReturnStdScaler(nn.Module):
    """Divide rewards by the running std of each env's discounted return (no mean shift).

    With a clipped value loss (clip 0.2), returns in the hundreds stall learning for Gaussian and flow
    policies alike; this keeps value targets O(1) (measured on Pendulum; docs/method.md §5).
    """

    def __init__(self, num_envs: int, *, gamma: float = 0.99, epsilon: float = 1e-8):
        super().__init__()
        self.gamma = gamma
        self.epsilon = epsilon
        self.moments = RunningMoments(())
        self.register_buffer("discounted_return", torch.zeros(num_envs, dtype=torch.float64))

    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Scale this step's ``reward`` [B] and then reset the return of envs where ``done``."""
        self.discounted_return.mul_(self.gamma).add_(reward.detach().to(torch.float64))
        self.moments.update(self.discounted_return)
        self.discounted_return.masked_fill_(done, 0.0)
        return reward / (self.moments.variance.sqrt().to(reward.dtype) + self.epsilon)


@register("reward_scaler", "none")
class NoRewardScaling(nn.Module):
    """Rewards unchanged."""

    def __init__(self, num_envs: int):
        super().__init__()

    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        return reward
