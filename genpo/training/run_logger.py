"""Per-iteration metrics: metrics.csv, TensorBoard (torchrl's logger), progress display, curve PNG.

torchrl's ``CSVLogger`` writes one file per scalar; users (and the sweep runner) want one
``metrics.csv`` row per iteration, so that file is written here. TensorBoard goes through torchrl.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from tqdm import tqdm

METRICS_FILE = "metrics.csv"
CURVE_FILE = "learning_curve.png"
SUMMARY_FILE = "summary.json"


class RunLogger:
    """Writes each iteration's metrics row to the run directory and shows progress."""

    def __init__(self, run_dir: Path, total_iterations: int, *, quiet: bool = False, start_iteration: int = 0):
        self.run_dir = run_dir
        self.quiet = quiet
        self.total_iterations = total_iterations
        self.rows = read_metrics(run_dir / METRICS_FILE)
        self.columns: list[str] = list(self.rows[0]) if self.rows else []
        from torchrl.record.loggers import TensorboardLogger

        self.tensorboard = TensorboardLogger(exp_name="tensorboard", log_dir=str(run_dir))
        self.progress = None if quiet else tqdm(total=total_iterations, initial=0, desc="train", unit="it", dynamic_ncols=True)
        self.last_return = math.nan
        self.start_iteration = start_iteration

    def log(self, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)
        if any(key not in self.columns for key in metrics):
            self.columns += [key for key in metrics if key not in self.columns]
            self._rewrite()
        else:
            with open(self.run_dir / METRICS_FILE, "a", newline="") as handle:
                csv.DictWriter(handle, self.columns).writerow(metrics)
        step = int(metrics["env_steps"])
        for key, value in metrics.items():
            if key != "iteration" and math.isfinite(value):
                self.tensorboard.log_scalar(key, value, step=step)
        if math.isfinite(metrics["return_mean"]):
            self.last_return = metrics["return_mean"]
        self._show(metrics)

    def _show(self, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.set_postfix(
                ret=f"{self.last_return:.1f}", steps_s=f"{metrics['env_steps_per_s']:.0f}", lr=f"{metrics['lr']:.1e}"
            )
            self.progress.update(1)
            return
        done = int(metrics["iteration"]) - self.start_iteration
        if done == self.total_iterations or done % max(1, self.total_iterations // 10) == 0:
            print(
                f"iteration {int(metrics['iteration'])}  env_steps {int(metrics['env_steps'])}  "
                f"return {self.last_return:.2f}  {metrics['env_steps_per_s']:.0f} steps/s",
                flush=True,
            )

    def _rewrite(self) -> None:
        path = self.run_dir / METRICS_FILE
        temporary = path.with_suffix(".csv.tmp")
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        temporary.replace(path)

    def close(self) -> dict:
        """Flush TensorBoard, draw the learning curve and write ``summary.json``; returns the summary."""
        if self.progress is not None:
            self.progress.close()
        self.tensorboard.experiment.flush()
        plot_learning_curve(self.rows, self.run_dir / CURVE_FILE)
        summary = summarize(self.rows)
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        return summary


def summarize(rows: list[dict[str, float]]) -> dict:
    """Totals and the last / best episode return of a run's metric rows."""
    returns = [row["return_mean"] for row in rows if math.isfinite(row.get("return_mean", math.nan))]
    last = rows[-1] if rows else {}
    return {
        "iterations": int(last.get("iteration", 0)),
        "env_steps": int(last.get("env_steps", 0)),
        "train_seconds": sum(row.get("wall_time", 0.0) for row in rows),
        "final_return": returns[-1] if returns else None,
        "best_return": max(returns) if returns else None,
        "final_metrics": {key: value for key, value in last.items() if math.isfinite(value)},
    }


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (empty cells are NaN); no file gives no rows."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: float(value) if value not in ("", None) else math.nan for key, value in row.items()} for row in csv.DictReader(handle)]


def plot_learning_curve(rows: list[dict[str, float]], path: Path) -> None:
    """Return per iteration against env steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(row["env_steps"], row["return_mean"]) for row in rows if math.isfinite(row.get("return_mean", math.nan))]
    figure, axis = plt.subplots(figsize=(6, 4))
    if points:
        steps, returns = zip(*points, strict=True)
        axis.plot(steps, returns)
    axis.set_xlabel("env steps")
    axis.set_ylabel("episode return")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
