"""Running mean and variance over batches (Chan et al.'s parallel update), kept in buffers."""

from __future__ import annotations

import torch
from torch import distributed, nn


class RunningMoments(nn.Module):
    """Mean and variance of every sample seen so far, per feature; saved with ``state_dict``.

    In a data-parallel run (torch.distributed initialised with several ranks) each batch's moments are
    first combined over the ranks, so every rank folds in the same global batch and holds the same
    statistics as the others.
    """

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
        if distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1:
            batch_count, batch_mean, batch_variance = _across_ranks(batch_count, batch_mean, batch_variance)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * (batch_count / total)
        self.variance.copy_(
            (self.variance * self.count + batch_variance * batch_count + delta.pow(2) * self.count * batch_count / total)
            / total
        )
        self.count.copy_(total)


def _across_ranks(count: int, mean: torch.Tensor, variance: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The count, mean and (population) variance of the union of every rank's batch; every rank
    combines the same gathered moments in rank order, so all get bit-identical results."""
    size = torch.tensor([float(count)], dtype=torch.float64, device=mean.device)
    packed = torch.cat([size, mean.reshape(-1), variance.reshape(-1)])
    gathered = [torch.empty_like(packed) for _ in range(distributed.get_world_size())]
    distributed.all_gather(gathered, packed)
    stacked = torch.stack(gathered)
    counts, means, variances = stacked[:, :1], stacked[:, 1 : 1 + mean.numel()], stacked[:, 1 + mean.numel() :]
    total = counts.sum()
    combined_mean = (counts * means).sum(0) / total
    combined_variance = (counts * (variances + (means - combined_mean).pow(2))).sum(0) / total
    return total.item(), combined_mean.reshape(mean.shape), combined_variance.reshape(variance.shape)
