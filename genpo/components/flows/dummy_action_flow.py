"""The GenPO flow over the doubled ("dummy") action: N coupling steps, exactly invertible."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from genpo.components.base import TensorDictComponent
from genpo.components.couplings.genpo_euler import GenPOCoupling, add_log_det_terms
from genpo.validation import check_positive_int
from genpo.components.networks.velocity_network import VelocityMLP
from genpo.registry import register


@register("flow", "dummy_action")
class DummyActionFlow(TensorDictComponent):
    """z = (x_0, y_0) in R^2d -> dummy action (x_N, y_N) by ``num_steps`` coupling steps at t_i = i/N.

    One velocity network (built here, since its widths follow from the action dimension and the
    coupling) serves both halves. Each pass projects the observation and the N step times through the
    network's first layer once and shares them across its 2N velocity calls.

    Returns the log|det dF/dz| of the whole map: the coupling's constant part times N, plus the
    state-dependent terms of couplings that have them. No Jacobian is ever formed.
    """

    in_keys = ["observation", "noise"]
    out_keys = ["dummy_action", "flow_log_det"]

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        coupling: GenPOCoupling | None = None,
        num_steps: int = 5,
    ):
        super().__init__()
        name = type(self).__name__
        self.observation_dim = check_positive_int(name, "observation_dim", observation_dim)
        self.action_dim = check_positive_int(name, "action_dim", action_dim)
        self.num_steps = check_positive_int(name, "num_steps", num_steps)
        self.coupling = coupling if coupling is not None else GenPOCoupling()
        self.velocity_network = velocity_network(
            action_dim, observation_dim, output_fields=self.coupling.fields_per_half
        )
        self.dt = 1.0 / num_steps

    @property
    def constant_log_det(self) -> float:
        """The state-independent part of log|det dF/dz| for the whole map."""
        return self.num_steps * self.coupling.constant_log_det(self.action_dim)

    def velocity_precision(self, observation: torch.Tensor) -> contextlib.AbstractContextManager:
        """The velocity network's autocast region around a whole pass (``velocity_network.mlp.autocast_dtype``;
        a no-op by default). Only the network's layers autocast: its velocities come back in the state's
        dtype, and the coupling's adds, multiplies and divisions are not autocast ops, so x and y stay fp32."""
        precision = getattr(self.velocity_network, "precision", None)
        return contextlib.nullcontext() if precision is None else precision(observation)

    def step_velocities(self, observation: torch.Tensor) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """One velocity function per step, with the observation and time projections precomputed."""
        net = self.velocity_network
        observation_context, time_contexts = net.step_contexts(observation, self.num_steps)
        return [
            (lambda half, context=observation_context + time_contexts[step]: net.velocity(half, context))
            for step in range(self.num_steps)
        ]

    def compute(self, observation: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation, z) -> (dummy action, log|det dF/dz|)."""
        x, y = noise.chunk(2, dim=-1)
        log_det = None
        with self.velocity_precision(observation):
            for step, velocity in enumerate(self.step_velocities(observation)):
                x, y, step_log_det = self.coupling.forward_step(x, y, velocity, self.dt, step)
                log_det = add_log_det_terms(log_det, step_log_det)
        return torch.cat([x, y], dim=-1), self._total_log_det(log_det, noise)

    def inverse(self, observation: torch.Tensor, dummy_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation, dummy action) -> (z, log|det dF/dz| at that z), by the exact inverse steps."""
        x, y = dummy_action.chunk(2, dim=-1)
        log_det = None
        with self.velocity_precision(observation):
            velocities = self.step_velocities(observation)
            for step in reversed(range(self.num_steps)):
                x, y, step_log_det = self.coupling.inverse_step(x, y, velocities[step], self.dt, step)
                log_det = add_log_det_terms(log_det, step_log_det)
        return torch.cat([x, y], dim=-1), self._total_log_det(log_det, dummy_action)

    def _total_log_det(self, state_log_det: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        constant = torch.full(like.shape[:-1], self.constant_log_det, dtype=like.dtype, device=like.device)
        return constant if state_log_det is None else constant + state_log_det

