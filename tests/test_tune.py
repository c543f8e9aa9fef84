"""``genpo tune``: the spec and its protocol checks, rliable's statistics, the equal-budget search with
pruning and selection, the report rebuilt from the database, and a real tune killed and resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from genpo.experiments import statistics
from genpo.experiments.runner import JobResult
from genpo.experiments.tune_spec import load_tune_spec, parse_tune_spec

optuna = pytest.importorskip("optuna")

from genpo.experiments import tune  # noqa: E402  (needs optuna)
from genpo.experiments.tune_report import write_tune_report  # noqa: E402

pytestmark = pytest.mark.xdist_group("sweep")  # the subprocess runs share 2 cores: keep them off both workers

TINY = [
    "genpo.build_env.num_envs = 16", "genpo.build_env.max_episode_steps = 12", "genpo.trainer.steps_per_env = 12",
    "genpo.trainer.epochs = 1", "genpo.trainer.minibatches = 2", "velocity_network.mlp.hidden_sizes = (16,)",
    "critic.mlp.hidden_sizes = (16,)", "time_embedding.sinusoidal.hidden_sizes = (8,)", "actor.gaussian.hidden_sizes = (16,)",
]  # fmt: skip

CONTENDERS = """
[[contenders]]
name = "genpo"
tasks = { pendulum = "tasks/pendulum.gin", two_goals = "tasks/two_goals.gin" }
[contenders.search]
"genpo.trainer.epochs" = { choices = [1, 2, 3], default = 3 }

