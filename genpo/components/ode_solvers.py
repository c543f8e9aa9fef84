"""Explicit Runge-Kutta solvers for a flow's velocity ODE ``dx/dt = v(x, t)`` (kind ``ode_solver``).

A solver is the rule of one step, given by its Butcher tableau (nodes ``c``, matrix ``a``, weights ``b``)::

    k_i = v(x + dt sum_{j<i} a_ij k_j,  t + c_i dt),      x_next = x + dt sum_i b_i k_i

so swapping it is one gin binding (``actor.fpo.solver = @ode_solver.rk4()``). The actors that integrate a
velocity field without an exact-inversion constraint (``actor.fpo``, the drift of ``actor.dppo`` /
``actor.reinflow``) call :meth:`ODESolver.step` with ``field(x, stage)``, the velocity at the step's
``stage``-th node time, so that they can precompute the network's time projections at those times once
per pass. GenPO's coupling and the reversible multistep flow are not ODE solvers: their steps are
constrained by an exact inverse.

| name | order | velocity calls per step |
|---|---|---|
| ``euler`` | 1 | 1 |
| ``midpoint`` | 2 | 2 |
| ``heun`` | 2 | 2 (trapezoidal weights) |
| ``rk4`` | 4 | 4 (the classical Runge-Kutta method) |
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genpo.registry import register
from genpo.validation import check_positive_int

Field = Callable[[torch.Tensor, int], torch.Tensor]


class ODESolver(nn.Module):
    """One explicit Runge-Kutta step from a Butcher tableau; subclasses set the tableau and ``order``.

    Stateless (no parameters or buffers): a module only so that it shows in its actor's repr.
    """

    nodes: tuple[float, ...] = ()
    matrix: tuple[tuple[float, ...], ...] = ()
    weights: tuple[float, ...] = ()
    order: int = 0

    @property
    def velocity_calls(self) -> int:
        """Velocity evaluations per step (one per stage)."""
        return len(self.weights)

    def extra_repr(self) -> str:
        return f"order={self.order}, velocity_calls={self.velocity_calls}"

    def step(self, field: Field, x: torch.Tensor, dt: float, first: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` advanced by ``dt``; ``field(y, i)`` is the velocity at ``y`` at the step's i-th node time.

        ``first``: the velocity at (x, t) if the caller already has it (the first stage's node is always
        0), which saves that call.
        """
        slopes = [first if first is not None else field(x, 0)]
        for stage in range(1, len(self.nodes)):
            state = x
            for coefficient, slope in zip(self.matrix[stage], slopes):
                if coefficient:
                    state = state + (dt * coefficient) * slope
            slopes.append(field(state, stage))
        for weight, slope in zip(self.weights, slopes):
            if weight:
                x = x + (dt * weight) * slope
        return x

    def integrate(
        self,
        velocity: Callable[[torch.Tensor, float], torch.Tensor],
        start: torch.Tensor,
        num_steps: int,
        t0: float = 0.0,
        t1: float = 1.0,
    ) -> torch.Tensor:
        """The state at ``t1`` from ``start`` at ``t0`` in ``num_steps`` equal steps; ``velocity(x, t)``."""
        num_steps = check_positive_int(type(self).__name__, "num_steps", num_steps)
        dt = (t1 - t0) / num_steps
        x = start
        for step in range(num_steps):
            time = t0 + step * dt
            x = self.step(lambda y, stage: velocity(y, time + self.nodes[stage] * dt), x, dt)
        return x


def check_solver(owner: str, solver: ODESolver | None) -> ODESolver:
    """``solver``, Euler where it is None; anything but an :class:`ODESolver` fails naming ``owner``."""
    if solver is None:
        return EulerSolver()
    if not isinstance(solver, ODESolver):
        raise ValueError(f"{owner}: solver must be an ODE solver component (e.g. @ode_solver.midpoint()), got {solver!r}")
    return solver


@register("ode_solver", "euler")
class EulerSolver(ODESolver):
    """Forward Euler: ``x + dt v(x, t)``."""

    nodes = (0.0,)
    matrix = ((),)
    weights = (1.0,)
    order = 1


@register("ode_solver", "midpoint")
class MidpointSolver(ODESolver):
    """Explicit midpoint: ``x + dt v(x + dt/2 v(x, t), t + dt/2)``."""

    nodes = (0.0, 0.5)
    matrix = ((), (0.5,))
    weights = (0.0, 1.0)
    order = 2


@register("ode_solver", "heun")
class HeunSolver(ODESolver):
    """Heun (explicit trapezoid): the Euler predictor ``y = x + dt k_1``, then ``x + dt (k_1 + v(y, t + dt)) / 2``."""

    nodes = (0.0, 1.0)
    matrix = ((), (1.0,))
    weights = (0.5, 0.5)
    order = 2


@register("ode_solver", "rk4")
class RK4Solver(ODESolver):
    """The classical fourth-order Runge-Kutta method (weights 1/6, 1/3, 1/3, 1/6)."""

    nodes = (0.0, 0.5, 0.5, 1.0)
    matrix = ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0))
    weights = (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)
    order = 4
