"""``genpo sweep SPEC``: train every (variant, seed) of a TOML spec as its own process, then report.

A spec (see ``docs/sweeps.md``)::

    out = "runs/sweeps/pendulum_schemes"   # relative to the working directory
    seeds = [0, 1, 2]
    iterations = 60                         # or env_steps = 491520 (rounded up to whole iterations)
    threads_per_run = 1                     # torch/OpenMP threads per run (default 1)
    last_k = 3                              # final return = mean of the last k logged returns
    bindings = []                           # extra gin bindings for every run (optional)

    [[variants]]
    name = "genpo"
    config = "tasks/pendulum.gin"           # a task config or an ablation file
    bindings = []                           # optional
    trainer = "genpo"                       # optional; "rsl_rl" for rsl_rl's runner on a Gaussian config

    [[grid]]                                # optional, repeatable: the cartesian product of values
    config = "tasks/pendulum.gin"
    prefix = "grid"                         # optional name prefix
    [grid.values]
    "coupling.genpo.p" = [0.7, 0.9]
    "flow.dummy_action.num_steps" = [2, 5]

Each run is ``python -m genpo.cli train CONFIG --out OUT/<variant>/seed<k> --seed k --iterations N
--quiet --gin ...`` with ``genpo.run.num_threads`` and ``OMP_NUM_THREADS`` set to ``threads_per_run``,
at most ``max_parallel`` at once. A run whose ``summary.json`` reports the budget is skipped, so an
interrupted sweep resumes; an unfinished run, or one finished with a smaller budget, continues from
its latest checkpoint with ``--resume`` (a run that failed on its own restarts from scratch). A failed run is recorded (``sweep_run.json`` in its
directory, with its stderr tail) and the others go on.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from genpo import analysis
from genpo.builders.config import resolve_config_path
from genpo.training.checkpoint import load_checkpoint
from genpo.training.checkpoint_history import LATEST
from genpo.training.errors import CheckpointError
from genpo.training.run_directory import CHECKPOINT_DIR, RUN_RECORD_FILE
from genpo.training.run_logger import METRICS_FILE, SUMMARY_FILE, read_metrics

RUN_STATUS_FILE = "sweep_run.json"
REPORT_FILE = "report.md"
SPEC_COPY = "spec.toml"
CURVE_PLOTS = {"env_steps": "curves_env_steps.png", "wall_time": "curves_wall_time.png"}
CURVES_CSV = "curves.csv"
STDERR_TAIL_LINES = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")
_SPEC_KEYS = {
    "out", "seeds", "iterations", "env_steps", "threads_per_run", "last_k", "bindings", "variants", "grid",
    "bootstrap_resamples", "confidence",
}  # fmt: skip


# ------------------------------------------------------------------------------------------ the spec
TRAINERS = ("genpo", "rsl_rl")


@dataclass(frozen=True)
class Variant:
    name: str
    config: Path
    bindings: tuple[str, ...] = ()
    trainer: str = "genpo"  # "rsl_rl": rsl_rl's OnPolicyRunner on the (Gaussian) config; see genpo.baselines.rsl_rl


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    text: str
    out: Path
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]
    iterations: int | None = None
    env_steps: int | None = None
    threads_per_run: int = 1
    last_k: int = 3
    bindings: tuple[str, ...] = ()
    bootstrap_resamples: int = analysis.DEFAULT_RESAMPLES
    confidence: float = analysis.DEFAULT_CONFIDENCE


def gin_literal(value: object) -> str:
    """A TOML value as gin text: strings verbatim (so ``"'k3'"``, ``"@coupling.leapfrog()"``,
    ``"(64, 64)"``), booleans as True/False, numbers as written, lists as tuples."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        inner = ", ".join(gin_literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise ValueError(f"sweep spec: cannot turn {value!r} ({type(value).__name__}) into a gin value")


def _value_label(value: object) -> str:
    text = gin_literal(value).strip("'\"")
    text = re.sub(r"^@", "", text).replace("()", "")
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"


