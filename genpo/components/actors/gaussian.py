"""Gaussian PPO policy (the rsl_rl baseline) behind the same actor contract."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from torch import nn

from genpo.components.actors.base import LOG_2PI, Actor, standard_normal_log_prob
from genpo.components.networks.mlp import mlp
from genpo.registry import register


@register("actor", "gaussian")
class GaussianActor(Actor):
    """``action = mean(s) + exp(log_std) * z`` with a state-independent learned log std (rsl_rl's policy).

    The likelihood is defined on ``action`` itself, so :attr:`sample_keys` is empty.
    """

    sample_keys = ()

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        hidden_sizes: Sequence[int] = (256, 256, 256),
        activation: str = "elu",
        init_std: float = 1.0,
    ):
        super().__init__(observation_dim, action_dim)
        if not init_std > 0:
            raise ValueError(f"{type(self).__name__}: init_std must be > 0, got {init_std!r}")
        self.mean = mlp(observation_dim, tuple(hidden_sizes), action_dim, activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    @property
    def noise_dim(self) -> int:
        return self.action_dim

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        tensordict.set("action", self.mean(observation) + self.log_std.exp() * noise)
        tensordict.set("action_log_prob", standard_normal_log_prob(noise) - self.log_std.sum())
        return tensordict

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        observation = self.observation(tensordict)
        action = self.stored(tensordict, "action", self.action_dim)
        return (action - self.mean(observation)) * (-self.log_std).exp()

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        return standard_normal_log_prob(self.inverse(tensordict)) - self.log_std.sum()

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor:
        observation = self.observation(tensordict)
        value = self.log_std.sum() + 0.5 * self.action_dim * (1.0 + LOG_2PI)
        return value.expand(observation.shape[:-1])
