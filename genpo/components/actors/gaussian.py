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

MIN_STD = 1e-6  # the floor of a directly learned std (rsl_rl's): below it the clamp stops the gradient


@register("actor", "gaussian")
class GaussianActor(Actor):
    """``action = mean(s) + std * z`` with a state-independent learned std (rsl_rl's policy).

    ``std_parameterization`` says what the optimiser moves: ``'log'`` learns log std (an Adam step changes
    the std by a fixed *fraction*), ``'direct'`` learns the std itself, clamped at 1e-6 (an Adam step
    changes it by a fixed *amount*, so a narrow policy narrows or widens relatively faster: rsl_rl's
    default ``std_type = 'scalar'``).

    ``state_dependent_std=True`` learns ``log_std(s)`` instead, with a second MLP of the same layout whose
    output layer starts at zero (so every state starts at ``init_std``): a unimodal policy that can be wide
    at one state and narrow at another, which separates "multimodal" from "state-dependent spread" when a
    flow policy is compared with a Gaussian (rsl_rl's runner has no such policy; the baseline refuses it).
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
        state_dependent_std: bool = False,
        std_parameterization: str = "log",
    ):
        super().__init__(observation_dim, action_dim)
        name = type(self).__name__
        if not init_std > 0:
            raise ValueError(f"{name}: init_std must be > 0, got {init_std!r}")
        if std_parameterization not in ("log", "direct"):
            raise ValueError(f"{name}: std_parameterization must be 'log' or 'direct', got {std_parameterization!r}")
        if state_dependent_std and std_parameterization != "log":
            raise ValueError(f"{name}: a state-dependent std is learned as log std; std_parameterization must be 'log'")
        self.mean = mlp(observation_dim, tuple(hidden_sizes), action_dim, activation)
        self.init_std = init_std
        self.log_init_std = math.log(init_std)
        self.std_parameterization = std_parameterization
        self.register_parameter("std", None)
        if state_dependent_std:
            self.log_std_network = mlp(observation_dim, tuple(hidden_sizes), action_dim, activation)
            output_layer = self.log_std_network[-1]
            nn.init.zeros_(output_layer.weight)
            nn.init.zeros_(output_layer.bias)
            self.register_parameter("log_std", None)
        elif std_parameterization == "direct":
            self.log_std_network = None
            self.register_parameter("log_std", None)
            self.std = nn.Parameter(torch.full((action_dim,), init_std))
        else:
            self.log_std_network = None
            self.log_std = nn.Parameter(torch.full((action_dim,), self.log_init_std))

    @property
    def noise_dim(self) -> int:
        return self.action_dim

    @property
    def state_dependent_std(self) -> bool:
        return self.log_std_network is not None

    def log_std_at(self, observation: torch.Tensor) -> torch.Tensor:
        """The per-dimension log std at ``observation`` (from the learned vector when it is state-independent)."""
        if self.std is not None:
            return self.std.clamp_min(MIN_STD).log()
        if self.log_std_network is None:
            return self.log_std
        return self.log_std_network(observation) + self.log_init_std

    def mean_and_log_std(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The action's mean [*B, action_dim] and log std ([*B, action_dim], or [action_dim] when it is
        state-independent) at ``observation``: the whole distribution, a diagonal Gaussian."""
        return self.mean(observation), self.log_std_at(observation)

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        log_std = self.log_std_at(observation)
        tensordict.set("action", self.mean(observation) + log_std.exp() * noise)
        tensordict.set("action_log_prob", standard_normal_log_prob(noise) - log_std.sum(-1))
        return tensordict

    def _noise_and_log_std(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """The base noise of the stored action and the log std it was drawn with (one pass of each network)."""
        observation = self.observation(tensordict)
        action = self.stored(tensordict, "action", self.action_dim)
        log_std = self.log_std_at(observation)
        return (action - self.mean(observation)) * (-log_std).exp(), log_std

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self._noise_and_log_std(tensordict)[0]

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        noise, log_std = self._noise_and_log_std(tensordict)
        return standard_normal_log_prob(noise) - log_std.sum(-1)

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor:
        observation = self.observation(tensordict)
        value = self.log_std_at(observation).sum(-1) + 0.5 * self.action_dim * (1.0 + LOG_2PI)
        return value.expand(observation.shape[:-1])
