"""Critics: state-value networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genpo.components.base import TensorDictComponent
from genpo.components.networks.mlp import mlp
from genpo.validation import check_positive_int
from genpo.registry import register


@register("critic", "mlp")
class ValueMLP(TensorDictComponent):
    """MLP on the critic observation -> scalar ``state_value`` [..., 1] (torchrl's value convention)."""

    out_keys = ["state_value"]

    def __init__(
        self,
        observation_dim: int,
        *,
        hidden_sizes: Sequence[int] = (400, 200, 100),
        activation: str = "mish",
        observation_key: str = "observation",
    ):
        super().__init__()
        self.observation_dim = check_positive_int(type(self).__name__, "observation_dim", observation_dim)
        self.in_keys = [observation_key]
        self.net = mlp(observation_dim, tuple(hidden_sizes), 1, activation)

    def compute(self, observation: torch.Tensor) -> torch.Tensor:
        if observation.shape[-1] != self.observation_dim:
            raise ValueError(
                f"{type(self).__name__}: {self.in_keys[0]} has width {observation.shape[-1]}, "
                f"expected {self.observation_dim}"
            )
        return self.net(observation)