[[contenders]]
name = "gaussian"
tasks = { pendulum = "tasks/pendulum_gaussian.gin", two_goals = "tasks/two_goals_gaussian.gin" }
[contenders.search]
"genpo.trainer.epochs" = { choices = [1, 2, 3], default = 3 }
"lr_controller.kl_adaptive.target_kl" = { log_range = [0.005, 0.04], default = 0.01 }
"""


def spec_text(tmp_path: Path, *, extra: str = "", tuning_seeds=(0, 1), validation="tasks = [\"two_goals\"]\nseeds = [100, 101]",
              contenders: str = CONTENDERS) -> str:  # fmt: skip
    return textwrap.dedent(
        f"""
        out = {json.dumps(str(tmp_path / "out"))}
        trials = 4
        iterations = 4
        heartbeat_seconds = 1
        bootstrap_resamples = 200
        bindings = {json.dumps(TINY)}
        {extra}
        [references]
        pendulum = 100.0
        two_goals = 10.0

        [tuning]
        tasks = ["pendulum"]
        seeds = {list(tuning_seeds)}

        [validation]
        {validation}
        """
    ) + contenders


def write(tmp_path: Path, text: str, name: str = "study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_tune_spec(path)


# ------------------------------------------------------------------------------------------------- spec
def test_validation_must_not_share_tasks_or_seeds_with_tuning(tmp_path):
    text = spec_text(tmp_path, validation='tasks = ["pendulum", "two_goals"]\nseeds = [1, 100]')
    with pytest.raises(ValueError, match=r"study.toml: validation must use tasks and seeds tuning never sees; .*share tasks \['pendulum'\], seeds \[1\]"):
        parse_tune_spec(text, tmp_path / "study.toml")
    with pytest.raises(ValueError, match=r"share seeds \[0\]$"):
        parse_tune_spec(spec_text(tmp_path, validation='tasks = ["two_goals"]\nseeds = [0]'), "study.toml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('tasks = { pendulum = "tasks/pendulum.gin", two_goals', 'tasks = { two_goals'), r"contender 'genpo': tasks gives no config for \['pendulum'\]"),
        (("log_range = [0.005, 0.04]", "log_range = [0.0, 0.04]"), r"a log_range needs low > 0"),
        (("choices = [1, 2, 3], default = 3 }\n\n", "choices = [1, 2, 3], default = 4 }\n\n"), r"default 4 is not one of the choices"),
        (("trials = 4", "trials = 0"), r"study.toml: trials must be a positive integer"),
        (("pendulum = 100.0", "pendulum = 0.0"), r"\[references\] pendulum must be a finite non-zero number"),
        (("iterations = 4", "iterations = 4\nenv_steps = 10"), r"give exactly one budget per run"),
    ],
)
def test_spec_errors_name_the_culprit(tmp_path, change, message):
    text = spec_text(tmp_path)
    assert change[0] in text
    with pytest.raises(ValueError, match=message):
        parse_tune_spec(text.replace(change[0], change[1], 1), "study.toml")


def test_rule_that_keeps_the_default_needs_a_default_for_every_binding(tmp_path):
    text = spec_text(tmp_path, extra='selection = "best_if_ci_clear_of_default"').replace(", default = 0.01", "")
    with pytest.raises(ValueError, match=r"needs a default for every searched binding; contenders \['gaussian'\] lack one"):
        parse_tune_spec(text, "study.toml")


def test_trial_bindings_are_gin_text_of_the_searched_values(tmp_path):
    spec = write(tmp_path, spec_text(tmp_path))
    gaussian = spec.contenders[1]
    trial = optuna.trial.FixedTrial({"genpo.trainer.epochs": 2, "lr_controller.kl_adaptive.target_kl": 0.02})
    params = {dimension.binding: dimension.suggest(trial) for dimension in gaussian.search}
    assert gaussian.trial_bindings(params) == ("genpo.trainer.epochs = 2", "lr_controller.kl_adaptive.target_kl = 0.02")
    assert gaussian.defaults == {"genpo.trainer.epochs": 3, "lr_controller.kl_adaptive.target_kl": 0.01}
    assert spec.storage == f"sqlite:///{tmp_path / 'out'}.optuna.db"


TUNE_SPECS = sorted((Path(__file__).resolve().parents[1] / "sweeps" / "tune").glob("*.toml"))


@pytest.mark.parametrize("path", TUNE_SPECS, ids=[path.stem for path in TUNE_SPECS])
def test_every_committed_tune_spec_parses_and_its_bindings_are_valid(path):
    """Every tune spec in sweeps/tune/ loads, and each contender's config parses in gin for every task with
    each searched binding at its default and at the ends of its space."""
    import gin

    from genpo.builders.config import parse_config

    spec = load_tune_spec(path)
    for contender in spec.contenders:
        base = {d.binding: d.default if d.default is not None else (d.choices or (d.low,))[0] for d in contender.search}
        for dimension in contender.search:
            values = [*(dimension.choices or (dimension.low, dimension.high)), dimension.default]
            for value in (value for value in values if value is not None):
                for config in contender.configs.values():
                    gin.clear_config()
                    parse_config([config], [*spec.bindings, *contender.trial_bindings({**base, dimension.binding: value})])
    gin.clear_config()


# ------------------------------------------------------------------------------------------- statistics
def test_probability_of_improvement_counts_pairs_and_half_ties():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])  # task 0: x in {1, 3}; task 1: x = 5 twice
    y = np.array([[2.0, 5.0], [2.0, 4.0], [0.0, 6.0]])
    # task 0: pairs (1,2)(1,2)(1,0)(3,2)(3,2)(3,0): 4 of 6 wins; task 1: (5,5) ties x2, (5,4) wins x2, (5,6) losses x2: (2 + 1) / 6
    assert statistics.probability_of_improvement(x, y) == pytest.approx((4 / 6 + 3 / 6) / 2)
    assert statistics.probability_of_improvement(x, y) + statistics.probability_of_improvement(y, x) == pytest.approx(1.0)
    assert statistics.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold():
    scores = np.array([[0.0, 1.0], [0.5, 2.0], [1.0, 3.0]])
    assert statistics.performance_profile(scores, [-1.0, 0.5, 1.0, 3.0]).tolist() == [1.0, 4 / 6, 2 / 6, 0.0]


def test_bootstraps_resample_within_each_task():
    """Every task's runs resampled within the task: when the tasks separate at tau, each resample keeps
    one task below and one above it, so the profile there has no spread; resampling across tasks would."""
    scores = np.stack([np.arange(5.0), np.arange(10.0, 15.0)], axis=1)
    profile, low, high = statistics.performance_profile_ci(scores, [5.0, 12.0], resamples=300)
    assert (profile[0], low[0], high[0]) == (0.5, 0.5, 0.5)
    assert low[1] < profile[1] < high[1]
    point, low, high = statistics.probability_of_improvement_ci(scores + 1.0, scores, resamples=300)
    assert point == pytest.approx((15 + 0.5 * 4) / 25)  # per task: x_i = y_i + 1 beats y_j for j <= i, ties j = i + 1
    assert low < point < high


# -------------------------------------------------------------------------- the search, with runs faked
def fake_runner(returns, calls):
    """Writes each job's metrics as ``genpo train`` would: one row per iteration, a return from
    ``returns(bindings, iteration)``; a finished run keeps its rows (the runner resumes, never restarts)."""

    def run(sweep):
        from genpo.experiments.spec import plan

        results = []
        for job in plan(sweep):
            calls.append((job.variant.name, job.seed, job.iterations))
            job.run_dir.mkdir(parents=True, exist_ok=True)
            path = job.run_dir / "metrics.csv"
            lines = ["iteration,env_steps,wall_time,return_mean"]
            for iteration in range(1, job.iterations + 1):
                value = returns(dict(binding.split(" = ") for binding in job.bindings), iteration) + job.seed
                lines.append(f"{iteration},{iteration * 100},0.5,{value}")
            path.write_text("\n".join(lines) + "\n")
            results.append(JobResult(job, "ok", 0))
        return results

    return run


def by_epochs(bindings, iteration):
    return 10.0 * float(bindings["genpo.trainer.epochs"]) * iteration


def counted(spec, storage, contender):
    return tune.counted_trials(tune.load_study(spec, storage, contender).get_trials(deepcopy=False))


def test_every_contender_gets_the_same_budget_and_the_pruner_stops_worse_trials(tmp_path):
    extra = "pruning_points = 2\npruner_startup_trials = 1\nsampler_startup_trials = 1\nselection = \"best_if_ci_clear_of_default\""
    spec = write(tmp_path, spec_text(tmp_path, extra=extra))
    storage, calls, lines = tune.open_storage(spec), [], []
    tune.tune_studies(spec, storage, fake_runner(by_epochs, calls), lines.append)
    states = optuna.trial.TrialState
    for contender in spec.contenders:
        trials = counted(spec, storage, contender)
        assert len(trials) == spec.trials
        assert trials[0].params["genpo.trainer.epochs"] == 3 and trials[0].state == states.COMPLETE  # the default first
        for trial in trials[1:]:
            worse = trial.params["genpo.trainer.epochs"] < 3
            # below the median of the completed trials at point 1 of 2: stopped there, its runs at 2 of 4 iterations
            assert trial.state == (states.PRUNED if worse else states.COMPLETE)
            assert list(trial.intermediate_values) == ([1] if worse else [1, 2])
            assert trial.user_attrs["env_steps"] == (200 if worse else 400) * len(spec.tuning.seeds)
    # the contenders advanced in lockstep: equal numbers of trials, each run's budget the same for both
    full = [(name, iterations) for name, _, iterations in calls if iterations == spec.iterations]
    assert all(iterations in (2, 4) for _, _, iterations in calls)
    assert len({name.split(".")[0] for name, _ in full}) == 2
    chosen = {contender.name: tune.choose(spec, contender, tune.load_study(spec, storage, contender)) for contender in spec.contenders}
    assert all(choice.trial_number == 0 for choice in chosen.values())  # ties with the default keep it
    # a second tune of the finished study asks for nothing more
    tune.tune_studies(spec, storage, fake_runner(by_epochs, calls := []), lines.append)
    assert calls == []


def test_best_replaces_the_default_only_when_its_ci_clears_the_defaults(tmp_path):
    extra = 'selection = "best_if_ci_clear_of_default"\npruner = "none"\nsampler_startup_trials = 1'
    spec = write(tmp_path, spec_text(tmp_path, extra=extra, tuning_seeds=(0, 1, 2, 3)))
    storage = tune.open_storage(spec)
    # epochs 1 is best: it clears the default (3) by far on every seed
    tune.tune_studies(spec, storage, fake_runner(lambda b, i: -10.0 * float(b["genpo.trainer.epochs"]) * i, []), lambda line: None)
    for contender in spec.contenders:
        study = tune.load_study(spec, storage, contender)
        best = max(tune._finished(study), key=lambda trial: trial.value)
        choice = tune.choose(spec, contender, study)
        assert best.params["genpo.trainer.epochs"] < 3
        assert choice.trial_number == best.number and "clear of the default" in choice.reason


def test_a_study_refuses_a_changed_protocol(tmp_path):
    spec = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"'))
    storage = tune.open_storage(spec)
    tune.tune_studies(spec, storage, fake_runner(by_epochs, []), lambda line: None)
    changed = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"\nselection = "best_if_ci_clear_of_default"'))
    with pytest.raises(ValueError, match=r"study 'study.genpo' was started with another protocol"):
        tune.tune_studies(changed, storage, fake_runner(by_epochs, []), lambda line: None)
    commented = write(tmp_path, "# a comment changes nothing\n" + spec_text(tmp_path, extra='pruner = "none"'))
    tune.tune_studies(commented, storage, fake_runner(by_epochs, []), lambda line: None)


def run_together(target, storages) -> None:
    """``target(storage)`` for each storage, in threads started together; returns when all have ended."""
    threads = [threading.Thread(target=target, args=(storage,)) for storage in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_tuners_on_one_study_share_the_budget(tmp_path):
    spec = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"'))
    storages, errors = [tune.open_storage(spec), tune.open_storage(spec)], []
    for contender in spec.contenders:
        tune.load_study(spec, storages[0], contender, create=True)

    def tuner(storage):
        try:
            tune.tune_studies(spec, storage, fake_runner(by_epochs, []), lambda line: None)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)

    run_together(tuner, storages)
    assert errors == []
    for contender in spec.contenders:
        trials = counted(spec, storages[0], contender)
        assert len(trials) == spec.trials and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)


def test_two_tuners_asking_at_once_never_take_the_same_queued_trial(tmp_path):
    """Optuna takes a queued trial by checking then setting its state, and SQLite ignores the row lock that
    makes this atomic on a database server: two tuners asking at once, each on its own connection, must
    still take different trials, every round."""
    spec = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"').replace("trials = 4", "trials = 40"))
    storages, rounds = [tune.open_storage(spec), tune.open_storage(spec)], 10
    contender = spec.contenders[0]
    study = tune.load_study(spec, storages[0], contender, create=True)  # queues the default as trial 0
    for _ in range(2 * rounds - 1):
        study.enqueue_trial(contender.defaults)
    taken, errors, together = [], [], threading.Barrier(2)

    def tuner(storage):
        try:
            for _ in range(rounds):
                together.wait()
                taken.append(tune.next_trial(spec, storage, contender).trial.number)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)
            together.abort()

    run_together(tuner, storages)
    assert errors == []
    assert len(taken) == 2 * rounds and len(set(taken)) == len(taken), sorted(taken)


def test_a_tuner_never_updates_a_trial_another_tuner_queued_again(tmp_path):
    """A tuner that stalled past two heartbeats finds its trial failed and queued again by another tuner:
    it drops the trial without writing to it, and the retry keeps the trial's parameters and run dirs."""
    spec = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"'))
    mine, other = tune.open_storage(spec), tune.open_storage(spec)
    contender = spec.contenders[0]
    tune.load_study(spec, mine, contender, create=True)
    entry = tune.next_trial(spec, mine, contender)
    # what the other tuner's fail_stale_trials does with a trial whose heartbeat lapsed
    study = tune.load_study(spec, other, contender)
    assert other.set_trial_state_values(entry.trial._trial_id, optuna.trial.TrialState.FAIL)
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, other.get_trial(entry.trial._trial_id))
    lines = []
    tune.run_generation(spec, mine, [entry], fake_runner(by_epochs, []), lines.append)
    assert lines == [f"lost  {entry.label}: its heartbeat lapsed, another process failed it and queued it again"]
    dropped, retry = study.get_trials(deepcopy=False)
    assert dropped.state == optuna.trial.TrialState.FAIL and "point" not in dropped.user_attrs and not dropped.intermediate_values
    assert retry.state == optuna.trial.TrialState.WAITING and retry.system_attrs["retry_history"] == [dropped.number]
    retried = tune.next_trial(spec, other, contender)
    assert retried.trial.number == retry.number and retried.params == entry.params and retried.run_key == entry.run_key


