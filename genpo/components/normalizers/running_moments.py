"""Running mean and variance over batches (Chan et al.'s parallel update), kept in buffers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# (count, mean, population variance) of one batch -> those of the union of every process's batch.
CombineMoments = Callable[[float, torch.Tensor, torch.Tensor], tuple[float, torch.Tensor, torch.Tensor]]


class RunningMoments(nn.Module):
    """Mean and variance of every sample seen so far, per feature; saved with ``state_dict``.

    ``combine``, when set, first combines each batch's moments with the other processes' (a data-parallel
    run sets it to :meth:`genpo.training.data_parallel.DataParallel.combine_moments`), so every rank folds
    in the same global batch and holds the same statistics as the others; components never call a
    collective themselves.
    """

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.combine: CombineMoments | None = None
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("variance", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def update(self, batch: torch.Tensor) -> None:
        """Fold ``batch`` [n, *shape] into the moments."""
        batch = batch.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        batch_count = batch.shape[0]
        batch_mean = batch.mean(0)
        batch_variance = batch.var(0, unbiased=False)
        if self.combine is not None:
            batch_count, batch_mean, batch_variance = self.combine(batch_count, batch_mean, batch_variance)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * (batch_count / total)
        self.variance.copy_(
            (self.variance * self.count + batch_variance * batch_count + delta.pow(2) * self.count * batch_count / total)
            / total
        )
        self.count.copy_(total)