def expand_grid(grid: dict, spec_path: Path | str = "<spec>") -> list[Variant]:
    """The cartesian product of ``grid['values']`` (binding -> list of values) as variants.

    Names are ``<prefix>-<key>=<value>_<key>=<value>...`` with each key shortened to its last dotted
    part (the full binding when two keys would share a short name); ``prefix`` defaults to the
    config's stem. Values are gin text as in :func:`gin_literal`.
    """
    unknown = set(grid) - {"config", "values", "prefix", "bindings"}
    if unknown:
        raise ValueError(f"{spec_path}: [grid] has unknown keys {sorted(unknown)}")
    if "config" not in grid or "values" not in grid:
        raise ValueError(f"{spec_path}: [grid] needs 'config' and 'values' (a table binding -> list of values)")
    values = grid["values"]
    if not isinstance(values, dict) or not values:
        raise ValueError(f"{spec_path}: [grid] values must be a non-empty table binding -> list of values")
    for key, options in values.items():
        if not isinstance(options, list) or not options:
            raise ValueError(f"{spec_path}: grid value list for {key!r} must be a non-empty list")
    keys = list(values)
    short = [key.rsplit(".", 1)[-1] for key in keys]
    if len(set(short)) < len(short):
        short = keys
    config = resolve_config_path(grid["config"])
    prefix = grid.get("prefix", Path(grid["config"]).stem)
    common = tuple(grid.get("bindings", ()))
    variants = []
    for combination in itertools.product(*(values[key] for key in keys)):
        label = "_".join(f"{name}={_value_label(value)}" for name, value in zip(short, combination, strict=True))
        bindings = tuple(f"{key} = {gin_literal(value)}" for key, value in zip(keys, combination, strict=True))
        variants.append(Variant(f"{prefix}-{label}" if prefix else label, config, common + bindings))
    return variants


