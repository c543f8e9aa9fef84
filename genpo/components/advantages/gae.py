"""Generalised advantage estimation over a rollout TensorDict[T, B] (torchrl's GAE underneath)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.objectives.value import GAE

from genpo.registry import register


@register("advantage", "gae")
class GAEAdvantage(nn.Module):
    """torchrl's GAE on stored values: reads ``state_value``, ``("next", "state_value")``, reward,
    ``done`` and ``terminated``; writes ``advantage`` and ``value_target`` [T, B, 1].

    Time-outs bootstrap correctly because the rollout stores V(final observation) as the next value
    of a truncated step: GAE cuts the trace at ``done`` but only zeroes the bootstrap at ``terminated``.
    ``time_out_value = 'current_state'`` bootstraps a time-out with V(s_t) of the step's own state
    instead (rsl_rl's shortcut, which needs no final observation), written over the time-out steps'
    ``("next", "state_value")``; the default is ``'final_observation'``.
    ``normalize`` standardises advantages over the whole batch (not per minibatch).
    """

    in_keys = ["state_value", ("next", "state_value"), ("next", "reward"), ("next", "done"), ("next", "terminated")]
    out_keys = ["advantage", "value_target"]

    def __init__(
        self, gamma: float = 0.99, lmbda: float = 0.95, normalize: bool = True, time_out_value: str = "final_observation"
    ):
        super().__init__()
        name = type(self).__name__
        for parameter, value in (("gamma", gamma), ("lmbda", lmbda)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: {parameter} must be in [0, 1], got {value!r}")
        if time_out_value not in ("final_observation", "current_state"):
            raise ValueError(f"{name}: time_out_value must be 'final_observation' or 'current_state', got {time_out_value!r}")
        self.normalize = normalize
        self.time_out_value = time_out_value
        self.estimator = GAE(gamma=gamma, lmbda=lmbda, value_network=None, time_dim=0)
        value, _, reward, done, terminated = (key if isinstance(key, str) else key[-1] for key in self.in_keys)
        if time_out_value == "current_state":
            self.in_keys = [*self.in_keys, ("next", "truncated")]
        advantage, value_target = self.out_keys
        self.estimator.set_keys(
            value=value, reward=reward, done=done, terminated=terminated, advantage=advantage, value_target=value_target
        )

    @property
    def gamma(self) -> float:
        """The discount torchrl's estimator uses (read back, so an ablation can check what was built)."""
        return self.estimator.gamma.item()

    @property
    def lmbda(self) -> float:
        """The GAE lambda torchrl's estimator uses."""
        return self.estimator.lmbda.item()

    def forward(self, rollout: TensorDictBase) -> TensorDictBase:
        missing = [key for key in self.in_keys if key not in rollout.keys(include_nested=True)]
        if missing:
            raise ValueError(f"{type(self).__name__}: the rollout lacks {missing}")
        if self.time_out_value == "current_state":
            time_out = rollout["next", "truncated"] & ~rollout["next", "terminated"]
            rollout["next", "state_value"] = torch.where(time_out, rollout["state_value"], rollout["next", "state_value"])
        self.estimator(rollout)
        if self.normalize:
            key = self.out_keys[0]
            rollout[key] = (rollout[key] - rollout[key].mean()) / (rollout[key].std() + 1e-8)
        return rollout
