"""Running mean and variance over batches (Chan et al.'s parallel update), kept in buffers."""

from __future__ import annotations

import torch
from torch import nn


class RunningMoments(nn.Module):
    """Mean and variance of every sample seen so far, per feature; saved with ``state_dict``."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("variance", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def update(self, batch: torch.Tensor) -> None:
        """Fold ``batch`` [n, *shape] into the moments."""
        batch = batch.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        batch_count = batch.shape[0]
        batch_mean = batch.mean(0)
        batch_variance = batch.var(0, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * (batch_count / total)
        self.variance.copy_(
            (self.variance * self.count + batch_variance * batch_count + delta.pow(2) * self.count * batch_count / total)
            / total
        )
        self.count.copy_(total)
