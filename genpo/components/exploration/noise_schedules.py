"""Base-noise schedules: exploration that ends when learning ends.

A flow policy's exploration is the spread its base noise induces; PPO has no term that narrows it when
the return no longer pays for it, so a trained policy can act much better deterministically than it
trains (docs/results.md). A schedule sets the actor's ``noise_scale`` from the iteration alone, before
each rollout: the samples of one iteration and their likelihood share one scale, and a resumed run gets
the same scale at the same iteration (no state to checkpoint).
"""

from __future__ import annotations

from torch import nn

from genpo.components.actors.base import Actor
from genpo.registry import register


@register("exploration_schedule", "linear_noise_scale")
class LinearNoiseScale(nn.Module):
    """Base-noise scale ``initial_scale`` up to ``start_iteration``, then linear to ``final_scale`` at
    ``end_iteration``, constant after: ``genpo.trainer.exploration_schedule = @exploration_schedule.linear_noise_scale()``.

    Iterations count completed PPO iterations (the first rollout is iteration 0). The action's spread
    shrinks in proportion where the flow is affine in its noise (and about so near the mode otherwise);
    ``final_scale = 0`` ends at the deterministic policy, whose likelihood is undefined, so it must be > 0.
    """

    def __init__(self, *, end_iteration: int, final_scale: float = 0.5, initial_scale: float = 1.0, start_iteration: int = 0):
        super().__init__()
        name = type(self).__name__
        for parameter, value in (("initial_scale", initial_scale), ("final_scale", final_scale)):
            if not value > 0:
                raise ValueError(f"{name}: {parameter} must be > 0, got {value!r}")
        if not 0 <= start_iteration < end_iteration:
            raise ValueError(f"{name}: need 0 <= start_iteration < end_iteration, got {start_iteration!r}, {end_iteration!r}")
        self.initial_scale = float(initial_scale)
        self.final_scale = float(final_scale)
        self.start_iteration = start_iteration
        self.end_iteration = end_iteration

    def extra_repr(self) -> str:
        return f"{self.initial_scale} -> {self.final_scale} over iterations [{self.start_iteration}, {self.end_iteration}]"

    def check_actor(self, actor: Actor) -> None:
        """Refuse an actor without a base-noise scale, naming it (when the run is built)."""
        if not isinstance(getattr(actor, "noise_scale", None), float):
            raise ValueError(
                f"exploration_schedule.linear_noise_scale: {type(actor).__name__} has no base-noise scale "
                "(noise_scale); use it with actor.genpo"
            )

    def scale_at(self, iteration: int) -> float:
        """The base-noise scale of the rollout after ``iteration`` completed iterations."""
        progress = min(max((iteration - self.start_iteration) / (self.end_iteration - self.start_iteration), 0.0), 1.0)
        return self.initial_scale + progress * (self.final_scale - self.initial_scale)

    def apply(self, actor: Actor, iteration: int) -> float:
        """Set the actor's scale for ``iteration``; returns it."""
        actor.noise_scale = self.scale_at(iteration)
        return actor.noise_scale
