"""Score tuning configurations from their runs' metrics: the rule of docs/notebook/results_full.md
("How the defaults were chosen"), with runs pooled from several sweeps.

A configuration's score is the mean over the tuning tasks of its IQM final return divided by the task's
reference return (rsl_rl at 0.5M), with a stratified bootstrap CI
(:func:`genpo.experiments.statistics.normalized_score_ci`). Each ``--arm`` names a configuration and
its variant directories as ``task=DIR`` (``DIR/seed*/metrics.csv``); several directories for one task
pool their seeds, e.g. the tuning's seeds 0-2 and a follow-up's seeds 3-5:

    .venv/bin/python -m benchmarks.tuning_score --reference halfcheetah=1158 --reference hopper=1073 \\
        --arm "GenPO default" halfcheetah=docs/results/tuning/halfcheetah/genpo_default \\
              hopper=docs/results/tuning/hopper/genpo_default

Prints one markdown row per arm: per task the IQM [CI] and the seeds' final returns, then the score [CI].
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genpo.experiments import statistics
from genpo.training.run_logger import METRICS_FILE, read_metrics


def task_value_pairs(pairs: list[str], what: str) -> list[tuple[str, str]]:
    """``['task=value', ...]`` as ``[(task, value), ...]``; a pair without ``=`` fails naming it."""
    parsed = []
    for pair in pairs:
        task, separator, value = pair.partition("=")
        if not separator or not task or not value:
            raise SystemExit(f"tuning_score: {what} must be TASK=VALUE, got {pair!r}")
        parsed.append((task, value))
    return parsed


def seed_finals(variant_dir: Path, last_k: int) -> list[float]:
    """The final return of every ``seed*`` run under ``variant_dir``, in seed-directory order."""
    runs = sorted(path for path in variant_dir.glob("seed*") if (path / METRICS_FILE).is_file())
    if not runs:
        raise SystemExit(f"tuning_score: no seed*/{METRICS_FILE} under {variant_dir}")
    return [statistics.final_return(read_metrics(run / METRICS_FILE), last_k=last_k) for run in runs]


def arm_row(name: str, dirs: list[tuple[str, str]], references: dict[str, float], last_k: int) -> str:
    """The markdown row of one arm: per task IQM [CI] (finals), then the normalized score [CI]."""
    finals: dict[str, list[float]] = {task: [] for task in references}
    for task, directory in dirs:
        if task not in references:
            raise SystemExit(f"tuning_score: arm {name!r} names task {task!r}, which has no --reference ({sorted(references)})")
        finals[task] += seed_finals(Path(directory), last_k)
    counts = {task: len(values) for task, values in finals.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise SystemExit(f"tuning_score: arm {name!r} needs the same number of runs on every task, got {counts}")
    cells = []
    for values in finals.values():
        point, low, high = statistics.stratified_bootstrap_ci(values, statistics.iqm)
        cells.append(f"{point:.0f} [{low:.0f}, {high:.0f}] ({', '.join(f'{value:.0f}' for value in values)})")
    score, low, high = statistics.normalized_score_ci(np.array(list(finals.values())).T, list(references.values()))
    return f"| {name} | " + " | ".join(cells) + f" | {score:.2f} [{low:.2f}, {high:.2f}] |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", action="append", required=True, metavar="TASK=RETURN", help="a tuning task and its reference return")
    parser.add_argument("--arm", action="append", nargs="+", required=True, metavar="NAME TASK=DIR", help="a configuration and its variant directories")
    parser.add_argument("--last-k", type=int, default=statistics.DEFAULT_LAST_K, help="final return: mean of the last K logged returns")
    args = parser.parse_args()
    references = {task: float(value) for task, value in task_value_pairs(args.reference, "--reference")}
    print("| configuration | " + " | ".join(f"{task} IQM [95% CI] (seeds)" for task in references) + " | score [95% CI] |")
    print("|---|" + "---|" * (len(references) + 1))
    for name, *dirs in args.arm:
        print(arm_row(name, task_value_pairs(dirs, f"arm {name!r}"), references, args.last_k))


if __name__ == "__main__":
    main()
