"""KL(pi_old || pi_theta) estimators: the KL that drives the adaptive learning rate (``loss.ppo.kl_estimator``).

Each is called as ``estimator(actor, tensordict, old_log_prob, log_prob)`` with a minibatch, the stored
log-likelihoods of its samples under the rollout policy and the current policy's, and returns a scalar
estimate (detached by the loss). Before each update's first minibatch the loss calls
``start_update(actor)`` with the rollout policy, for estimators that sample from it.

``k1`` and ``k3`` (Schulman's) estimate the KL of the distribution the likelihood is defined on: for a
Gaussian that is the env action, for GenPO the doubled action (x, y), whose KL is the action's plus the
KL of the hidden half given the action (docs/results/kl_units/README.md measures the ratio).
``gaussian_action`` (``gaussian_action_kl.py``) estimates the KL of the action the env receives, for every actor;
``diagonal_gaussian`` (``diagonal_gaussian_kl.py``) computes it in closed form for a Gaussian actor.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from genpo.components.actors.base import Actor
from genpo.registry import register


class KLEstimator(nn.Module):
    """A KL(pi_old || pi_theta) estimate from a minibatch; stateless unless it overrides :meth:`start_update`."""

    def start_update(self, actor: Actor) -> None:
        """Called with the rollout policy before an update's first minibatch (nothing to keep here)."""

    def forward(
        self, actor: Actor, tensordict: TensorDictBase, old_log_prob: torch.Tensor, log_prob: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


@register("kl_estimator", "k1")
class K1KL(KLEstimator):
    """``mean(log pi_old - log pi_theta)`` of the stored samples: unbiased, but can be negative on a finite
    batch (the paper's). The KL of the density the actor's likelihood is defined on."""

    def forward(
        self, actor: Actor, tensordict: TensorDictBase, old_log_prob: torch.Tensor, log_prob: torch.Tensor
    ) -> torch.Tensor:
        return (old_log_prob - log_prob).mean()


@register("kl_estimator", "k3")
class K3KL(KLEstimator):
    """``mean((r - 1) - log r)`` with ``r = pi_theta / pi_old`` of the stored samples: unbiased and never
    negative. The KL of the density the actor's likelihood is defined on."""

    def forward(
        self, actor: Actor, tensordict: TensorDictBase, old_log_prob: torch.Tensor, log_prob: torch.Tensor
    ) -> torch.Tensor:
        log_ratio = log_prob - old_log_prob
        return (torch.expm1(log_ratio) - log_ratio).mean()  # expm1: exp(x) - 1 cancels below 0 for tiny x
