"""Data-parallel training over torch.distributed ranks: ``torchrun --nproc-per-node K -m genpo train CONFIG``.

Every rank steps its own env batch (``num_envs`` per rank, seed + rank) and all ranks keep identical
networks: the gradients and the KL that drives the learning rate are averaged over ranks before
clipping and the optimiser step, the normalisers combine their batch moments over ranks
(:meth:`DataParallel.combine_moments`, which the trainer hands to their running moments), and after every iteration
the trainer checks that every rank's parameters equal rank 0's. Rank 0 alone writes the run
directory. Advantages are standardised per rank (over that rank's rollout).

Why one flattened all-reduce of the gradients and not ``DistributedDataParallel``: DDP synchronises
through hooks on a module's ``forward``, but genpo's loss reaches the actor through ``log_prob``, the
flow's inverse and the compression term, not one forward call; averaging ``.grad`` after ``backward``
covers every call pattern and leaves the single-process update unchanged. gloo carries CPU tensors
and NCCL CUDA tensors (``cpu:gloo,cuda:nccl`` where CUDA exists).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import attrs
import torch
from torch import distributed


class DataParallelError(RuntimeError):
    """The ranks of a data-parallel run disagree (parameters, checkpoint world size)."""


@attrs.frozen
class DataParallel:
    """This process's place among the ranks; every collective is a no-op for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes metrics, TensorBoard and checkpoints, and prints."""
        return self.rank == 0

    def device(self, device: str) -> str:
        """The rank's device: a CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per rank on each node)."""
        return f"cuda:{self.local_rank}" if self.active and torch.device(device).type == "cuda" else device

    def average_gradients(self, parameters: Iterable[torch.Tensor], scalars: Sequence[torch.Tensor]) -> list[float]:
        """Replace each gradient by its mean over ranks and return the ranks' mean of each scalar, with
        one all-reduce per dtype. A non-finite value on any rank makes the sums non-finite on all."""
        scalars = [scalar.detach().reshape(1) for scalar in scalars]
        if not self.active:
            return [scalar.item() for scalar in scalars]
        tensors = [parameter.grad for parameter in parameters if parameter.grad is not None] + scalars
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for tensor in tensors:
            by_dtype.setdefault(tensor.dtype, []).append(tensor)
        for group in by_dtype.values():
            flat = torch.cat([tensor.reshape(-1) for tensor in group])
            distributed.all_reduce(flat)
            flat /= self.world_size
            for tensor, part in zip(group, flat.split([tensor.numel() for tensor in group]), strict=True):
                tensor.copy_(part.view_as(tensor))
        return [scalar.item() for scalar in scalars]

    def all_gather_object(self, value: object) -> list:
        """Every rank's ``value`` (picklable), in rank order."""
        if not self.active:
            return [value]
        gathered: list = [None] * self.world_size
        distributed.all_gather_object(gathered, value)
        return gathered

    def max(self, value: int) -> int:
        """The largest ``value`` over ranks (e.g. a stop request, so that all ranks stop together)."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.int64)  # a CPU tensor: gloo carries it
        distributed.all_reduce(tensor, op=distributed.ReduceOp.MAX)
        return int(tensor.item())

    def combine_moments(
        self, count: float, mean: torch.Tensor, variance: torch.Tensor
    ) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The count, mean and (population) variance of the union of every rank's batch, from each rank's
        own; every rank combines the same gathered moments in rank order, so all get bit-identical
        results. The normalisers' running moments call it on every update (``RunningMoments.combine``)."""
        if not self.active:
            return count, mean, variance
        size = torch.tensor([float(count)], dtype=torch.float64, device=mean.device)
        packed = torch.cat([size, mean.reshape(-1), variance.reshape(-1)])
        gathered = [torch.empty_like(packed) for _ in range(self.world_size)]
        distributed.all_gather(gathered, packed)
        stacked = torch.stack(gathered)
        counts, means, variances = stacked[:, :1], stacked[:, 1 : 1 + mean.numel()], stacked[:, 1 + mean.numel() :]
        total, combined_mean, combined_variance = pooled_moments(counts, means, variances)
        return total.item(), combined_mean.reshape(mean.shape), combined_variance.reshape(variance.shape)

    def broadcast_from_main(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's (networks initialised from different seeds start equal)."""
        if self.active:
            for tensor in tensors:
                distributed.broadcast(tensor.data, src=0)

    def difference_from_main(self, tensors: Iterable[torch.Tensor]) -> float:
        """The largest absolute difference between any rank's ``tensors`` and rank 0's (0.0: identical)."""
        if not self.active:
            return 0.0
        flat = torch.cat([tensor.detach().reshape(-1).to(torch.float64) for tensor in tensors])
        gathered = [torch.empty_like(flat) for _ in range(self.world_size)]
        distributed.all_gather(gathered, flat)
        return max((other - gathered[0]).abs().max().item() for other in gathered)


def pooled_moments(
    counts: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count, mean and population variance of the union of K batches, from each batch's ([K, 1],
    [K, n], [K, n]): the within-batch variances plus the spread of the batch means."""
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    variance = (counts * (variances + (means - mean).pow(2))).sum(0) / total
    return total, mean, variance


SINGLE_PROCESS = DataParallel()


def current() -> DataParallel:
    """The ranks of torch.distributed's default process group, or :data:`SINGLE_PROCESS` without one."""
    if not (distributed.is_available() and distributed.is_initialized()):
        return SINGLE_PROCESS
    return DataParallel(distributed.get_rank(), distributed.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def join_from_environment() -> DataParallel:
    """Join the process group that torchrun describes (``WORLD_SIZE`` > 1 in the environment), else
    stay a single process. gloo for CPU tensors, NCCL for CUDA ones."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or distributed.is_initialized():
        return current()
    if not distributed.is_available():
        raise DataParallelError("launched by torchrun (WORLD_SIZE > 1) but this torch build has no torch.distributed")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        distributed.init_process_group("cpu:gloo,cuda:nccl")
    else:
        distributed.init_process_group("gloo")
    return current()


def leave() -> None:
    """Tear down the process group joined by :func:`join_from_environment`."""
    if distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
