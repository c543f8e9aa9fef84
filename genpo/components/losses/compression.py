"""Compression regularisers: keep the dummy action's two halves together.

The env only sees ``alpha x + (1 - alpha) y``; without a penalty the flow can explore freely along
``x - y``, which the env never sees (docs/method.md §7).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from genpo.components.actors.base import Actor
from genpo.registry import register


class CompressionPenalty(nn.Module):
    """``E gap(x_N - y_N)`` on fresh reparameterised samples from the current policy.

    ``sample_fraction`` of the minibatch's states get a fresh sample (1.0: every state, as in the
    reference code); the penalty's extra N-step pass with gradients costs about half an actor update,
    so smaller fractions trade gradient noise for speed.
    """

    def __init__(self, sample_fraction: float = 1.0):
        super().__init__()
        if not 0.0 < sample_fraction <= 1.0:
            raise ValueError(f"{type(self).__name__}: sample_fraction must be in (0, 1], got {sample_fraction!r}")
        self.sample_fraction = sample_fraction

    def gap(self, difference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_actor(self, actor: Actor) -> None:
        """Raise, naming the actor, unless it samples a dummy action this penalty can act on."""
        if "dummy_action" not in actor.sample_keys:
            raise ValueError(
                f"{type(self).__name__} needs an actor with a dummy action; {type(actor).__name__} has none "
                "(set the loss's compression to None)"
            )

    def forward(self, actor: Actor, tensordict: TensorDictBase) -> torch.Tensor:
        self.check_actor(actor)
        observation = tensordict.get(actor.observation_key).reshape(-1, actor.observation_dim)
        count = max(1, round(self.sample_fraction * observation.shape[0]))
        if count < observation.shape[0]:
            observation = observation[torch.randperm(observation.shape[0], device=observation.device)[:count]]
        fresh = actor.sample(TensorDict({actor.observation_key: observation}, batch_size=[count]))
        x, y = fresh["dummy_action"].chunk(2, dim=-1)
        return self.gap(x - y).mean()


@register("compression", "squared")
class SquaredCompression(CompressionPenalty):
    """``E ||x_N - y_N||^2`` (the paper)."""

    def gap(self, difference: torch.Tensor) -> torch.Tensor:
        return difference.pow(2).sum(-1)


@register("compression", "norm")
class NormCompression(CompressionPenalty):
    """``E ||x_N - y_N||`` (the reference code)."""

    def gap(self, difference: torch.Tensor) -> torch.Tensor:
        return difference.norm(dim=-1)
