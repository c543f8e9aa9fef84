"""Learning-rate controllers, stepped once per minibatch with that minibatch's KL estimate.

torch's ``LRScheduler``s cannot react to a measured KL, so the trainer asks a controller for the
learning rate before every optimiser step instead; controllers keep their state in ``state_dict``.
"""

from __future__ import annotations

from torch import nn

from genpo.registry import register


class LRController(nn.Module):
    """Holds the current learning rate; :meth:`step` updates it from the KL and the iteration.

    ``uses_kl``: whether :meth:`step` reacts to the KL; the trainer refuses such a controller for an actor
    without a likelihood (``Actor.has_likelihood = False``), whose KL estimate is meaningless.
    """

    uses_kl = False

    def __init__(self, learning_rate: float):
        super().__init__()
        if not learning_rate > 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be > 0, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)

    def step(self, kl: float, iteration: int) -> float:
        """The learning rate for the next optimiser step."""
        return self.learning_rate

    def get_extra_state(self) -> dict:
        return {"learning_rate": self.learning_rate}

    def set_extra_state(self, state: dict) -> None:
        self.learning_rate = float(state["learning_rate"])


@register("lr_controller", "fixed")
class FixedLR(LRController):
    """A constant learning rate."""


@register("lr_controller", "kl_adaptive")
class KLAdaptiveLR(LRController):
    """rsl_rl's rule: ``kl > 2 target`` -> lr / 1.5 (floor 1e-5); ``kl < target / 2`` -> lr * 1.5 (cap 1e-2).

    Which KL estimate drives it is the loss's ``kl_estimator`` (``loss.ppo.kl_estimator = @kl_estimator.k1()``).
    """

    uses_kl = True

    def __init__(
        self,
        learning_rate: float = 1e-3,
        target_kl: float = 0.01,
        factor: float = 1.5,
        min_learning_rate: float = 1e-5,
        max_learning_rate: float = 1e-2,
    ):
        super().__init__(learning_rate)
        if not target_kl > 0:
            raise ValueError(f"{type(self).__name__}: target_kl must be > 0, got {target_kl!r}")
        if not factor > 1:
            raise ValueError(f"{type(self).__name__}: factor must be > 1, got {factor!r}")
        if not 0 < min_learning_rate <= max_learning_rate:
            raise ValueError(
                f"{type(self).__name__}: need 0 < min_learning_rate <= max_learning_rate, "
                f"got {min_learning_rate!r}, {max_learning_rate!r}"
            )
        self.target_kl = target_kl
        self.factor = factor
        self.min_learning_rate = min_learning_rate
        self.max_learning_rate = max_learning_rate

    def step(self, kl: float, iteration: int) -> float:
        if kl > 2.0 * self.target_kl:
            self.learning_rate = max(self.learning_rate / self.factor, self.min_learning_rate)
        elif kl < 0.5 * self.target_kl:
            self.learning_rate = min(self.learning_rate * self.factor, self.max_learning_rate)
        return self.learning_rate


@register("lr_controller", "linear_decay")
class LinearDecayLR(LRController):
    """Linear decay from ``learning_rate`` to ``final_learning_rate`` over ``decay_iterations``."""

    def __init__(self, learning_rate: float = 3e-4, final_learning_rate: float = 0.0, decay_iterations: int = 1000):
        super().__init__(learning_rate)
        if decay_iterations < 1:
            raise ValueError(f"{type(self).__name__}: decay_iterations must be >= 1, got {decay_iterations!r}")
        if final_learning_rate < 0:
            raise ValueError(f"{type(self).__name__}: final_learning_rate must be >= 0, got {final_learning_rate!r}")
        self.initial_learning_rate = self.learning_rate
        self.final_learning_rate = final_learning_rate
        self.decay_iterations = decay_iterations

    def step(self, kl: float, iteration: int) -> float:
        progress = min(iteration / self.decay_iterations, 1.0)
        self.learning_rate = self.initial_learning_rate + progress * (self.final_learning_rate - self.initial_learning_rate)
        return self.learning_rate
