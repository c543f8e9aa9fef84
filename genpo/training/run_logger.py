"""Per-iteration metrics: metrics.csv, TensorBoard (torchrl's logger), progress display, curve PNG.

torchrl's ``CSVLogger`` writes one file per scalar; users (and the sweep runner) want one
``metrics.csv`` row per iteration, so that file is written here. TensorBoard goes through torchrl.

A resumed run continues from its checkpoint, so the logger starts by cutting every record back to
the checkpoint's iteration: rows past it are dropped from ``metrics.csv`` (rewritten atomically)
and TensorBoard is rebuilt from the kept rows (its event files cannot be cut), so the CSV,
TensorBoard, the summary and the curve hold exactly the iterations the restored state has seen.
Each row is appended with one write of the whole line, so a crash leaves at most a torn last line,
which a resume drops (with a note); a resumed run whose metrics.csv is gone is refused.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from genpo.training.atomic_files import atomic_write_text
from genpo.validation import check_positive_int

METRICS_FILE = "metrics.csv"
CURVE_FILE = "learning_curve.png"
SUMMARY_FILE = "summary.json"
RETURN_KEY = "return_mean"
DEFAULT_LAST_K = 3
TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_STAGING = "tensorboard.rebuild"
NO_EPISODE_YET = "no finished episode yet"


class RunLogger:
    """Writes each iteration's metrics row to the run directory and shows progress.

    ``start_iteration``: the iteration of the state training continues from (0 for a new run);
    records of later iterations are discarded.
    """

    def __init__(self, run_dir: Path, total_iterations: int, *, quiet: bool = False, start_iteration: int = 0):
        self.run_dir = run_dir
        self.quiet = quiet
        self.total_iterations = total_iterations
        self.start_iteration = start_iteration
        metrics_path = run_dir / METRICS_FILE
        if start_iteration > 0 and not metrics_path.is_file():
            raise RunMetricsError(
                f"{metrics_path} is missing, but the run's checkpoint is at iteration {start_iteration}: restore "
                "the file (its rows up to that iteration) to continue, or start the run over with --overwrite"
            )
        recorded, torn = read_metrics_checked(metrics_path)
        if torn is not None:
            print(f"note: dropped the last line of {metrics_path}, cut short when the run stopped: {torn!r}", flush=True)
        self.rows = [row for row in recorded if row["iteration"] <= start_iteration]
        self.columns: list[str] = list(recorded[0]) if recorded else []
        if len(self.rows) < len(recorded) or torn is not None:
            self._rewrite()
        if any((run_dir / name).exists() for name in (TENSORBOARD_DIR, TENSORBOARD_STAGING)):
            self._rebuild_tensorboard()
        self.tensorboard = _tensorboard_logger(run_dir, TENSORBOARD_DIR)
        self.progress = None if quiet else tqdm(total=total_iterations, initial=0, desc="train", unit="it", dynamic_ncols=True)
        returns = [row["return_mean"] for row in self.rows if math.isfinite(row.get("return_mean", math.nan))]
        self.last_return = returns[-1] if returns else math.nan

    def log(self, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)
        if any(key not in self.columns for key in metrics):
            self.columns += [key for key in metrics if key not in self.columns]
            self._rewrite()
        else:
            line = io.StringIO()
            csv.DictWriter(line, self.columns).writerow(metrics)
            with open(self.run_dir / METRICS_FILE, "ab") as handle:  # one write of the whole line
                handle.write(line.getvalue().encode())
        _log_scalars(self.tensorboard, metrics)
        if math.isfinite(metrics["return_mean"]):
            self.last_return = metrics["return_mean"]
        self._show(metrics)

    @property
    def last_return_text(self) -> str:
        """The last finished episodes' mean return, or that none has finished yet."""
        return f"{self.last_return:.1f}" if math.isfinite(self.last_return) else NO_EPISODE_YET

    def _show(self, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.set_postfix(
                ret=self.last_return_text, steps_s=f"{metrics['env_steps_per_s']:.0f}", lr=f"{metrics['lr']:.1e}"
            )
            self.progress.update(1)
            return
        done = int(metrics["iteration"]) - self.start_iteration
        if done == self.total_iterations or done % max(1, self.total_iterations // 10) == 0:
            print(
                f"iteration {int(metrics['iteration'])}  env_steps {int(metrics['env_steps'])}  "
                f"return {self.last_return_text}  {metrics['env_steps_per_s']:.0f} steps/s",
                flush=True,
            )

    def _rewrite(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.run_dir / METRICS_FILE, text.getvalue())

    def _rebuild_tensorboard(self) -> None:
        """Replace ``tensorboard/`` by the kept rows' scalars (an interrupted rebuild is redone at the
        next resume, from the CSV)."""
        staging = self.run_dir / TENSORBOARD_STAGING
        shutil.rmtree(staging, ignore_errors=True)
        logger = _tensorboard_logger(self.run_dir, staging.name)
        for row in self.rows:
            _log_scalars(logger, row)
        logger.experiment.close()
        shutil.rmtree(self.run_dir / TENSORBOARD_DIR, ignore_errors=True)
        staging.rename(self.run_dir / TENSORBOARD_DIR)

    def close(self) -> dict:
        """Flush TensorBoard, draw the learning curve and write ``summary.json``; returns the summary."""
        if self.progress is not None:
            self.progress.close()
        self.tensorboard.experiment.flush()
        plot_learning_curve(self.rows, self.run_dir / CURVE_FILE)
        summary = summarize(self.rows)
        atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
        return summary


@contextlib.contextmanager
def tensorboard_write_failures() -> Iterator[list[OSError]]:
    """Within the block, an OSError in TensorBoard's background writer thread (its folder deleted, a full
    disk) is appended to the yielded list instead of printing a thread traceback; the training loop
    raises it as its own one-line failure."""
    failures: list[OSError] = []
    previous = threading.excepthook

    def record(args: threading.ExceptHookArgs) -> None:
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if isinstance(args.exc_value, OSError) and any("tensorboard" in frame.filename for frame in frames):
            failures.append(args.exc_value)
        else:
            previous(args)

    threading.excepthook = record
    try:
        yield failures
    finally:
        threading.excepthook = previous


def _tensorboard_logger(run_dir: Path, name: str):
    from torchrl.record.loggers import TensorboardLogger

    return TensorboardLogger(exp_name=name, log_dir=str(run_dir))


def _log_scalars(logger, row: dict[str, float]) -> None:
    """Every finite metric of one iteration's row, against env steps."""
    step = int(row["env_steps"])
    for key, value in row.items():
        if key != "iteration" and math.isfinite(value):
            logger.log_scalar(key, value, step=step)


def finite_returns(rows: Sequence[Mapping[str, float]], key: str = RETURN_KEY) -> list[float]:
    return [row[key] for row in rows if math.isfinite(row.get(key, math.nan))]


def final_return(rows: Sequence[Mapping[str, float]], last_k: int = DEFAULT_LAST_K, key: str = RETURN_KEY) -> float:
    """A run's final return, the one definition used by summaries, sweep reports and learning tests:
    the mean of the last ``last_k`` finite ``key`` values of its metric rows (NaN if there are none).
    One iteration's mean is noisy, and episodes that end together log a return only now and then."""
    check_positive_int("final_return", "last_k", last_k)
    values = finite_returns(rows, key)[-last_k:]
    return sum(values) / len(values) if values else math.nan


def summarize(rows: list[dict[str, float]]) -> dict:
    """Totals, the final return (:func:`final_return`) and the best iteration return of a run's rows."""
    returns = finite_returns(rows)
    last = rows[-1] if rows else {}
    return {
        "iterations": int(last.get("iteration", 0)),
        "env_steps": int(last.get("env_steps", 0)),
        "train_seconds": sum(row.get("wall_time", 0.0) for row in rows),
        "final_return": final_return(rows) if returns else None,
        "best_return": max(returns) if returns else None,
        "final_metrics": {key: value for key, value in last.items() if math.isfinite(value)},
    }


class RunMetricsError(ValueError):
    """A run's metrics.csv cannot be continued."""


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv (integers as ints, other numbers as floats, empty cells NaN); no file
    gives no rows, and a last line cut short by a crash is left out."""
    return read_metrics_checked(path)[0]


def read_metrics_checked(path: Path) -> tuple[list[dict[str, float]], str | None]:
    """:func:`read_metrics` and the torn last line it left out (None when the file ends with a whole row).

    Rows are appended one whole line per write, so a crash can only leave the last line incomplete:
    without its newline, or with fewer cells than the header.
    """
    if not path.is_file():
        return [], None
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    torn = None
    if len(lines) > 1 and (not lines[-1].endswith("\n") or lines[-1].count(",") != lines[0].count(",")):
        torn = lines.pop().rstrip("\n")
    rows = [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(io.StringIO("".join(lines)))]
    return rows, torn


def _number(text: str | None) -> float:
    if text in ("", None):
        return math.nan
    try:
        return int(text)
    except ValueError:
        return float(text)


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
    else:
        done = f" after {int(rows[-1]['env_steps'])} env steps" if rows else ""
        axis.text(0.5, 0.5, f"{NO_EPISODE_YET}{done}", transform=axis.transAxes, ha="center", va="center")
    axis.set_xlabel("env steps")
    axis.set_ylabel("episode return")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
