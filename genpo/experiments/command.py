"""``genpo sweep SPEC``: plan the spec's jobs, print or run them, then write the report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from genpo.experiments.report import write_report
from genpo.experiments.runner import JobResult, default_max_parallel, job_state, run_sweep, terminate_as_interrupt, train_command
from genpo.experiments.spec import Job, load_spec, plan


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


def main(spec_path: str | Path, *, max_parallel: int | None, dry_run: bool, report_only: bool, command: str) -> int:
    """What ``genpo sweep`` does; returns the exit code (1 when a run failed, 130 when interrupted)."""
    spec = load_spec(spec_path)
    jobs = plan(spec)
    if dry_run:
        print_plan(jobs, default_max_parallel(spec.threads_per_run) if max_parallel is None else max_parallel)
        return 0
    failed: list[JobResult] = []
    if not report_only:
        try:
            with terminate_as_interrupt():
                results = run_sweep(spec, max_parallel=max_parallel, on_event=show_event)
        except KeyboardInterrupt:
            print(f"genpo sweep: interrupted; run the same command again to resume: {command}", file=sys.stderr)
            return 130
        failed = [result for result in results if result.status == "failed"]
    report = write_report(spec, command, jobs)
    print(f"report: {report}")
    if failed:
        print(f"{len(failed)} of {len(jobs)} runs failed: {', '.join(result.job.label for result in failed)}", file=sys.stderr)
        return 1
    return 0