def test_the_report_rebuilds_from_the_database_alone(tmp_path):
    spec = write(tmp_path, spec_text(tmp_path, extra='pruner = "none"'))
    storage = tune.open_storage(spec)
    runner = fake_runner(lambda b, i: 5.0 * float(b["genpo.trainer.epochs"]) + i, [])
    tune.tune_studies(spec, storage, runner, lambda line: None)
    choices = [tune.choose(spec, contender, tune.load_study(spec, storage, contender)) for contender in spec.contenders]
    sweep = tune.validation_sweep(spec, choices)
    runner(sweep)
    tune.store_validation(spec, storage, choices, sweep)
    report = write_tune_report(spec, storage, "genpo tune study.toml").read_text()
    # the validation table: 2 seeds per contender on two_goals, final = mean of the last 3 of 4 iterations' returns
    best = 5.0 * 3 + 3.0  # epochs 3, iterations 2-4 average 3, plus the seed offsets 100 and 101 averaged below
    assert re.search(rf"\| genpo \| two_goals \| 2 \| {best + 100.5:.1f} \[", report)
    assert "| genpo | gaussian | 0.500 [" in report  # the same returns: P(X > Y) = 1/2
    shutil.rmtree(spec.out)
    rebuilt = write_tune_report(spec, tune.open_storage(spec), "genpo tune study.toml").read_text()
    section = lambda text, title: text.split(f"## {title}")[1].split("\n## ")[0]  # noqa: E731
    for title in ("Budget used", "Search history", "Parameter importances", "Chosen configurations"):
        assert section(rebuilt, title) == section(report, title)
    validation = [section(text, "Validation").split("![validation")[0].rstrip() for text in (rebuilt, report)]
    assert validation[0] == validation[1] and "| gaussian | two_goals | 2 |" in validation[0]  # the curves need the runs


