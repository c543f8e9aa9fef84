"""Seconds per training iteration under each torch thread setting, on an idle machine and with one
competing busy process, so the default thread setting can be chosen on data.

Each setting trains ``TASK`` for a few iterations in its own ``genpo train`` process (environment
variables such as ``OMP_WAIT_POLICY`` only take effect before torch loads); the figure per run is the
median ``wall_time`` of ``metrics.csv`` after the first iteration. The competitor is a pure-Python busy
loop, which holds one core the way a second training run, a sweep worker or an IDE's indexer does.
A run that has not finished within ``--timeout`` seconds is reported as slower than the time it had per
iteration. Ratios are against the fastest setting on the idle machine, measured in this same process.

    .venv/bin/python -m benchmarks.thread_contention                        # Pendulum and HalfCheetah
    .venv/bin/python -m benchmarks.thread_contention --tasks gin/tasks/pendulum.gin --iterations 6
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# label -> (genpo.run.num_threads binding value, or None for genpo's default; extra environment)
SETTINGS: dict[str, tuple[str | None, dict[str, str]]] = {
    "all cores (torch default)": (str(os.cpu_count()), {}),
    "all cores, OMP_WAIT_POLICY=PASSIVE": (str(os.cpu_count()), {"OMP_WAIT_POLICY": "PASSIVE"}),
    "all cores, GOMP_SPINCOUNT=10000": (str(os.cpu_count()), {"GOMP_SPINCOUNT": "10000"}),
    "one thread": ("1", {}),
    "genpo default": (None, {}),
}


@contextmanager
def busy_competitor(active: bool):
    """A process spinning on one core for as long as the block runs (nothing when not ``active``)."""
    if not active:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def seconds_per_iteration(task: str, threads: str | None, extra_env: dict[str, str], iterations: int, timeout: float) -> tuple[float, bool]:
    """(median seconds per iteration after the first, finished) of a fresh ``genpo train`` run."""
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "run"
        command = [sys.executable, "-m", "genpo", "train", task, "--out", str(out), "--quiet", "--gin", f"genpo.run.iterations = {iterations}"]
        if threads is not None:
            command += ["--gin", f"genpo.run.num_threads = {threads}"]
        env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GENPO_THREADS")}
        env.update(extra_env)
        started = time.perf_counter()
        try:
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            rows = read_rows(out / "metrics.csv")
            done = max(len(rows), 1)
            return (time.perf_counter() - started) / done, False
        rows = read_rows(out / "metrics.csv")
        times = [float(row["wall_time"]) for row in rows[1:]] or [float(rows[0]["wall_time"])]
        return statistics.median(times), True


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["gin/tasks/pendulum.gin", "gin/tasks/halfcheetah.gin"])
    parser.add_argument("--iterations", type=int, default=4, help="iterations per run; the first is not timed")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds a run may take before it is cut")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    for task in args.tasks:
        print(f"-- {task}: seconds per iteration (median after the first of {args.iterations}) --")
        results: dict[tuple[str, bool], tuple[float, bool]] = {}
        for busy in (False, True):
            with busy_competitor(busy):
                for label in args.settings:
                    threads, extra_env = SETTINGS[label]
                    results[label, busy] = seconds_per_iteration(task, threads, extra_env, args.iterations, args.timeout)
        best_idle = min(results[label, False][0] for label in args.settings)
        for label in args.settings:
            cells = []
            for busy in (False, True):
                seconds, finished = results[label, busy]
                bound = "" if finished else ">"
                cells.append(f"{'busy' if busy else 'idle'} {bound}{seconds:.2f} s ({bound}{seconds / best_idle:.2f}x)")
            print(f"  {label:45s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
