"""Evaluation of a sweep's finished runs: each run's final policy over ``evaluation_episodes``
episodes (one per env, every episode from step 0) under ``evaluation_noise`` (``zero``: deterministic),
stored in the run as ``evaluation.json`` so the report, and an archive without checkpoints, carries it.

Every run is evaluated on the same env seed, so all contenders start from the same initial states.
A stored evaluation is reused while it matches the settings and the run's final iteration (a run
extended with more iterations is evaluated again).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from genpo.experiments.runner import completed_iterations, job_state, read_json
from genpo.experiments.spec import Job, SweepSpec
from genpo.training.atomic_files import atomic_write_text
from genpo.training.run_directory import CHECKPOINT_DIR, read_config

EVALUATION_FILE = "evaluation.json"
EVALUATION_SEED = 12345  # `genpo evaluate`'s default: the same initial states for every run


def evaluator(trainer_kind: str) -> Callable[..., dict]:
    """The evaluate function of runs trained by ``trainer_kind`` (``genpo evaluate`` and the sweep use it)."""
    if trainer_kind == "rsl_rl":
        from genpo.baselines.rsl_rl import evaluate_rsl_rl_run

        return evaluate_rsl_rl_run
    from genpo.builders.evaluation import evaluate_run

    return evaluate_run


def read_evaluation(run_dir: Path) -> dict | None:
    """The run's stored evaluation, None without a readable one."""
    return read_json(run_dir / EVALUATION_FILE)


def evaluation_return(run_dir: Path, spec: SweepSpec) -> float:
    """The run's stored evaluation return if it matches the spec's settings, else NaN."""
    stored = read_evaluation(run_dir)
    if stored is None or (stored.get("episodes"), stored.get("noise")) != (spec.evaluation_episodes, spec.evaluation_noise):
        return math.nan
    return float(stored["return_mean"])


def _is_current(stored: dict | None, spec: SweepSpec, iteration: int | None) -> bool:
    if stored is None:
        return False
    wanted = (spec.evaluation_episodes, spec.evaluation_noise, iteration)
    return (stored.get("episodes"), stored.get("noise"), stored.get("checkpoint_iteration")) == wanted


def evaluate_runs(spec: SweepSpec, jobs: Sequence[Job], on_event: Callable[[Job, dict], None] | None = None) -> int:
    """Evaluate every finished run that has checkpoints and no current ``evaluation.json``; returns how
    many were evaluated. Nothing happens unless the spec sets ``evaluation_episodes``."""
    if spec.evaluation_episodes is None:
        return 0
    evaluated = 0
    for job in jobs:
        if job_state(job)[0] != "finished" or not (job.run_dir / CHECKPOINT_DIR).is_dir():
            continue
        if _is_current(read_evaluation(job.run_dir), spec, completed_iterations(job.run_dir)):
            continue
        _, record = read_config(job.run_dir)
        result = evaluator(record.trainer)(
            job.run_dir, episodes=spec.evaluation_episodes, noise=spec.evaluation_noise, seed=EVALUATION_SEED
        )
        result["run_dir"] = job.run_dir.name  # no machine path in a file that gets archived
        result["checkpoint"] = Path(result["checkpoint"]).name
        atomic_write_text(job.run_dir / EVALUATION_FILE, json.dumps(result, indent=2) + "\n")
        evaluated += 1
        if on_event is not None:
            on_event(job, result)
    return evaluated
