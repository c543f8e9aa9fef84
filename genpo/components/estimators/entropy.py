"""Entropy estimators for the PPO entropy term.

Each is called as ``estimator(actor, tensordict, log_prob)`` with the minibatch ``tensordict`` and
``log_prob``, the current policy's log-likelihood of the stored samples, and returns a scalar entropy
estimate (differentiable where the estimator is) or None when the term is switched off.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from genpo.components.actors.base import Actor
from genpo.registry import register


@register("entropy_estimator", "sample_log_prob")
class SampleLogProbEntropy(nn.Module):
    """The paper's estimate ``-mean log pi_theta(a~_i | s_i)`` over the rollout's stored samples.

    For GenPO the true dummy entropy is a constant, so this term's gradient equals the gradient of
    ``KL(pi_old || pi_theta)``: maximising it pushes the policy away from the rollout policy inside an
    update (more exploration of the states visited), it does not raise the entropy itself.
    """

    def forward(self, actor: Actor, tensordict: TensorDictBase, log_prob: torch.Tensor) -> torch.Tensor:
        return -log_prob.mean()


@register("entropy_estimator", "monte_carlo")
class MonteCarloEntropy(nn.Module):
    """``-mean log pi_theta(a|s)`` on fresh samples from the current policy (unbiased for H(pi(.|s)))."""

    def __init__(self, num_samples: int = 1):
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"{type(self).__name__}: num_samples must be >= 1, got {num_samples!r}")
        self.num_samples = num_samples

    def forward(self, actor: Actor, tensordict: TensorDictBase, log_prob: torch.Tensor) -> torch.Tensor:
        fresh = tensordict.select(actor.observation_key).expand(self.num_samples, *tensordict.batch_size)
        return -actor.sample(fresh.clone(False))["action_log_prob"].mean()


@register("entropy_estimator", "analytic")
class AnalyticEntropy(nn.Module):
    """The actor's closed-form entropy averaged over states (Gaussian; GenPO with a constant log-det)."""

    def forward(self, actor: Actor, tensordict: TensorDictBase, log_prob: torch.Tensor) -> torch.Tensor:
        entropy = actor.entropy(tensordict)
        if entropy is None:
            raise ValueError(
                f"entropy_estimator 'analytic': {type(actor).__name__} has no closed-form entropy with this "
                "configuration; use 'sample_log_prob' or 'monte_carlo'"
            )
        return entropy.mean()


@register("entropy_estimator", "none")
class NoEntropy(nn.Module):
    """No entropy term."""

    def forward(self, actor: Actor, tensordict: TensorDictBase, log_prob: torch.Tensor) -> None:
        return None
