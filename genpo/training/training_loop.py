"""The run loop shared by genpo's trainer and the rsl_rl baseline: iterate, log, checkpoint, and
stop without losing more than the iteration in flight.

Written once so that both trainers give the same guarantees: metrics and checkpoints stay
consistent across a crash and ``--resume``, a signal ends the run with a checkpoint, a non-finite
value stops it naming the last good checkpoint, and a write that fails (a full disk, the run directory
deleted under it) stops it in one line naming the last good checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from genpo.invocation import genpo_command
from genpo.training.checkpoint import load_checkpoint
from genpo.training.checkpoint_history import CheckpointHistory
from genpo.training.data_parallel import SINGLE_PROCESS, DataParallel
from genpo.training.errors import NonFiniteError, RunWriteError
from genpo.training.interrupts import InterruptGuard, TrainingInterrupted
from genpo.training.run_logger import RunLogger, tensorboard_write_failures
from genpo.training.thread_policy import ThreadPolicy


class MetricSink(Protocol):
    """A logger beside the run directory's own records (e.g. :class:`~genpo.training.wandb_logger.WandbLogger`):
    started before the first iteration, given each metrics row, finished with the summary."""

    def start(self, run_dir: Path, start_iteration: int) -> None: ...

    def log(self, metrics: dict[str, float]) -> None: ...

    def finish(self, summary: dict | None, failed: bool = False) -> None: ...


class Trainable(Protocol):
    """What the loop drives: one iteration at a time, and the state to checkpoint."""

    iteration: int

    def run_iteration(self) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...


def interval_return(rows: list[dict[str, float]], after_iteration: int) -> float | None:
    """Mean return of the episodes finished in the iterations after ``after_iteration`` (each
    iteration's mean weighted by its episode count); None when none finished."""
    weighted = [
        (row["return_mean"], row["episodes"])
        for row in rows
        if row["iteration"] > after_iteration and row.get("episodes", 0) > 0 and math.isfinite(row["return_mean"])
    ]
    episodes = sum(count for _, count in weighted)
    return sum(value * count for value, count in weighted) / episodes if episodes else None


EVALUATION_RETURN = "eval_return_mean"


def last_evaluation_return(rows: list[dict[str, float]], after_iteration: int) -> float | None:
    """The last evaluation return logged in the iterations after ``after_iteration``; None without one."""
    values = [
        row[EVALUATION_RETURN]
        for row in rows
        if row["iteration"] > after_iteration and math.isfinite(row.get(EVALUATION_RETURN, math.nan))
    ]
    return values[-1] if values else None


def run_training(
    trainable: Trainable,
    run_dir: Path,
    iterations: int,
    *,
    history: CheckpointHistory,
    checkpoint_interval: int,
    quiet: bool = False,
    parallel: DataParallel = SINGLE_PROCESS,
    threads: ThreadPolicy | None = None,
    best_by_evaluation: bool = False,
    sinks: Sequence[MetricSink] = (),
) -> dict:
    """Run ``iterations`` more iterations of ``trainable`` (which continues from its checkpoint's
    iteration), logging each, checkpointing every ``checkpoint_interval`` iterations and at the end;
    returns the run summary (also in ``summary.json``). ``best.pt`` is the checkpoint with the best
    training return over its interval (:func:`interval_return`), or with ``best_by_evaluation`` the best
    last evaluation return of its interval (:func:`last_evaluation_return`). Rank 0 also gives every row
    to the ``sinks``.

    SIGINT/SIGTERM: the iteration in flight finishes, a checkpoint is written and
    :class:`TrainingInterrupted` is raised; a second signal abandons the iteration at once.

    Data-parallel (``parallel`` with several ranks): rank 0 alone logs and writes checkpoints (every
    rank calls ``state_dict``, which gathers the ranks' states), and the ranks agree after each
    iteration on whether any was signalled, so that all stop at the same iteration (returns ``{}``
    on the other ranks).

    ``threads``: re-chooses torch's thread count after each iteration (when not pinned); each metrics
    row records the count its iteration ran with, since float results depend on it.
    """
    if iterations < 1:
        raise ValueError(f"train: iterations must be >= 1, got {iterations!r}")
    logger = RunLogger(run_dir, iterations, quiet=quiet, start_iteration=trainable.iteration) if parallel.is_main else None
    sinks = list(sinks) if parallel.is_main else []
    saved_at = trainable.iteration
    finished = False

    def checkpoint() -> None:
        nonlocal saved_at
        state = trainable.state_dict()
        if logger is not None and best_by_evaluation:
            history.save(state, last_evaluation_return(logger.rows, saved_at), "evaluation_return")
        elif logger is not None:
            history.save(state, interval_return(logger.rows, saved_at))
        saved_at = trainable.iteration

    def last_good() -> str:
        return f"{history.latest} (iteration {saved_at})" if history.latest.is_file() else "none written yet"

    try:
        try:
            for sink in sinks:
                sink.start(run_dir, trainable.iteration)
            with InterruptGuard() as interrupt, tensorboard_write_failures() as background_failures:
                for _ in range(iterations):
                    try:
                        metrics = trainable.run_iteration()
                    except NonFiniteError as error:
                        raise NonFiniteError(f"{error}; run stopped, last good checkpoint: {last_good()}") from None
                    metrics["threads"] = torch.get_num_threads()
                    if logger is not None:
                        if background_failures:
                            raise background_failures[0]
                        if not run_dir.is_dir():
                            raise FileNotFoundError(2, "the run directory was deleted during training", str(run_dir))
                        logger.log(metrics)
                    for sink in sinks:
                        sink.log(metrics)
                    change = threads.after_iteration() if threads is not None else None
                    if change and parallel.is_main:
                        print(f"genpo: {change}", file=sys.stderr, flush=True)
                    stop_signal = parallel.max(interrupt.signum or 0)
                    if trainable.iteration % checkpoint_interval == 0 or stop_signal:
                        checkpoint()
                    if stop_signal:
                        raise TrainingInterrupted(stop_signal, trainable.iteration, str(history.latest))
                if saved_at != trainable.iteration:
                    checkpoint()
                finished = True
        finally:
            summary = _close_after(logger, failing=sys.exc_info()[1] is not None) if logger is not None else {}
            for sink in sinks:
                sink.finish(summary, failed=not finished)
    except OSError as error:
        if not run_dir.is_dir():
            raise RunWriteError(
                f"the run directory {run_dir} was deleted during training (at iteration {trainable.iteration}); "
                "run stopped, nothing more could be saved"
            ) from None
        where = os.fsdecode(error.filename) if isinstance(error.filename, (str, bytes, os.PathLike)) else run_dir
        raise RunWriteError(
            f"writing the run failed at iteration {trainable.iteration}: {error.strerror or error} ({where}); "
            f"run stopped, last good checkpoint: {last_good()}; free the space and resume it with "
            f"`{genpo_command()} train --resume {run_dir}`"
        ) from None
    return summary


def _close_after(logger: RunLogger, *, failing: bool) -> dict:
    """``logger.close()``; when the run is already failing, a close that cannot write either (a full
    disk) does not hide the first error."""
    try:
        return logger.close()
    except OSError:
        if failing:
            return {}
        raise


class CheckpointedTrainer:
    """What every trainer shares around :func:`run_training`: ``train``, ``save``, ``load`` and
    ``checkpoint_path``. A subclass sets ``run_dir``, ``history`` (a :class:`CheckpointHistory`),
    ``settings`` (with ``checkpoint_interval``) and ``iteration``, declares ``CHECKPOINT_KEYS``, and
    implements ``run_iteration``, ``state_dict`` and ``load_state_dict(state, source)``."""

    CHECKPOINT_KEYS: tuple[str, ...] = ()
    run_dir: Path
    history: CheckpointHistory
    parallel: DataParallel = SINGLE_PROCESS
    metric_sinks: Sequence[MetricSink] = ()

    @property
    def checkpoint_path(self) -> Path:
        return self.history.latest

    def train(self, iterations: int, *, quiet: bool = False) -> dict:
        """Run ``iterations`` more iterations (see :func:`run_training`); returns the run's summary
        (also written to ``summary.json``)."""
        return run_training(
            self,
            self.run_dir,
            iterations,
            history=self.history,
            checkpoint_interval=self.settings.checkpoint_interval,
            quiet=quiet,
            parallel=self.parallel,
            threads=getattr(self, "threads", None),
            best_by_evaluation=getattr(self.settings, "evaluation_interval", None) is not None,
            sinks=self.metric_sinks,
        )

    def save(self) -> Path:
        """Checkpoint the current state as ``latest`` (and an iteration entry of the history); rank 0
        writes, every rank of a data-parallel run calls it."""
        state = self.state_dict()
        if self.parallel.is_main:
            self.history.save(state)
        return self.history.latest

    def load(self, path: str | Path | None = None) -> None:
        path = path or self.checkpoint_path
        self.load_state_dict(load_checkpoint(path, self.CHECKPOINT_KEYS), path)
