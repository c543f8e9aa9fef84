"""Running a sweep's jobs: one ``genpo train`` process per job, at most ``max_parallel`` at once.

Each run is ``python -m genpo.cli train CONFIG --out OUT/<variant>/seed<k> --seed k --iterations N
--quiet --gin ...`` with ``genpo.run.num_threads`` and ``OMP_NUM_THREADS`` set to ``threads_per_run``.
What happens to a job's run directory is :func:`job_state`'s decision: a run whose ``summary.json``
reports the budget is skipped, so an interrupted sweep resumes; an unfinished run, or one finished
with a smaller budget, continues from its latest checkpoint with ``--resume`` (a run that failed on
its own restarts from scratch, deleting only genpo's files in its folder; a folder holding anything else is
reported as a failed job and left alone). A failed run is recorded (``sweep_run.json`` in its directory, with
its stderr tail) and the others go on. Ctrl-C (or SIGTERM under :func:`terminate_as_interrupt`)
stops the runs in flight; they continue at the next sweep.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from genpo import registry
from genpo.experiments.spec import Job, SweepSpec, plan
from genpo.training.checkpoint import load_checkpoint
from genpo.training.checkpoint_history import LATEST
from genpo.training.errors import CheckpointError
from genpo.training.run_directory import CHECKPOINT_DIR, CONFIG_FILE, RUN_RECORD_FILE, RunDirectoryError
from genpo.training.run_folder import check_run_folder, clear_genpo_files, foreign_entries
from genpo.training.run_lock import RunLock
from genpo.training.run_logger import SUMMARY_FILE

RUN_STATUS_FILE = "sweep_run.json"
SPEC_COPY = "spec.toml"
STDERR_TAIL_LINES = 20
SIGNAL_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # a run stopped by a signal checkpoints first


@attrs.define
class JobResult:
    job: Job
    status: str  # "skipped" | "ok" | "failed"
    returncode: int | None = None
    seconds: float = 0.0
    stderr_tail: str = ""
    command: list[str] = attrs.field(factory=list)


def train_command(job: Job, resume_iterations: int | None = None) -> list[str]:
    """The ``genpo.cli train`` command line of a job (``--resume`` to add iterations to a finished run)."""
    command = [sys.executable, "-m", "genpo.cli", "train"]
    if resume_iterations is not None:
        return [*command, "--resume", str(job.run_dir), "--iterations", str(resume_iterations), "--quiet"]
    command += [str(job.variant.config), "--out", str(job.run_dir), "--seed", str(job.seed)]
    command += ["--iterations", str(job.iterations), "--quiet"]
    if job.variant.trainer != "genpo":
        command += ["--trainer", job.variant.trainer]
    for binding in (*job.bindings, f"genpo.run.num_threads = {job.threads}"):
        command += ["--gin", binding]
    return command


# ---------------------------------------------------------------------------------- resume decision
def completed_iterations(run_dir: Path) -> int | None:
    """Iterations in the run's ``summary.json`` (None without one)."""
    try:
        return int(json.loads((run_dir / SUMMARY_FILE).read_text())["iterations"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def read_json(path: Path) -> dict | None:
    """A JSON file a run may lack or hold half-written by an older genpo: its content, or None."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_status(run_dir: Path) -> dict | None:
    """What the sweep recorded about the run's last process (``sweep_run.json``), None without one."""
    return read_json(run_dir / RUN_STATUS_FILE)


def job_state(job: Job) -> tuple[str, int | None]:
    """``("finished", None)``, ``("resume", more_iterations)`` or ``("fresh", None)`` for a job's run dir.

    A run whose summary reports the budget is finished. Any other run with a loadable latest
    checkpoint continues from it with ``--resume`` (a resume drops the metrics past the checkpoint,
    so a run killed part-way continues exactly, and one finished with a smaller budget is extended),
    unless it failed on its own (a non-zero exit that is not a signal: it would fail again), which
    restarts from scratch like a run without a checkpoint.
    """
    done = completed_iterations(job.run_dir)
    if done is not None and done >= job.iterations:
        return "finished", None
    status = run_status(job.run_dir)
    returncode = None if status is None else status.get("returncode")
    failed = returncode is not None and returncode > 0 and returncode not in SIGNAL_EXIT_CODES
    try:
        saved = int(load_checkpoint(job.run_dir / CHECKPOINT_DIR / LATEST)["iteration"])
    except CheckpointError:
        return "fresh", None
    if failed or not (job.run_dir / RUN_RECORD_FILE).is_file():
        return "fresh", None
    return ("resume", job.iterations - saved) if saved < job.iterations else ("finished", None)


# ------------------------------------------------------------------------------- runs of another config
class StaleRunError(ValueError):
    """Runs in the sweep's folder that another config made: skipping or resuming them would report them
    as this spec's results."""


BUDGET_LINE = "run.iterations = "  # the one setting a sweep may change in a run (a longer budget extends it)


def job_config_text(job: Job) -> str:
    """The ``config.gin`` that ``genpo train`` writes for the job: gin's config string of its config
    file and bindings, with the seed, iterations and threads the command adds."""
    import gin

    from genpo.builders.config import parse_config

    bindings = [*job.bindings, f"genpo.run.num_threads = {job.threads}", f"genpo.run.seed = {job.seed}"]
    gin.clear_config()
    try:
        parse_config([job.variant.config], [*bindings, f"genpo.run.iterations = {job.iterations}"])
        return gin.config_str()
    finally:
        gin.clear_config()


def _binding_key(line: str) -> str | None:
    key, separator, _ = line.partition(" = ")
    return key if separator else None


def _registered_component(selector: str) -> type | None:
    """The registered class a gin selector names (``kind.name``, or ``name`` where one kind has it)."""
    parts = selector.split(".")
    if len(parts) == 2 and parts[0] in registry.kinds() and parts[1] in registry.names(parts[0]):
        return registry.get(*parts)
    if len(parts) == 1:
        matches = [kind for kind in registry.kinds() if parts[0] in registry.names(kind)]
        return registry.get(matches[0], parts[0]) if len(matches) == 1 else None
    return None


def binds_a_declared_default(line: str) -> bool:
    """Whether a config line binds a registered component's parameter to the default its constructor
    declares: the same config as no line at all."""
    key = _binding_key(line)
    if key is None or "/" in key or "." not in key:
        return False
    selector, parameter = key.rsplit(".", 1)
    component = _registered_component(selector)
    declared = inspect.signature(component).parameters.get(parameter) if component is not None else None
    if declared is None or declared.default is inspect.Parameter.empty:
        return False
    try:
        bound = ast.literal_eval(line.partition(" = ")[2])
    except (ValueError, SyntaxError):
        return False
    return type(bound) is type(declared.default) and bound == declared.default


def config_difference(job: Job) -> str | None:
    """The first line in which the job's run directory's ``config.gin`` differs from what the job
    would train now; None when they agree or there is no run yet.

    Two differences are not differences: the iteration budget, and a line on one side only that binds a
    component's parameter to its declared default (a run made before the parameter existed, or before
    a default moved and the spec pinned it back, trains exactly as the spec does now).
    """
    try:
        existing = (job.run_dir / CONFIG_FILE).read_text().splitlines()
    except FileNotFoundError:
        return None
    wanted = job_config_text(job).splitlines()

    def kept(lines: list[str], other: list[str]) -> list[str]:
        other_keys = {_binding_key(line) for line in other}
        return [
            line
            for line in lines
            if not line.startswith(BUDGET_LINE) and not (binds_a_declared_default(line) and _binding_key(line) not in other_keys)
        ]

    for old, new in itertools.zip_longest(kept(existing, wanted), kept(wanted, existing), fillvalue="(nothing)"):
        if old != new:
            return f"the run has {old!r} where the spec now gives {new!r}"
    return None


def refuse_stale_runs(jobs: Sequence[Job]) -> None:
    """Raise :class:`StaleRunError` naming every job whose run directory holds a run of another config
    (a config file or binding edited since), before anything runs."""
    stale = [(job, difference) for job in jobs if (difference := config_difference(job)) is not None]
    if stale:
        listed = "\n".join(f"  {job.run_dir}: {difference}" for job, difference in stale)
        raise StaleRunError(
            f"{len(stale)} run(s) in the sweep's folder were made with another config; delete them (or give the "
            f"sweep another --out) to train them again:\n{listed}"
        )


# ---------------------------------------------------------------------------------------- processes
def _stderr_tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class _Children:
    """The sweep's child processes in flight, so that an interrupted sweep can stop them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processes: set[subprocess.Popen] = set()
        self.stopped = False

    def start(self, command: list[str], **options) -> subprocess.Popen:
        with self.lock:
            if self.stopped:
                raise InterruptedError("the sweep was interrupted")
            process = subprocess.Popen(command, **options)
            self.processes.add(process)
            return process

    def finished(self, process: subprocess.Popen) -> None:
        with self.lock:
            self.processes.discard(process)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for process in self.processes:
                process.terminate()


def _wait(process: subprocess.Popen) -> int:
    """``process.wait()`` in short polls: an interrupt raised in this thread without a signal (Ray's
    task cancellation) is seen at once, not when the process ends."""
    while True:
        try:
            return process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            continue


def run_job(job: Job, children: _Children | None = None) -> JobResult:
    """Run one job to completion in a child process (restarting or resuming as :func:`job_state` says)."""
    state, more = job_state(job)
    if state == "finished":
        return JobResult(job, "skipped", returncode=0)
    if state == "fresh" and job.run_dir.exists():
        try:  # genpo's files of the run it restarts, and nothing else; not while another process writes it
            with RunLock(check_run_folder(job.run_dir, overwrite=True, option="run folder")):
                foreign = foreign_entries(job.run_dir)
                if foreign:  # the restarted run would be refused beside them: keep the old one meanwhile
                    raise RunDirectoryError(f"run folder {job.run_dir} also holds {', '.join(foreign)}: move them away to restart the run")
                clear_genpo_files(job.run_dir)
        except RunDirectoryError as error:
            return JobResult(job, "failed", None, 0.0, f"not started: {error}")
    job.run_dir.mkdir(parents=True, exist_ok=True)
    command = train_command(job, more)
    environment = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environment[name] = str(job.threads)
    stdout_path, stderr_path = job.run_dir / "sweep_stdout.log", job.run_dir / "sweep_stderr.log"
    start = time.monotonic()
    children = children or _Children()
    with open(stdout_path, "ab") as stdout, open(stderr_path, "wb") as stderr:
        process = children.start(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=environment)
        try:
            returncode = _wait(process)
        except BaseException:  # interrupted here (a cancelled Ray task): SIGTERM, the run checkpoints and stops
            process.terminate()
            process.wait()
            raise
        finally:
            children.finished(process)
    seconds = time.monotonic() - start
    tail = _stderr_tail(stderr_path)
    result = JobResult(job, "ok" if returncode == 0 else "failed", returncode, seconds, tail if returncode else "", command)
    record = {"returncode": returncode, "seconds": seconds, "command": shlex.join(command), "stderr_tail": result.stderr_tail}
    (job.run_dir / RUN_STATUS_FILE).write_text(json.dumps(record, indent=2))
    return result


def default_max_parallel(threads_per_run: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // threads_per_run)


def run_sweep(
    spec: SweepSpec,
    *,
    max_parallel: int | None = None,
    on_event: Callable[[str, Job, JobResult | None], None] | None = None,
) -> list[JobResult]:
    """Run every unfinished job, ``max_parallel`` at a time; returns one result per job, in plan order.

    ``on_event(event, job, result)`` is called with ``"skip"``, ``"start"``, ``"done"`` or ``"fail"``.
    """
    jobs = plan(spec)
    if max_parallel is None:
        max_parallel = default_max_parallel(spec.threads_per_run)
    if max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {max_parallel!r}")
    spec.out.mkdir(parents=True, exist_ok=True)
    (spec.out / SPEC_COPY).write_text(spec.text)
    notify = on_event or (lambda event, job, result: None)

    def execute(job: Job) -> JobResult:
        if job_state(job)[0] == "finished":
            result = JobResult(job, "skipped", returncode=0)
            notify("skip", job, result)
            return result
        notify("start", job, None)
        try:
            result = run_job(job, children)
        except InterruptedError:
            return JobResult(job, "failed", None, 0.0, "interrupted before it started")
        except OSError as error:  # the process could not even start; record it like a failed run
            result = JobResult(job, "failed", None, 0.0, f"{type(error).__name__}: {error}")
        notify("done" if result.status in ("ok", "skipped") else "fail", job, result)
        return result

    children = _Children()
    pool = ThreadPoolExecutor(max_workers=max_parallel)
    try:
        futures = [pool.submit(execute, job) for job in jobs]
        return [future.result() for future in futures]
    except BaseException:  # Ctrl-C: start nothing more and stop the runs in flight (they rerun next time)
        pool.shutdown(wait=False, cancel_futures=True)
        children.stop()
        raise
    finally:
        pool.shutdown(wait=True)


# ------------------------------------------------------------------------------------------ signals
@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt``, so that it stops the runs in flight as
    Ctrl-C does (call from the main thread)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
