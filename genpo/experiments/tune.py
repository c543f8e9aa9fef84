"""``genpo tune SPEC``: an equal-budget search per contender with Optuna, then held-out validation.

Each contender is one Optuna study (``<study>.<contender>``) in the spec's relational storage (SQLite by
default), with a TPE sampler and a median pruner. A trial trains the contender's config on every tuning
task and seed with the trial's values of the searched gin bindings: the runs are ordinary ``genpo train``
run directories (``OUT/trials/<contender>.trial<k>.<task>/seed<s>``) run by the sweep's backends (local
processes, or Ray tasks). The runs advance in ``pruning_points`` steps of their budget; after each step
the objective (mean over tasks of the IQM final return over the reference return) is reported to the
trial, and the pruner may stop it there.

The contenders advance in lockstep, one trial each at a time, so that every contender gets the same
number of trials and env steps. A killed ``genpo tune`` resumes: its unfinished trials go back to the
queue when their heartbeat lapses (at once after Ctrl-C or SIGTERM) and continue in the same run
directories. Several processes may tune one study; each takes the next trial from the storage, none
takes more than the budget, and only the process that took a trial runs and ends it. When every trial
has ended, each contender's chosen configuration (the spec's selection rule) is trained on the
validation tasks and seeds (``OUT/validation/``), the results are stored with the study, and
``OUT/report.md`` is written (:mod:`~genpo.experiments.tune_report`).

``optuna`` is an optional dependency (the ``tune`` extra), imported only here and in the report.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

from genpo.experiments import statistics
from genpo.experiments.runner import JobResult, refuse_stale_runs, run_sweep, terminate_as_interrupt
from genpo.experiments.spec import Job, SweepSpec, Variant, iterations_for, plan
from genpo.experiments.tune_spec import Contender, TuneSpec, load_tune_spec
from genpo.training.run_logger import METRICS_FILE, final_return, read_metrics

TRIALS_DIR = "trials"
VALIDATION_DIR = "validation"
VALIDATION_LOCK = "validation.lock"
PROTOCOL_ATTR = "protocol"
SPEC_ATTR = "spec_text"
VALIDATION_ATTR = "validation"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("genpo tune needs optuna: install genpo's tune extra (pip install 'genpo[tune]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


# ------------------------------------------------------------------------------------------ storage
def study_name(spec: TuneSpec, contender: Contender) -> str:
    return f"{spec.study}.{contender.name}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_storage(spec: TuneSpec, url: str | None = None):
    """Optuna's RDB storage at ``url`` (default: the spec's), with a heartbeat: a trial whose process
    stopped answering for two heartbeats is failed and queued again (same parameters, same run dirs)."""
    optuna = import_optuna()
    url = url or spec.storage
    if (database := sqlite_file(url)) is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=spec.heartbeat_seconds,
        grace_period=2 * spec.heartbeat_seconds,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
    )


@contextlib.contextmanager
def trial_states_lock(storage) -> Iterator[None]:
    """Held, one process or thread at a time, while taking a trial (a queued or a new one), failing stale
    trials and queueing them again, and recording or ending a taken trial.

    Optuna checks a trial's state and then sets it, relying on the database to lock the trial's row
    (``SELECT ... FOR UPDATE``). SQLite ignores that clause, so two processes could both take the same
    queued trial, both retry the same stale one, or one could end a trial the other just failed as stale.
    For SQLite an exclusive lock on ``<database>.lock`` makes those steps one at a time (SQLite serves
    one machine, where the lock holds); a database server locks the row itself."""
    database = sqlite_file(storage.url)
    if database is None:
        yield
        return
    with open(database.with_name(database.name + ".lock"), "a") as handle:  # flock: exclusive across threads too
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_study(spec: TuneSpec, storage, contender: Contender, *, create: bool = False):
    """The contender's study, with a TPE sampler seeded by the spec's seed and the trials already asked
    (so a resumed or shared study proposes from its history, not from a fresh RNG) and the pruner.

    ``create``: make it if missing, recording the protocol; an existing study must have been started
    with the same protocol (the rule and the search are fixed before the first trial)."""
    optuna = import_optuna()
    name = study_name(spec, contender)
    pruner = optuna.pruners.NopPruner() if spec.pruner == "none" else optuna.pruners.MedianPruner(n_startup_trials=spec.pruner_startup_trials)
    existing = {summary.study_name: summary for summary in optuna.get_all_study_summaries(storage)}
    if name not in existing:
        if not create:
            raise ValueError(f"{spec.path}: the storage holds no study {name!r} (run genpo tune {spec.path} first)")
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner)
        except optuna.exceptions.DuplicatedStudyError:  # another process created it just now
            pass
        else:
            study.set_user_attr(PROTOCOL_ATTR, spec.protocol())
            study.set_user_attr(SPEC_ATTR, spec.text)
            if contender.defaults is not None:
                study.enqueue_trial(contender.defaults)  # trial 0: the configuration the contender has today
    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    stored = study.user_attrs.get(PROTOCOL_ATTR)
    for _ in range(20):  # the creating process writes the protocol right after the study
        if stored is not None:
            break
        time.sleep(0.5)
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get(PROTOCOL_ATTR)
    if stored != spec.protocol():
        raise ValueError(
            f"{spec.path}: the study {name!r} was started with another protocol (contenders, search, tasks, seeds, budget or "
            "rule); the protocol is fixed before the first trial: restore the spec or give a new 'study' name"
        )
    seed = spec.sampler_seed * 100_003 + len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler_startup_trials)
    return study


# ------------------------------------------------------------------------------------------- budget
def retried_numbers(trials: Sequence) -> set[int]:
    """Numbers of the trials that were queued again after their process stopped."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}


