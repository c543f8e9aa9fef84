"""``genpo sweep SPEC``: plan the spec's jobs, print or run them, then write the report."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from genpo.experiments.evaluation import EVALUATION_FILE, evaluate_runs
from genpo.experiments.ray_backend import RayOptions, run_sweep_on_ray
from genpo.experiments.report import write_report
from genpo.experiments.runner import (
    JobResult,
    default_max_parallel,
    job_state,
    refuse_stale_runs,
    run_sweep,
    terminate_as_interrupt,
    train_command,
)
from genpo.experiments.spec import Job, SweepSpec, load_spec, plan, select_variants
from genpo.training.run_lock import SWEEP_LOCK_FILE, RunLock

# What an archive keeps of a run: enough to rebuild the report (metrics, summary, evaluation) and to know the run.
ARCHIVED_FILES = ("metrics.csv", "summary.json", "config.gin", "run.json", EVALUATION_FILE)


def print_plan(jobs: list[Job], at_once: int) -> None:
    """``--dry-run``: each job's command (or that it is finished)."""
    for job in jobs:
        state, more = job_state(job)
        if state == "finished":
            print(f"skip  {job.label} (finished)")
        else:
            print(f"{'resume' if state == 'resume' else 'run':<6} {job.label}: {shlex.join(train_command(job, more))}")
    print(f"{len(jobs)} runs, at most {at_once} at once")


def show_event(event: str, job: Job, result: JobResult | None) -> None:
    """One progress line per job event (failures on stderr, with the run's stderr tail)."""
    if event == "start":
        print(f"start {job.label}", flush=True)
    elif event == "skip":
        print(f"skip  {job.label} (finished)", flush=True)
    elif event == "done":
        print(f"done  {job.label} ({result.seconds:.1f} s)", flush=True)
    else:
        print(f"FAIL  {job.label} (exit code {result.returncode}):\n{result.stderr_tail}", file=sys.stderr, flush=True)


def show_evaluation(job: Job, result: dict) -> None:
    print(f"eval  {job.label}: return {result['return_mean']:.1f} ({result['episodes']} episodes, {result['noise']} noise)", flush=True)


def archive_runs(jobs: list[Job], archive: Path) -> int:
    """Copy each run's :data:`ARCHIVED_FILES` to ``archive/<variant>/seed<k>/`` (the sweep's layout, so
    ``genpo sweep SPEC --report-only --out ARCHIVE`` rebuilds the report from it); returns the runs copied."""
    copied = 0
    for job in jobs:
        files = [job.run_dir / name for name in ARCHIVED_FILES if (job.run_dir / name).is_file()]
        if not files:
            continue
        target = archive / job.variant.name / job.run_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, target / path.name)
        copied += 1
    return copied


def main(
    spec_path: str | Path,
    *,
    max_parallel: int | None,
    dry_run: bool,
    report_only: bool,
    command: str,
    out: Path | None = None,
    archive: Path | None = None,
    ray: RayOptions | None = None,
    variants: Sequence[str] = (),
) -> int:
    """What ``genpo sweep`` does, the runs as local processes or, with ``ray``, as Ray tasks; returns the
    exit code (1 when a run failed, 130 when interrupted).
    ``out`` replaces the spec's output directory; ``archive`` (with ``report_only``) copies the runs'
    metrics there and writes the report from the copy. ``variants`` (shell-style name patterns) keeps only
    the matching variants, for all of that. Finished runs are evaluated first when the spec
    asks for it (:func:`~genpo.experiments.evaluation.evaluate_runs`)."""
    spec = select_variants(load_spec(spec_path), variants)
    if out is not None:
        spec = attrs.evolve(spec, out=out)
    jobs = plan(spec)
    if dry_run:
        print_plan(jobs, default_max_parallel(spec.threads_per_run) if max_parallel is None else max_parallel)
        return 0
    if report_only:
        return _evaluate_and_report(spec, jobs, command, archive, failed=[])
    with RunLock(spec.out, SWEEP_LOCK_FILE, what="sweep folder"):  # one sweep at a time in a folder
        refuse_stale_runs(jobs)
        try:
            with terminate_as_interrupt():
                if ray is None:
                    results = run_sweep(spec, max_parallel=max_parallel, on_event=show_event)
                else:
                    results = run_sweep_on_ray(spec, ray, on_event=show_event)
        except KeyboardInterrupt:
            print(f"genpo sweep: interrupted; run the same command again to resume: {command}", file=sys.stderr)
            return 130
        failed = [result for result in results if result.status == "failed"]
        return _evaluate_and_report(spec, jobs, command, archive, failed=failed)


def _evaluate_and_report(spec: SweepSpec, jobs: list[Job], command: str, archive: Path | None, *, failed: list[JobResult]) -> int:
    evaluate_runs(spec, jobs, on_event=show_evaluation)
    if archive is not None:
        copied = archive_runs(jobs, Path(archive))
        print(f"archived {copied} of {len(jobs)} runs in {archive}")
        spec = attrs.evolve(spec, out=archive)
        jobs = plan(spec)
    report = write_report(spec, command, jobs)
    print(f"report: {report}")
    if failed:
        print(f"{len(failed)} of {len(jobs)} runs failed: {', '.join(result.job.label for result in failed)}", file=sys.stderr)
        return 1
    return 0
