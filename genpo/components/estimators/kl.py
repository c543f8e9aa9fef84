"""KL(pi_old || pi_theta) estimators from stored and current log-likelihoods (Schulman's k1, k3)."""

from __future__ import annotations

import torch
from torch import nn

from genpo.registry import register


@register("kl_estimator", "k1")
class K1KL(nn.Module):
    """``mean(log pi_old - log pi_theta)``: unbiased, but can be negative on a finite batch (the paper's)."""

    in_keys = ["action_log_prob", "log_prob"]

    def forward(self, old_log_prob: torch.Tensor, new_log_prob: torch.Tensor) -> torch.Tensor:
        return (old_log_prob - new_log_prob).mean()


@register("kl_estimator", "k3")
class K3KL(nn.Module):
    """``mean((r - 1) - log r)`` with ``r = pi_theta / pi_old``: unbiased and never negative."""

    in_keys = ["action_log_prob", "log_prob"]

    def forward(self, old_log_prob: torch.Tensor, new_log_prob: torch.Tensor) -> torch.Tensor:
        log_ratio = new_log_prob - old_log_prob
        return (torch.expm1(log_ratio) - log_ratio).mean()  # expm1: exp(x) - 1 cancels below 0 for tiny x