def counted_trials(trials: Sequence) -> list:
    """The trials that use the budget: every trial but those retried (their retry counts instead) and
    those refused for being over the budget."""
    optuna = import_optuna()
    retried = retried_numbers(trials)
    return [
        trial
        for trial in trials
        if not trial.user_attrs.get("over_budget")
        and not (trial.state == optuna.trial.TrialState.FAIL and trial.number in retried)
    ]


def _is_fresh(trial) -> bool:
    """A trial the sampler proposed (not an enqueued default or a retry)."""
    return "fixed_params" not in trial.system_attrs and "failed_trial" not in trial.system_attrs


# ------------------------------------------------------------------------------------------- trials
@attrs.define
class ActiveTrial:
    contender: Contender
    study: object
    trial: object
    params: dict
    run_key: int
    iterations: dict  # task -> the run's full iteration budget

    @property
    def label(self) -> str:
        return f"{self.contender.name} trial {self.run_key}"

    def variant_name(self, task: str) -> str:
        return f"{self.contender.name}.trial{self.run_key}.{task}"


def _sweep(spec: TuneSpec, out: Path, seeds: Sequence[int], variants: Sequence[Variant], **budget) -> SweepSpec:
    budget = budget or ({"iterations": spec.iterations} if spec.iterations is not None else {"env_steps": spec.env_steps})
    return SweepSpec(
        path=spec.path, text=spec.text, out=out, seeds=tuple(seeds), variants=tuple(variants), bindings=spec.bindings,
        threads_per_run=spec.threads_per_run, last_k=spec.last_k, bootstrap_resamples=spec.bootstrap_resamples,
        confidence=spec.confidence, **budget,
    )  # fmt: skip


def run_iterations(spec: TuneSpec, contender: Contender, task: str, bindings: Sequence[str], **budget) -> int:
    """A run's iteration budget (an env-step budget over the trial's own envs and steps per env)."""
    variant = Variant(task, contender.configs[task], tuple(bindings), contender.trainer)
    sweep = _sweep(spec, spec.out, [0], [variant], **budget)
    return iterations_for(variant, sweep)


