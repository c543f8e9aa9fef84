"""Velocity networks: v(half, observation, t) for the flow's coupling steps."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from genpo.components.base import TensorDictComponent
from genpo.components.networks.cpu_precision import AUTO, resolve_autocast_dtype, warn_if_bf16_is_emulated
from genpo.components.networks.mlp import activation_class, check_hidden_sizes, mlp
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

    ``autocast_dtype`` (default None: everything in the input's dtype): ``"bfloat16"`` or ``"float16"``
    runs this network's layers under ``torch.autocast`` (matmuls in that dtype, fp32 accumulation) and
    returns the velocity cast back to the input's dtype, so a flow's state and its coupling arithmetic
    stay in fp32. ``"auto"`` is bf16 where the device multiplies bf16 natively and fp32 elsewhere
    (:func:`~genpo.components.networks.cpu_precision.resolve_autocast_dtype`); the attribute
    ``autocast_dtype`` always reads as the resolved choice for the device the weights are on, and
    ``requested_autocast_dtype`` as what was configured. Every call is a deterministic function of its
    inputs, so an exact inverse that re-evaluates the network on the same halves still inverts the
    forward map; what the likelihood is of changes (a slightly different network function), not how it
    is computed.
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
        autocast_dtype: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        self.half_dim = check_positive_int(name, "half_dim", half_dim)
        self.observation_dim = check_positive_int(name, "observation_dim", observation_dim)
        self.output_fields = check_positive_int(name, "output_fields", output_fields)
        hidden_sizes = check_hidden_sizes(name, hidden_sizes)
        if not hidden_sizes:
            raise ValueError(f"{name}: hidden_sizes must name at least one layer")
        self.time_embedding = time_embedding if time_embedding is not None else SinusoidalTimeEmbedding()
        first = hidden_sizes[0]
        self.half_projection = nn.Linear(half_dim, first, bias=False)
        self.observation_projection = nn.Linear(observation_dim, first, bias=False)
        self.time_projection = nn.Linear(self.time_embedding.out_dim, first)
        self.first_activation = activation_class(activation)()
        self.trunk = mlp(first, hidden_sizes[1:], output_fields * half_dim, activation)
        self.autocast_dtype = autocast_dtype

    @property
    def autocast_dtype(self) -> str | None:
        """The dtype this network's layers run in on the device its weights are on (None: fp32)."""
        return resolve_autocast_dtype(self.requested_autocast_dtype, self.half_projection.weight.device.type)

    @autocast_dtype.setter
    def autocast_dtype(self, value: str | None) -> None:
        if value not in AUTOCAST_DTYPES and value != AUTO:
            choices = ", ".join(repr(name) for name in [*AUTOCAST_DTYPES, AUTO])
            raise ValueError(f"{type(self).__name__}: autocast_dtype must be one of {choices}, got {value!r}")
        self.requested_autocast_dtype = value

    def extra_repr(self) -> str:
        return "" if self.requested_autocast_dtype is None else f"autocast_dtype={self.requested_autocast_dtype}"

    def precision(self, like: torch.Tensor) -> contextlib.AbstractContextManager:
        """The autocast region this network's layers run in: a no-op context without ``autocast_dtype``
        or inside a region already autocasting to it. A flow may enter it once around a whole pass (its
        coupling arithmetic still sees fp32 velocities), which saves the per-call entry and lets autocast
        cast each weight once per pass instead of once per call."""
        autocast_dtype = self.autocast_dtype
        if autocast_dtype is None:
            return contextlib.nullcontext()
        device_type = like.device.type
        dtype = AUTOCAST_DTYPES[autocast_dtype]
        if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == dtype:
            return contextlib.nullcontext()
        if device_type == "cpu" and dtype == torch.bfloat16:
            warn_if_bf16_is_emulated(type(self).__name__)
        return torch.autocast(device_type, dtype=dtype)

    def project_observation(self, observation: torch.Tensor) -> torch.Tensor:
        with self.precision(observation):
            return self.observation_projection(observation)

    def project_times(self, times: torch.Tensor) -> torch.Tensor:
        """[N] step times -> [N, hidden]: the time embedding's contribution to the first layer."""
        with self.precision(times):
            return self.time_projection(self.time_embedding.compute(times))

    def step_contexts(self, observation: torch.Tensor, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation projection [*B, H], projections of the step times t_k = k / N [N, H]) for one pass
        of an N-step flow; the times are built in the observation's dtype (exact in float64)."""
        times = torch.arange(num_steps, dtype=observation.dtype, device=observation.device) / num_steps
        return self.project_observation(observation), self.project_times(times)

    def velocity(self, half: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """v from the half and a precomputed ``context`` = observation projection + time projection."""
        if self.autocast_dtype is None:
            return self.trunk(self.first_activation(self.half_projection(half) + context))
        with self.precision(half):
            velocity = self.trunk(self.first_activation(self.half_projection(half) + context))
        return velocity.to(half.dtype)

    def compute(self, half: torch.Tensor, observation: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        if time.dim() == 0:
            time = time.expand(half.shape[:-1])
        return self.velocity(half, self.project_observation(observation) + self.project_times(time))


# autocast_dtype names -> torch dtypes (None: no autocast)
AUTOCAST_DTYPES = {None: None, "bfloat16": torch.bfloat16, "float16": torch.float16}
