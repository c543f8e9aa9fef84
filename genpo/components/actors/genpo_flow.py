"""The GenPO actor: a flow policy over the doubled action with an exact likelihood."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from genpo.components.actors.base import LOG_2PI, Actor, standard_normal_log_prob
from genpo.components.actors.readout import LinearReadout
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.registry import register


@register("actor", "genpo")
class GenPOActor(Actor):
    """Samples z ~ N(0, I_2d), maps it through the flow to the dummy action, reads out the env action.

    ``log pi(a~|s) = log N(z; 0, I) - log|det dF/dz|`` with ``z = F^-1(a~; s)``: one inverse pass, no
    Jacobian. The likelihood is defined on the stored ``dummy_action``; the env sees only the readout.
    """

    sample_keys = ("dummy_action",)

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        *,
        flow: Callable[..., DummyActionFlow] = DummyActionFlow,
        readout: LinearReadout | None = None,
    ):
        super().__init__(observation_dim, action_dim)
        self.flow = flow(observation_dim, action_dim)
        self.readout = readout if readout is not None else LinearReadout()

    @property
    def noise_dim(self) -> int:
        return 2 * self.action_dim

    def sample(self, tensordict: TensorDictBase, noise: torch.Tensor | None = None) -> TensorDictBase:
        observation = self.observation(tensordict)
        noise = self.draw_noise(observation, noise)
        dummy_action, log_det = self.flow.compute(observation, noise)
        tensordict.set("dummy_action", dummy_action)
        tensordict.set("action", self.readout.compute(dummy_action))
        tensordict.set("action_log_prob", standard_normal_log_prob(noise) - log_det)
        return tensordict

    def _invert(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        observation = self.observation(tensordict)
        dummy_action = self.stored(tensordict, "dummy_action", self.noise_dim)
        return self.flow.inverse(observation, dummy_action)

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        noise, log_det = self._invert(tensordict)
        return standard_normal_log_prob(noise) - log_det

    def inverse(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self._invert(tensordict)[0]

    def entropy(self, tensordict: TensorDictBase) -> torch.Tensor | None:
        """The dummy policy's entropy ``d(1 + log 2 pi) + log|det|``: a constant when the coupling declares
        its log-det state-independent (``state_independent_log_det``), else None (no closed form)."""
        if not self.flow.coupling.state_independent_log_det:
            return None
        observation = self.observation(tensordict)
        value = self.action_dim * (1.0 + LOG_2PI) + self.flow.constant_log_det
        return torch.full(observation.shape[:-1], value, dtype=observation.dtype, device=observation.device)