def next_trial(spec: TuneSpec, storage, contender: Contender) -> ActiveTrial | None:
    """The contender's next trial (a queued one first), or None when its budget is used."""
    optuna = import_optuna()
    study = load_study(spec, storage, contender)
    with trial_states_lock(storage):
        optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = any(trial.state == optuna.trial.TrialState.WAITING for trial in trials)
        if not waiting and len(counted_trials(trials)) >= spec.trials:
            return None
        trial = study.ask()
        frozen = storage.get_trial(trial._trial_id)
        if _is_fresh(frozen):
            earlier = [other for other in counted_trials(study.get_trials(deepcopy=False)) if other.number < trial.number]
            if len(earlier) >= spec.trials:  # another process took the last trial first
                trial.set_user_attr("over_budget", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return None
        storage.record_heartbeat(trial._trial_id)
        params = {dimension.binding: dimension.suggest(trial) for dimension in contender.search}
        run_key = frozen.user_attrs.get("run_key", trial.number)
        bindings = contender.trial_bindings(params)
        trial.set_user_attr("run_key", run_key)
        trial.set_user_attr("bindings", list(bindings))
    iterations = {task: run_iterations(spec, contender, task, [*spec.bindings, *bindings]) for task in spec.tuning.tasks}
    return ActiveTrial(contender, study, trial, params, run_key, iterations)


@contextlib.contextmanager
def heartbeat(storage, active: Sequence[ActiveTrial], seconds: float) -> Iterator[None]:
    """Record a heartbeat for every active trial each ``seconds`` while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds):
            for entry in active:
                with contextlib.suppress(Exception):  # a finished trial no longer takes heartbeats
                    storage.record_heartbeat(entry.trial._trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def rung_iterations(total: int, point: int, points: int) -> int:
    """Iterations at pruning point ``point`` of ``points`` (the last is the full budget)."""
    return max(1, math.ceil(point * total / points))


def rows_up_to(run_dir: Path, iterations: int) -> list[dict]:
    return [row for row in read_metrics(run_dir / METRICS_FILE) if row.get("iteration", math.inf) <= iterations]


def normalized_objective(task_finals: dict, references: dict) -> float:
    """Mean over tasks of the IQM final return over the task's reference (NaN when a task has no finite one)."""
    values = []
    for task, finals in task_finals.items():
        scored = [value for value in finals if math.isfinite(value)]
        if not scored:
            return math.nan
        values.append(statistics.iqm(scored) / references[task])
    return float(sum(values) / len(values))


def objective_ci(spec: TuneSpec, task_finals: dict) -> tuple[float, float, float]:
    """The objective with its stratified bootstrap CI (runs resampled within each task)."""
    tasks = list(task_finals)
    finals = [[value for value in task_finals[task]] for task in tasks]
    if len({len(values) for values in finals}) != 1 or any(not all(map(math.isfinite, values)) for values in finals):
        return normalized_objective(task_finals, spec.references), math.nan, math.nan
    return statistics.normalized_score_ci(
        [list(column) for column in zip(*finals, strict=True)],
        [spec.references[task] for task in tasks],
        resamples=spec.bootstrap_resamples,
        confidence=spec.confidence,
    )


def _record_progress(entry: ActiveTrial, jobs: Sequence[Job], point: int, points: int, last_k: int) -> dict:
    """Each task's final returns at this pruning point, stored on the trial with the env steps and seconds used."""
    task_finals, env_steps, seconds = {}, 0.0, 0.0
    for task in entry.iterations:
        cut = rung_iterations(entry.iterations[task], point, points)
        finals = []
        for job in (job for job in jobs if job.variant.name == entry.variant_name(task)):
            rows = rows_up_to(job.run_dir, cut)
            finals.append(final_return(rows, last_k))
            if rows:
                env_steps += rows[-1].get("env_steps", 0.0)
                seconds += sum(row.get("wall_time", 0.0) for row in rows if math.isfinite(row.get("wall_time", math.nan)))
        task_finals[task] = finals
    entry.trial.set_user_attr("task_finals", task_finals)
    entry.trial.set_user_attr("env_steps", env_steps)
    entry.trial.set_user_attr("train_seconds", seconds)
    entry.trial.set_user_attr("point", point)
    return task_finals


Runner = Callable[[SweepSpec], list[JobResult]]


def run_generation(spec: TuneSpec, storage, active: list[ActiveTrial], runner: Runner, say: Callable[[str], None]) -> None:
    """Advance one trial per contender through the pruning points, telling Optuna how each ended."""
    optuna = import_optuna()
    points = spec.pruning_points
    for point in range(1, points + 1):
        if not active:
            return
        variants = [
            Variant(entry.variant_name(task), entry.contender.configs[task], entry.contender.trial_bindings(entry.params),
                    entry.contender.trainer, iterations=rung_iterations(entry.iterations[task], point, points))
            for entry in active for task in spec.tuning.tasks
        ]  # fmt: skip
        sweep = _sweep(spec, spec.out / TRIALS_DIR, spec.tuning.seeds, variants)
        jobs = plan(sweep)
        refuse_stale_runs(jobs)
        results = runner(sweep)
        still = []
        with trial_states_lock(storage):
            for entry in active:
                try:
                    lost = not _is_running(entry)
                    if not lost and _end_point(spec, entry, results, jobs, point, say):
                        still.append(entry)
                except optuna.exceptions.UpdateFinishedTrialError:  # a database server refuses the update itself
                    lost = True
                if lost:  # this process stalled past two heartbeats: the trial is another process's now
                    say(f"lost  {entry.label}: its heartbeat lapsed, another process failed it and queued it again")
        active = still


def _end_point(spec: TuneSpec, entry: ActiveTrial, results: Sequence[JobResult], jobs: Sequence[Job], point: int,
               say: Callable[[str], None]) -> bool:  # fmt: skip
    """Record the trial at this pruning point and tell Optuna when it ended there; True while it goes on."""
    states = import_optuna().trial.TrialState
    points = spec.pruning_points
    names = {entry.variant_name(task) for task in spec.tuning.tasks}
    failed = [result for result in results if result.job.variant.name in names and result.status == "failed"]
    if failed:
        entry.trial.set_user_attr("error", f"{failed[0].job.label} (exit code {failed[0].returncode}): {failed[0].stderr_tail[-500:]}")
        entry.study.tell(entry.trial, state=states.FAIL)
        say(f"FAIL  {entry.label}: {failed[0].job.label} failed")
        return False
    task_finals = _record_progress(entry, jobs, point, points, spec.last_k)
    value = normalized_objective(task_finals, spec.references)
    if not math.isfinite(value):
        if point < points:
            return True
        entry.trial.set_user_attr("error", "no finite return on some task")
        entry.study.tell(entry.trial, state=states.FAIL)
        say(f"FAIL  {entry.label}: no finite return on some task")
        return False
    entry.trial.report(value, point)
    if point < points and entry.trial.should_prune():
        entry.study.tell(entry.trial, state=states.PRUNED)
        say(f"prune {entry.label} at point {point}/{points}: objective {value:.3f}")
        return False
    if point == points:
        entry.study.tell(entry.trial, value)
        say(f"done  {entry.label}: objective {value:.3f} {_params_text(entry.params)}")
        return False
    return True


def _params_text(params: dict) -> str:
    return "(" + ", ".join(f"{key} = {value!r}" for key, value in params.items()) + ")"


def _is_running(entry: ActiveTrial) -> bool:
    optuna = import_optuna()
    return entry.study._storage.get_trial(entry.trial._trial_id).state == optuna.trial.TrialState.RUNNING


def requeue(storage, active: Sequence[ActiveTrial]) -> None:
    """Interrupted: fail the active trials still running and queue each again at once (same parameters and run dirs)."""
    optuna = import_optuna()
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    with trial_states_lock(storage):
        for entry in (entry for entry in active if _is_running(entry)):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
                entry.study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
                retry(entry.study, storage.get_trial(entry.trial._trial_id))


def unfinished_elsewhere(spec: TuneSpec, storage) -> int:
    """Trials running (in another process, or in a dead one whose heartbeat has not lapsed yet) or queued."""
    optuna = import_optuna()
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    count = 0
    for contender in spec.contenders:
        study = load_study(spec, storage, contender)
        with trial_states_lock(storage):
            optuna.storages.fail_stale_trials(study)
        count += sum(trial.state in states for trial in study.get_trials(deepcopy=False))
    return count


def tune_studies(spec: TuneSpec, storage, runner: Runner, say: Callable[[str], None]) -> None:
    """Run generations until every contender's budget is used and no trial is left running anywhere."""
    for contender in spec.contenders:
        load_study(spec, storage, contender, create=True)
    waiting_said = False
    while True:
        active = [entry for contender in spec.contenders if (entry := next_trial(spec, storage, contender)) is not None]
        if not active:
            left = unfinished_elsewhere(spec, storage)
            if not left:
                return
            if not waiting_said:
                say(f"wait  {left} trial(s) running in another process (or in a stopped one until its heartbeat lapses)")
                waiting_said = True
            time.sleep(spec.heartbeat_seconds)
            continue
        waiting_said = False
        for entry in active:
            say(f"start {entry.label} {_params_text(entry.params)}")
        with heartbeat(storage, active, spec.heartbeat_seconds):
            try:
                run_generation(spec, storage, active, runner, say)
            except BaseException:
                requeue(storage, active)
                raise


# --------------------------------------------------------------------------------------- selection
@attrs.frozen
class Choice:
    contender: Contender
    trial_number: int
    params: dict
    objective: float
    low: float
    high: float
    reason: str


def _finished(study) -> list:
    optuna = import_optuna()
    return [trial for trial in counted_trials(study.get_trials(deepcopy=False)) if trial.state == optuna.trial.TrialState.COMPLETE]


def choose(spec: TuneSpec, contender: Contender, study) -> Choice:
    """The contender's configuration by the spec's selection rule."""
    completed = _finished(study)
    if not completed:
        raise RuntimeError(f"{spec.path}: contender {contender.name!r} has no completed trial to choose from")
    best = max(completed, key=lambda trial: (trial.value, -trial.number))
    point, low, high = objective_ci(spec, best.user_attrs["task_finals"])
    chosen = Choice(contender, best.number, best.params, point, low, high, "highest objective")
    if spec.selection == "best_if_ci_clear_of_default":
        defaults = contender.defaults
        default = next((trial for trial in completed if trial.params == defaults), None)
        if default is None:
            raise RuntimeError(f"{spec.path}: contender {contender.name!r}: the default configuration has no completed trial")
        if default.number != best.number:
            d_point, d_low, d_high = objective_ci(spec, default.user_attrs["task_finals"])
            if not low > d_high:
                reason = f"the best (trial {best.number}, {point:.3f} [{low:.3f}, {high:.3f}]) does not clear the default's CI"
                return Choice(contender, default.number, default.params, d_point, d_low, d_high, reason)
            chosen = attrs.evolve(chosen, reason="highest objective, its CI clear of the default's")
        else:
            chosen = attrs.evolve(chosen, reason="the default has the highest objective")
    return chosen


# -------------------------------------------------------------------------------------- validation
def validation_sweep(spec: TuneSpec, choices: Sequence[Choice]) -> SweepSpec:
    budget = {}
    if spec.validation.iterations is not None:
        budget = {"iterations": spec.validation.iterations}
    elif spec.validation.env_steps is not None:
        budget = {"env_steps": spec.validation.env_steps}
    variants = [
        Variant(f"{choice.contender.name}.{task}", choice.contender.configs[task], choice.contender.trial_bindings(choice.params), choice.contender.trainer)
        for choice in choices for task in spec.validation.tasks
    ]  # fmt: skip
    return _sweep(spec, spec.out / VALIDATION_DIR, spec.validation.seeds, variants, **budget)


def store_validation(spec: TuneSpec, storage, choices: Sequence[Choice], sweep: SweepSpec) -> None:
    """Each contender's validation runs (final return, env steps, seconds per seed) stored with its study,
    so that the report rebuilds from the database alone."""
    jobs = plan(sweep)
    for choice in choices:
        tasks = {}
        for task in spec.validation.tasks:
            entries = {"seeds": [], "finals": [], "env_steps": [], "train_seconds": []}
            for job in jobs:
                if job.variant.name != f"{choice.contender.name}.{task}":
                    continue
                rows = read_metrics(job.run_dir / METRICS_FILE)
                entries["seeds"].append(job.seed)
                entries["finals"].append(final_return(rows, spec.last_k))
                entries["env_steps"].append(rows[-1].get("env_steps", math.nan) if rows else math.nan)
                entries["train_seconds"].append(sum(row.get("wall_time", 0.0) for row in rows if math.isfinite(row.get("wall_time", math.nan))))
            tasks[task] = entries
        record = {
            "trial": choice.trial_number, "params": choice.params, "objective": choice.objective, "low": choice.low,
            "high": choice.high, "reason": choice.reason, "bindings": list(choice.contender.trial_bindings(choice.params)),
            "tasks": tasks,
        }  # fmt: skip
        load_study(spec, storage, choice.contender).set_user_attr(VALIDATION_ATTR, record)


@contextlib.contextmanager
def validation_lock(spec: TuneSpec) -> Iterator[bool]:
    """True when this process holds the validation (another process validating the same study holds it)."""
    spec.out.mkdir(parents=True, exist_ok=True)
    with open(spec.out / VALIDATION_LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -------------------------------------------------------------------------------------------- main
@contextlib.contextmanager
def _ray_session(options) -> Iterator[None]:
    """One Ray connection for the whole tune (each trial's runs are Ray tasks of the sweep backend)."""
    if options is None:
        yield
        return
    try:
        import ray
    except ImportError:
        raise ImportError("--backend ray needs ray: install genpo's scale extra (pip install 'genpo[scale]')") from None
    from genpo.experiments.ray_backend import _init_keeping_sigterm_handler

    _init_keeping_sigterm_handler(ray, options.address)
    try:
        yield
    finally:
        ray.shutdown()


def run_sweep_on_ray(sweep: SweepSpec, options) -> list[JobResult]:
    from genpo.experiments.ray_backend import run_sweep_on_ray as run_on_ray

    return run_on_ray(sweep, options)


def main(
    spec_path: str | Path,
    *,
    command: str,
    storage_url: str | None = None,
    max_parallel: int | None = None,
    ray=None,
    report_only: bool = False,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> int:
    """What ``genpo tune`` does; returns the exit code (130 when interrupted)."""
    from genpo.experiments.tune_report import write_tune_report

    spec = load_tune_spec(spec_path)
    if storage_url is not None:
        spec = attrs.evolve(spec, storage=storage_url)
    storage = open_storage(spec)
    if report_only:
        path = write_tune_report(spec, storage, command)
        say(f"report: {path}")
        return 0
    if ray is None:
        def runner(sweep: SweepSpec) -> list[JobResult]:
            return run_sweep(sweep, max_parallel=max_parallel)
    else:
        spec = attrs.evolve(spec, out=spec.out.resolve())  # absolute run directories: the tasks run elsewhere

        def runner(sweep: SweepSpec) -> list[JobResult]:
            return run_sweep_on_ray(sweep, ray)
    try:
        with terminate_as_interrupt(), _ray_session(ray):
            tune_studies(spec, storage, runner, say)
            with validation_lock(spec) as held:
                if not held:
                    say("another process is running the validation; its report follows")
                    return 0
                choices = [choose(spec, contender, load_study(spec, storage, contender)) for contender in spec.contenders]
                for choice in choices:
                    say(f"chose {choice.contender.name}: trial {choice.trial_number} {_params_text(choice.params)} ({choice.reason})")
                sweep = validation_sweep(spec, choices)
                refuse_stale_runs(plan(sweep))
                results = runner(sweep)
                store_validation(spec, storage, choices, sweep)
    except KeyboardInterrupt:
        print(f"genpo tune: interrupted; run the same command again to resume: {command}", file=sys.stderr)
        return 130
    path = write_tune_report(spec, storage, command)
    say(f"report: {path}")
    failed = [result for result in results if result.status == "failed"]
    if failed:
        print(f"{len(failed)} validation run(s) failed: {', '.join(result.job.label for result in failed)}", file=sys.stderr)
        return 1
    return 0