# ------------------------------------------------------------------------------- a real tune, killed
def test_a_killed_tune_resumes_its_trials_in_the_same_runs(tmp_path):
    """Pendulum, 3 trials x 2 iterations per contender: the tune process group is killed while the second
    trials run; the same command finishes the study, the killed trials continue in their run directories,
    every contender ends with the same trials and env steps, and the report holds the validation."""
    text = spec_text(tmp_path, tuning_seeds=(0,), validation='tasks = ["two_goals"]\nseeds = [100]', extra='pruner = "none"')
    text = text.replace("trials = 4", "trials = 3").replace("iterations = 4", "iterations = 2")
    spec = write(tmp_path, text)
    command = [sys.executable, "-m", "genpo.cli", "tune", str(spec.path)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    second = spec.out / "trials" / "genpo.trial1.pendulum" / "seed0"
    deadline = time.monotonic() + 120
    while not second.is_dir() and process.poll() is None and time.monotonic() < deadline:  # made just before its process starts
        time.sleep(0.1)
    assert process.poll() is None, process.stdout.read().decode()
    os.killpg(process.pid, signal.SIGKILL)  # the tune and its runs, as a crash would
    process.wait()
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    storage = tune.open_storage(spec)
    states = optuna.trial.TrialState
    steps = set()
    for contender in spec.contenders:
        everything = tune.load_study(spec, storage, contender).get_trials(deepcopy=False)
        trials = tune.counted_trials(everything)
        assert [trial.state for trial in trials] == [states.COMPLETE] * 3
        retries = [trial for trial in trials if trial.system_attrs.get("retry_history")]
        assert retries, "the killed trial was queued again"
        for retry in retries:
            original = everything[retry.system_attrs["retry_history"][0]]
            assert original.state == states.FAIL and retry.params == original.params
            assert retry.user_attrs["run_key"] == original.number
        for trial in trials:
            run = spec.out / "trials" / f"{contender.name}.trial{trial.user_attrs['run_key']}.pendulum" / "seed0"
            rows = (run / "metrics.csv").read_text().splitlines()
            assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]  # resumed: no iteration twice
            steps.add(trial.user_attrs["env_steps"])
    assert steps == {2 * 16 * 12}
    report = (spec.out / "report.md").read_text()
    assert re.search(r"\| genpo \| two_goals \| 1 \|", report) and re.search(r"\| gaussian \| two_goals \| 1 \|", report)


@pytest.mark.parametrize("path", TUNE_SPECS, ids=[path.stem for path in TUNE_SPECS])
def test_every_committed_tune_spec_default_is_what_the_config_runs_today(path):
    """A searched binding's ``default`` is the value its contender's task config resolves to: the trial that
    runs the defaults, and the rule that keeps them, compare against the configuration users actually get."""
    import gin

    from genpo.builders.config import parse_config

    spec = load_tune_spec(path)
    for contender in spec.contenders:
        for task, config in contender.configs.items():
            gin.clear_config()
            parse_config([config], [*spec.bindings, *contender.bindings])
            for dimension in (dimension for dimension in contender.search if dimension.default is not None):
                value = gin.query_parameter(dimension.binding)
                resolved = str(value) if isinstance(value, gin.config.ConfigurableReference) else value
                assert resolved == dimension.default, (contender.name, task, dimension.binding, resolved)
    gin.clear_config()
