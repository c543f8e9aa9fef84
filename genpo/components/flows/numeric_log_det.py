"""The dummy-action flow with log|det dF/dz| from a numeric Jacobian (the GenPO reference code's way)."""

from __future__ import annotations

import torch
from torch.func import jacrev, vmap

from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.registry import register


@register("flow", "dummy_action_numeric_log_det")
class NumericLogDetFlow(DummyActionFlow):
    """Same map as :class:`DummyActionFlow`, but log|det dF/dz| is ``slogdet`` of the full 2d x 2d Jacobian.

    Each sample's Jacobian is built with ``vmap(jacrev(F))`` (2d reverse passes through all N steps), as
    the reference implementation does at every env step and update; the paper names that cost as its
    main limitation. Use it as a fallback for a coupling without an analytic log-det, and as the
    baseline the analytic log-det is checked and benchmarked against. Differentiable (the Jacobian is
    built functionally, so the log-det carries gradients to the weights).
    """

    # Why `genpo export` refuses an actor with this flow (the exporter reads it from any submodule).
    export_unsupported = "its sampling pass builds each sample's Jacobian with vmap(jacrev(...)), which graph tracing cannot record"

    def compute(self, observation: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation, z) -> (dummy action, numeric log|det dF/dz|)."""
        return self._map_and_log_det(observation, noise)

    def inverse(self, observation: torch.Tensor, dummy_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observation, dummy action) -> (z, numeric log|det dF/dz| at that z)."""
        noise, _ = super().inverse(observation, dummy_action)
        return noise, self._map_and_log_det(observation, noise)[1]

    def _map_and_log_det(self, observation: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_shape = torch.broadcast_shapes(observation.shape[:-1], noise.shape[:-1])
        flat_observation = observation.expand(*batch_shape, -1).reshape(-1, observation.shape[-1])
        flat_noise = noise.expand(*batch_shape, -1).reshape(-1, noise.shape[-1])

        def forward_map(one_observation: torch.Tensor, one_noise: torch.Tensor):
            dummy_action = DummyActionFlow.compute(self, one_observation, one_noise)[0]
            return dummy_action, dummy_action  # (output to differentiate, aux output to keep)

        jacobian, dummy_action = vmap(jacrev(forward_map, argnums=1, has_aux=True))(flat_observation, flat_noise)
        log_det = torch.linalg.slogdet(jacobian).logabsdet
        return dummy_action.reshape(*batch_shape, -1), log_det.reshape(batch_shape)
