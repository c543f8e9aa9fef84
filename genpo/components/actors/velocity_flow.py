"""Shared base of the flow actors that act directly in the d-dim action space (no doubled action).

Not a scheme itself (nothing is registered here): :class:`VelocityFlowActor` owns the velocity network
v(x, s, t) and the N step times, and gives every subclass the same two pieces so that no scheme
re-implements them:

- :meth:`VelocityFlowActor.contexts`: the observation projection and the N step-time projections of
  the network's first layer, computed once per pass (``VelocityMLP``'s fast path) and shared by all
  velocity calls of that pass;
- :meth:`VelocityFlowActor.integrate`: the chain ``x_{k+1} = x_k + Phi(x_k, t_k, dt) [+ sigma_k eps_k]``
  where ``Phi`` is one step of the subclass's ODE solver (``self.solver``, an ``ode_solver`` component;
  Euler: ``dt v(x_k, s, t_k)``), used noise-free by ``actor.fpo`` and with per-step noise by
  ``actor.dppo`` / ``actor.reinflow``. Zero noise makes it the deterministic solver path, which is
  what deterministic evaluation runs. ``actor.reversible_multistep`` uses only the contexts: its steps
  are fixed by its exact inverse, so it takes no solver.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genpo.components.actors.base import Actor
from genpo.components.networks.velocity_network import VelocityMLP
from genpo.components.ode_solvers import ODESolver
from genpo.validation import check_positive_int


class VelocityFlowActor(Actor):
    """An actor built on one velocity network over the action, integrated over ``num_steps`` steps.

    Step ``k`` runs at time ``t_k = k / N`` with ``dt = 1 / N``; the base noise x_0 ~ N(0, I_d) sits at
    t = 0 and the executed action at t = 1. ``velocity_fields`` is how many d-wide fields the network
    outputs (1: the velocity; subclasses that also need e.g. a noise scale ask for more).
    """

    velocity_fields = 1

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        velocity_network: Callable[..., VelocityMLP] = VelocityMLP,
        num_steps: int = 5,
    ):
        super().__init__(observation_dim, action_dim)
        self.num_steps = check_positive_int(type(self).__name__, "num_steps", num_steps)
        self.dt = 1.0 / num_steps
        self.velocity_network = velocity_network(action_dim, observation_dim, output_fields=self.velocity_fields)

    def contexts(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation projection [*B, H], step-time projections [N, H]) for one pass."""
        return self.velocity_network.step_contexts(observation, self.num_steps)

    def stage_contexts(self, observation: torch.Tensor, solver: ODESolver) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(observation projection [*B, H], per stage of ``solver`` the projections [N, H] of the times
        ``t_k + c_stage dt``); stage 0 (c = 0) is exactly :meth:`contexts`' step times."""
        observation_context, step_contexts = self.contexts(observation)
        steps = torch.arange(self.num_steps, dtype=observation.dtype, device=observation.device)
        project = self.velocity_network.project_times
        stages = [step_contexts if node == 0 else project((steps + node) / self.num_steps) for node in solver.nodes]
        return observation_context, stages

    def fields(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The network's raw output [*, velocity_fields * d] at ``x`` for a precomputed ``context``."""
        return self.velocity_network.velocity(x, context)

    def step_fields(self, x: torch.Tensor, contexts: tuple[torch.Tensor, torch.Tensor], step: int) -> torch.Tensor:
        """The network output at ``x`` at step ``step``, given the pass's :meth:`contexts`."""
        observation_context, time_contexts = contexts
        return self.fields(x, observation_context + time_contexts[step])

    def split_fields(self, fields: torch.Tensor, step: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(velocity, per-step noise scale or None) from the network output at step ``step`` (None: all
        steps stacked on dim -2)."""
        return fields, None

    def integrate(
        self, observation: torch.Tensor, start: torch.Tensor, step_noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The chain from ``start`` = x_0: returns (states [*B, N+1, d], per step sum_j log sigma_kj [*B, N]).

        Each step is one step of ``self.solver`` (set by the subclass) from the network's velocity field;
        its first stage's output also gives sigma_k (:meth:`split_fields`). Without ``step_noise`` it is
        the plain ODE sampler (log-scales None); with ``step_noise`` [*B, N, d] each step then adds
        ``sigma_k * eps_k``.
        """
        solver = self.solver
        observation_context, stages = self.stage_contexts(observation, solver)
        x, states, log_scales = start, [start], []
        for step in range(self.num_steps):

            def velocity(state: torch.Tensor, stage: int, step: int = step) -> torch.Tensor:
                return self.split_fields(self.fields(state, observation_context + stages[stage][step]), step)[0]

            first, scale = self.split_fields(self.fields(x, observation_context + stages[0][step]), step)
            x = solver.step(velocity, x, self.dt, first=first)
            if step_noise is not None:
                x = x + scale * step_noise[..., step, :]
                log_scales.append(scale.log().expand_as(x).sum(-1))
            states.append(x)
        return torch.stack(states, dim=-2), torch.stack(log_scales, dim=-1) if log_scales else None