def _positive_int(data: dict, key: str, spec_path: Path, default: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{spec_path}: {key} must be a positive integer, got {value!r}")
    return value


def parse_spec(text: str, path: Path | str = "<spec>") -> SweepSpec:
    """A :class:`SweepSpec` from TOML text; every error names the spec file and the offending key."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from error
    unknown = set(data) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(_SPEC_KEYS)})")
    if "out" not in data:
        raise ValueError(f"{path}: 'out' (the sweep's output directory) is required")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise ValueError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: seeds repeat: {seeds!r}")
    iterations = _positive_int(data, "iterations", path)
    env_steps = _positive_int(data, "env_steps", path)
    if (iterations is None) == (env_steps is None):
        raise ValueError(f"{path}: give exactly one budget, 'iterations' or 'env_steps'")
    variants: list[Variant] = []
    for entry in data.get("variants", []):
        unknown = set(entry) - {"name", "config", "bindings", "trainer"}
        if unknown or "name" not in entry or "config" not in entry:
            raise ValueError(
                f"{path}: each [[variants]] needs 'name' and 'config' (optional 'bindings', 'trainer'), got {entry!r}"
            )
        trainer = entry.get("trainer", "genpo")
        if trainer not in TRAINERS:
            raise ValueError(f"{path}: variant {entry['name']!r}: trainer must be one of {TRAINERS}, got {trainer!r}")
        config = resolve_config_path(entry["config"])
        variants.append(Variant(str(entry["name"]), config, tuple(entry.get("bindings", ())), trainer))
    grids = data.get("grid", [])
    for grid in [grids] if isinstance(grids, dict) else grids:
        variants.extend(expand_grid(grid, path))
    if not variants:
        raise ValueError(f"{path}: no variants (give [[variants]] and/or [grid])")
    names = [variant.name for variant in variants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: variant names repeat: {duplicates}")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{path}: variant name {name!r} is not a safe directory name ([A-Za-z0-9._=+,-])")
    confidence = data.get("confidence", analysis.DEFAULT_CONFIDENCE)
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(f"{path}: confidence must be a float in (0, 1), got {confidence!r}")
    return SweepSpec(
        path=path,
        text=text,
        out=Path(data["out"]),
        seeds=tuple(seeds),
        variants=tuple(variants),
        iterations=iterations,
        env_steps=env_steps,
        threads_per_run=_positive_int(data, "threads_per_run", path, 1),
        last_k=_positive_int(data, "last_k", path, 3),
        bindings=tuple(data.get("bindings", ())),
        bootstrap_resamples=_positive_int(data, "bootstrap_resamples", path, analysis.DEFAULT_RESAMPLES),
        confidence=confidence,
    )


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {str(path)!r} not found")
    return parse_spec(path.read_text(), path)


# ------------------------------------------------------------------------------------------- the jobs
@dataclass(frozen=True)
class Job:
    variant: Variant
    seed: int
    iterations: int
    run_dir: Path
    bindings: tuple[str, ...]  # spec-level then variant bindings (the command adds seed/iterations/threads)
    threads: int

    @property
    def label(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"


@dataclass
class JobResult:
    job: Job
    status: str  # "skipped" | "ok" | "failed"
    returncode: int | None = None
    seconds: float = 0.0
    stderr_tail: str = ""
    command: list[str] = field(default_factory=list)


def iterations_for(variant: Variant, spec: SweepSpec) -> int:
    """The iteration budget: ``iterations``, or ``env_steps`` over (num_envs x steps_per_env) rounded up."""
    if spec.iterations is not None:
        return spec.iterations
    import gin

    from genpo.builders.config import parse_config

    gin.clear_config()
    try:
        parse_config([variant.config], [*spec.bindings, *variant.bindings])
        try:
            per_iteration = gin.query_parameter("genpo.build_env.num_envs") * gin.query_parameter("genpo.trainer.steps_per_env")
        except ValueError as error:
            raise ValueError(
                f"{spec.path}: env_steps needs genpo.build_env.num_envs and genpo.trainer.steps_per_env bound "
                f"for variant {variant.name!r} ({error}); or give 'iterations'"
            ) from error
    finally:
        gin.clear_config()
    return max(1, math.ceil(spec.env_steps / per_iteration))


def plan(spec: SweepSpec) -> list[Job]:
    """Every (variant, seed) as a job, variants outer so that early results cover all seeds of one."""
    jobs = []
    for variant in spec.variants:
        iterations = iterations_for(variant, spec)
        for seed in spec.seeds:
            jobs.append(
                Job(
                    variant=variant,
                    seed=seed,
                    iterations=iterations,
                    run_dir=spec.out / variant.name / f"seed{seed}",
                    bindings=(*spec.bindings, *variant.bindings),
                    threads=spec.threads_per_run,
                )
            )
    return jobs


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


def completed_iterations(run_dir: Path) -> int | None:
    """Iterations in the run's ``summary.json`` (None without one)."""
    try:
        return int(json.loads((run_dir / SUMMARY_FILE).read_text())["iterations"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def run_status(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RUN_STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


SIGNAL_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # a run stopped by a signal checkpoints first


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


def run_job(job: Job, children: _Children | None = None) -> JobResult:
    """Run one job to completion in a child process (restarting or resuming as :func:`job_state` says)."""
    state, more = job_state(job)
    if state == "finished":
        return JobResult(job, "skipped", returncode=0)
    if state == "fresh" and job.run_dir.exists():
        shutil.rmtree(job.run_dir)
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
            returncode = process.wait()
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


# ----------------------------------------------------------------------------------------- the report
def collect_runs(job_list: Iterable[Job]) -> list[analysis.RunRecord]:
    """The jobs' runs that have metrics (finished or partial)."""
    records = []
    for job in job_list:
        rows = read_metrics(job.run_dir / METRICS_FILE)
        if not rows:
            continue
        try:
            seconds = float(json.loads((job.run_dir / SUMMARY_FILE).read_text())["train_seconds"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            seconds = sum(row.get("wall_time", 0.0) for row in rows if math.isfinite(row.get("wall_time", math.nan)))
        records.append(analysis.RunRecord(job.seed, rows, seconds))
    return records


def write_report(spec: SweepSpec, command: str, jobs: Sequence[Job] | None = None) -> Path:
    """Aggregate every variant's runs into ``OUT/report.md``, the two curve PNGs and ``curves.csv``."""
    jobs = list(jobs) if jobs is not None else plan(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    stats, notes, failures = [], [], []
    for variant in spec.variants:
        variant_jobs = [job for job in jobs if job.variant.name == variant.name]
        finished = [job for job in variant_jobs if job_state(job)[0] == "finished"]
        for job in variant_jobs:
            status = run_status(job.run_dir)
            if status is not None and status.get("returncode") not in (0, None) and job not in finished:
                failures.append((job, status))
        partial = len(variant_jobs) - len(finished)
        if partial:
            notes.append(f"- {variant.name}: {partial} of {len(variant_jobs)} runs unfinished (partial runs are included in the table)")
        stats.append(
            analysis.summarize_variant(
                variant.name,
                collect_runs(variant_jobs),
                last_k=spec.last_k,
                resamples=spec.bootstrap_resamples,
                confidence=spec.confidence,
            )
        )
    for x, filename in CURVE_PLOTS.items():
        analysis.plot_curves(stats, x, spec.out / filename, spec.confidence)
    analysis.write_curves_csv(stats, spec.out / CURVES_CSV)

    budget = f"{spec.iterations} iterations" if spec.iterations is not None else f"{spec.env_steps} env steps"
    sections = [
        f"# Sweep report: {spec.path.name}",
        "",
        f"Seeds {list(spec.seeds)}, budget {budget}; final return = mean of the last {spec.last_k} logged "
        f"`return_mean` values of a run; mean ± sample std across seeds; IQM with a {100 * spec.confidence:g}% "
        f"percentile bootstrap CI ({spec.bootstrap_resamples} resamples over seeds, fixed RNG); return AUC = "
        "mean over the env-step grid of the across-seed mean curve.",
        "",
        analysis.results_table(stats, spec.confidence),
        "",
        f"![return vs env steps]({CURVE_PLOTS['env_steps']})",
        f"![return vs wall time]({CURVE_PLOTS['wall_time']})",
        "",
        f"Curves (mean and CI band on a common grid per variant): `{CURVES_CSV}`.",
    ]
    if notes:
        sections += ["", "## Unfinished runs", "", *notes]
    if failures:
        sections += ["", "## Failed runs", ""]
        for job, status in failures:
            sections += [
                f"### {job.label} (exit code {status.get('returncode')})",
                "",
                "```",
                status.get("stderr_tail", "").strip() or "(no stderr)",
                "```",
                "",
            ]
    sections += ["", "## Command", "", f"From `{Path.cwd()}`:", "", "```", command, "```", "", "Each run (first seed):", ""]
    sections += [f"- {variant.name}: `{shlex.join(train_command(_example_job(jobs, variant)))}`" for variant in spec.variants]
    sections += ["", f"## Spec ({spec.path})", "", "```toml", spec.text.rstrip(), "```", ""]
    path = spec.out / REPORT_FILE
    path.write_text("\n".join(sections))
    return path


def _example_job(jobs: Sequence[Job], variant: Variant) -> Job:
    return next(job for job in jobs if job.variant.name == variant.name)


# ------------------------------------------------------------------------------------------ the command
def main(spec_path: str | Path, *, max_parallel: int | None, dry_run: bool, report_only: bool, command: str) -> int:
    """What ``genpo sweep`` does; returns the exit code (1 when a run failed)."""
    spec = load_spec(spec_path)
    jobs = plan(spec)
    if dry_run:
        for job in jobs:
            state, more = job_state(job)
            if state == "finished":
                print(f"skip  {job.label} (finished)")
            else:
                print(f"{'resume' if state == 'resume' else 'run':<6} {job.label}: {shlex.join(train_command(job, more))}")
        at_once = default_max_parallel(spec.threads_per_run) if max_parallel is None else max_parallel
        print(f"{len(jobs)} runs, at most {at_once} at once")
        return 0
    failed: list[JobResult] = []
    if not report_only:

        def show(event: str, job: Job, result: JobResult | None) -> None:
            if event == "start":
                print(f"start {job.label}", flush=True)
            elif event == "skip":
                print(f"skip  {job.label} (finished)", flush=True)
            elif event == "done":
                print(f"done  {job.label} ({result.seconds:.1f} s)", flush=True)
            else:
                print(f"FAIL  {job.label} (exit code {result.returncode}):\n{result.stderr_tail}", file=sys.stderr, flush=True)

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        previous = signal.signal(signal.SIGTERM, stop)  # terminate the runs in flight, as Ctrl-C does
        try:
            results = run_sweep(spec, max_parallel=max_parallel, on_event=show)
        except KeyboardInterrupt:
            print(f"genpo sweep: interrupted; run the same command again to resume: {command}", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
        failed = [result for result in results if result.status == "failed"]
    report = write_report(spec, command, jobs)
    print(f"report: {report}")
    if failed:
        print(f"{len(failed)} of {len(jobs)} runs failed: {', '.join(result.job.label for result in failed)}", file=sys.stderr)
        return 1
    return 0
