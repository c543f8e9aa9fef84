"""``genpo sweep SPEC --backend ray``: every (variant, seed) run as a Ray task, on a cluster or on a
Ray instance started on this machine.

A task runs :func:`~genpo.experiments.runner.run_job` on the node Ray picks: the same skip / resume /
restart decision, the same ``genpo train`` process, the same files in the run directory as the local
backend, so the same report follows. Nothing is shipped between nodes: the sweep's ``out`` must be
on storage that every node mounts at the same path (on one machine it is), and a task on a node that
cannot see it fails naming the node. Configs inside genpo's ``gin/`` folder are passed by their name
there, so each node reads its own installed copy. Ctrl-C (or SIGTERM) cancels the outstanding tasks:
queued ones never start, running ones stop their ``genpo train`` with SIGTERM (it checkpoints first),
finished runs stay, and the same command resumes the sweep.

``ray`` is an optional dependency (the ``scale`` extra), imported only here, on use.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import attrs

from genpo.builders.config import GIN_DIR
from genpo.experiments.runner import SPEC_COPY, JobResult, job_state, run_job
from genpo.experiments.spec import Job, SweepSpec, plan

STOP_GRACE_SECONDS = 120.0  # how long an interrupted sweep waits for its cancelled runs to checkpoint


def _non_negative(options: RayOptions, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"genpo sweep: --{attribute.name.replace('_', '-')} must be >= 0, got {value!r}")


@attrs.frozen
class RayOptions:
    """Where the tasks run (``address`` of a running cluster; None: a Ray instance started here, or the
    one ``RAY_ADDRESS`` names) and what each run reserves (``cpus_per_run`` default: the spec's
    ``threads_per_run``)."""

    address: str | None = None
    cpus_per_run: float | None = attrs.field(default=None, validator=attrs.validators.optional(_non_negative))
    gpus_per_run: float = attrs.field(default=0.0, validator=_non_negative)


def _on_node(job: Job, spec_copy: str) -> JobResult:
    """The Ray task: one job, after checking that this node sees the sweep directory (by the copy of
    the spec the driver wrote there)."""
    if not Path(spec_copy).is_file():
        message = (
            f"the sweep directory {Path(spec_copy).parent} is not visible on node {socket.gethostname()}: "
            "the ray backend needs the sweep's out on storage shared by every node at the same path"
        )
        return JobResult(job, "failed", None, 0.0, message)
    return run_job(job)


def _init_keeping_sigterm_handler(ray, address: str | None) -> None:
    """``ray.init``, then this process's SIGTERM handler back: Ray's exits at once, runs and all; the
    sweep's (:func:`~genpo.experiments.runner.terminate_as_interrupt`) cancels the tasks as Ctrl-C does."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"join the Ray cluster at {address}" if address else "start or join Ray"
        raise RuntimeError(f"--backend ray: could not {where}: {str(error).splitlines()[0]}") from None
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _portable(job: Job) -> Job:
    """The job with a config from genpo's ``gin/`` folder named relative to it (each node resolves
    it in its own installation)."""
    config = job.variant.config
    if not config.is_relative_to(GIN_DIR):
        return job
    return attrs.evolve(job, variant=attrs.evolve(job.variant, config=config.relative_to(GIN_DIR)))


def run_sweep_on_ray(
    spec: SweepSpec,
    options: RayOptions,
    *,
    on_event: Callable[[str, Job, JobResult | None], None] | None = None,
) -> list[JobResult]:
    """Run every unfinished job as a Ray task; returns one result per job, in plan order.

    ``on_event`` as in :func:`~genpo.experiments.runner.run_sweep` (``"start"`` when a task is
    submitted; Ray may queue it until a node has the resources).
    """
    try:
        import ray
    except ImportError:
        raise ImportError("--backend ray needs ray: install genpo's scale extra (pip install 'genpo[scale]')") from None
    spec = attrs.evolve(spec, out=spec.out.resolve())  # absolute run directories: the tasks run elsewhere
    jobs = plan(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    (spec.out / SPEC_COPY).write_text(spec.text)
    notify = on_event or (lambda event, job, result: None)
    results: dict[int, JobResult] = {}
    started_here = not ray.is_initialized()
    if started_here:
        _init_keeping_sigterm_handler(ray, options.address)
    task = ray.remote(_on_node).options(
        num_cpus=spec.threads_per_run if options.cpus_per_run is None else options.cpus_per_run,
        num_gpus=options.gpus_per_run,
    )
    pending: dict = {}
    try:
        for index, job in enumerate(jobs):
            if job_state(job)[0] == "finished":
                results[index] = JobResult(job, "skipped", returncode=0)
                notify("skip", job, results[index])
                continue
            notify("start", job, None)
            pending[task.remote(_portable(job), str(spec.out / SPEC_COPY))] = index
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            try:
                result = attrs.evolve(ray.get(done[0]), job=jobs[index])
            except ray.exceptions.RayError as error:  # the task itself failed (e.g. its node was lost)
                result = JobResult(jobs[index], "failed", None, 0.0, f"{type(error).__name__}: {error}")
            notify("done" if result.status in ("ok", "skipped") else "fail", jobs[index], result)
            results[index] = result
    except BaseException:  # Ctrl-C: cancel what is left; the running runs checkpoint and stop
        for reference in pending:
            ray.cancel(reference)
        ray.wait(list(pending), num_returns=len(pending), timeout=STOP_GRACE_SECONDS)
        raise
    finally:
        if started_here:
            ray.shutdown()
    return [results[index] for index in range(len(jobs))]
