"""Velocity networks: v(half, observation, t) for the flow's coupling steps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genpo.components.base import TensorDictComponent
from genpo.components.networks.mlp import activation_class, mlp
from genpo.validation import check_positive_int
from genpo.components.networks.time_embedding import SinusoidalTimeEmbedding
from genpo.registry import register


@register("velocity_network", "mlp")
class VelocityMLP(TensorDictComponent):
    """MLP on concat[half, observation, time embedding] -> ``output_fields * half_dim`` (no squash).

    The first layer is split by input block so a flow pass computes the observation projection once
    (:meth:`project_observation`) and the time projection once per step time (:meth:`project_times`)
    and shares them across all 2N velocity calls; :meth:`velocity` then only adds the half's
    projection. ``compute`` gives the same result from raw inputs (TensorDict / test path).
    ``output_fields`` > 1 serves couplings that need more than a velocity (e.g. a log-scale).
    """

    in_keys = ["half", "observation", "time"]
    out_keys = ["velocity"]

    def __init__(
        self,
        half_dim: int,
        observation_dim: int,
        *,
        time_embedding: nn.Module | None = None,
        hidden_sizes: Sequence[int] = (400, 200, 100),
        activation: str = "mish",
        output_fields: int = 1,
    ):
        super().__init__()
        name = type(self).__name__
        self.half_dim = check_positive_int(name, "half_dim", half_dim)
        self.observation_dim = check_positive_int(name, "observation_dim", observation_dim)
        self.output_fields = check_positive_int(name, "output_fields", output_fields)
        hidden_sizes = tuple(hidden_sizes)
        if not hidden_sizes:
            raise ValueError(f"{name}: hidden_sizes must name at least one layer")
        self.time_embedding = time_embedding if time_embedding is not None else SinusoidalTimeEmbedding()
        first = hidden_sizes[0]
        self.half_projection = nn.Linear(half_dim, first, bias=False)
        self.observation_projection = nn.Linear(observation_dim, first, bias=False)
        self.time_projection = nn.Linear(self.time_embedding.out_dim, first)
        self.first_activation = activation_class(activation)()
        self.trunk = mlp(first, hidden_sizes[1:], output_fields * half_dim, activation)

    def project_observation(self, observation: torch.Tensor) -> torch.Tensor:
        return self.observation_projection(observation)

    def project_times(self, times: torch.Tensor) -> torch.Tensor:
        """[N] step times -> [N, hidden]: the time embedding's contribution to the first layer."""
        return self.time_projection(self.time_embedding.compute(times))

    def step_contexts(self, observation: torch.Tensor, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation projection [*B, H], projections of the step times t_k = k / N [N, H]) for one pass
        of an N-step flow; the times are built in the observation's dtype (exact in float64)."""
        times = torch.arange(num_steps, dtype=observation.dtype, device=observation.device) / num_steps
        return self.project_observation(observation), self.project_times(times)

    def velocity(self, half: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """v from the half and a precomputed ``context`` = observation projection + time projection."""
        return self.trunk(self.first_activation(self.half_projection(half) + context))

    def compute(self, half: torch.Tensor, observation: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        if time.dim() == 0:
            time = time.expand(half.shape[:-1])
        time_context = self.time_projection(self.time_embedding.compute(time))
        return self.velocity(half, self.project_observation(observation) + time_context)
