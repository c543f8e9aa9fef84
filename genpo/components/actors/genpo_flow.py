"""The GenPO actor: a flow policy over the doubled action with an exact likelihood."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from genpo.components.actors.base import LOG_2PI, Actor, standard_normal_log_prob
from genpo.components.actors.readout import LinearReadout
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.registry import register


@register("actor", "genpo")
class GenPOActor(Actor):
    """Samples eps ~ N(0, I_2d), maps ``z = noise_scale * eps`` through the flow to the dummy action, reads
    out the env action.

    ``log pi(a~|s) = log N(eps; 0, I) - 2d log noise_scale - log|det dF/dz|`` with
    ``eps = F^-1(a~; s) / noise_scale``: one inverse pass, no Jacobian. The likelihood is defined on the
    stored ``dummy_action``; the env sees only the readout.

    ``noise_scale`` (1 by default) is part of the map, like a first linear layer: given noise, and what
    :meth:`inverse` returns, is always the standard-normal ``eps``. It sets the initial spread of the
    actions (on Ant 0.7 starts them at a per-dimension std of about 0.5 instead of 0.7). An exploration
    schedule (``genpo.trainer.exploration_schedule``) replaces it per iteration; within an iteration it is
    constant, so the likelihood stays exact and the ratio on fresh samples is 1.
    """

    sample_keys = ("dummy_action",)

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        flow: Callable[..., DummyActionFlow] = DummyActionFlow,
        readout: LinearReadout | None = None,
        noise_scale: float = 1.0,
    ):
        super().__init__(observation_dim, action_dim)
        if not (noise_scale > 0 and math.isfinite(noise_scale)):
            raise ValueError(f"actor.genpo: noise_scale must be finite and > 0, got {noise_scale!r}")
        self.noise_scale = float(noise_scale)
        self.flow = flow(observation_dim, action_dim)
        self.readout = readout if readout is not None else LinearReadout()

    @property
    def noise_dim(self) -> int:
        return 2 * self.action_dim

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        scaled = noise if self.noise_scale == 1.0 else self.noise_scale * noise
        dummy_action, log_det = self.flow.compute(observation, scaled)
        tensordict.set("dummy_action", dummy_action)
        tensordict.set("action", self.readout.compute(dummy_action))
        tensordict.set("action_log_prob", standard_normal_log_prob(noise) - log_det - self.noise_scale_log_det)
        return tensordict

    @property
    def noise_scale_log_det(self) -> float:
        """log|det| of the scaling ``eps -> noise_scale * eps``: ``2d log noise_scale``."""
        return 0.0 if self.noise_scale == 1.0 else self.noise_dim * math.log(self.noise_scale)

    def _invert(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, log|det d dummy / d eps|) of the stored dummy action."""
        observation = self.observation(tensordict)
        dummy_action = self.stored(tensordict, "dummy_action", self.noise_dim)
        scaled, log_det = self.flow.inverse(observation, dummy_action)
        if self.noise_scale == 1.0:
            return scaled, log_det
        return scaled / self.noise_scale, log_det + self.noise_scale_log_det

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        noise, log_det = self._invert(tensordict)
        return standard_normal_log_prob(noise) - log_det

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self._invert(tensordict)[0]

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor | None:
        """The dummy policy's entropy ``d(1 + log 2 pi) + log|det|`` (the scaling's included): a constant when the coupling declares
        its log-det state-independent (``state_independent_log_det``), else None (no closed form)."""
        if not self.flow.coupling.state_independent_log_det:
            return None
        observation = self.observation(tensordict)
        value = self.action_dim * (1.0 + LOG_2PI) + self.flow.constant_log_det + self.noise_scale_log_det
        return torch.full(observation.shape[:-1], value, dtype=observation.dtype, device=observation.device)
