"""The tuning spec of ``genpo tune``: a fair comparison written down before any trial.

A spec (see ``docs/tuning.md``)::

    out = "runs/tune/mujoco"                  # trial and validation runs, report.md
    study = "mujoco"                          # optional: the Optuna study name (default: the spec's stem)
    storage = "sqlite:///runs/tune/mujoco.db" # optional: default a SQLite file next to out (OUT.optuna.db)
    trials = 16                               # per contender: the equal trial budget
    env_steps = 512000                        # per run: the equal env-step budget (or iterations = N)
    pruning_points = 4                        # the learning curve is reported at 4 evenly spaced points
    pruner = "median"                         # or "none"
    pruner_startup_trials = 5                 # trials completed before the pruner may stop one
    sampler_seed = 0                          # TPE: seeded by this and the trials already in the study
    sampler_startup_trials = 5                # random trials before TPE models the history
    selection = "best_if_ci_clear_of_default" # or "best"
    threads_per_run = 1
    last_k = 3
    bindings = []

    [references]                              # the return that normalises each task's IQM
    halfcheetah = 1158.0
    hopper = 1073.0
    walker2d = 1000.0

    [tuning]
    tasks = ["halfcheetah", "hopper"]
    seeds = [0, 1, 2]

    [validation]                              # tasks and seeds tuning never sees
    tasks = ["walker2d"]
    seeds = [100, 101, 102, 103, 104]

    [[contenders]]
    name = "genpo"
    tasks = { halfcheetah = "tasks/halfcheetah.gin", hopper = "tasks/hopper.gin", walker2d = "tasks/walker2d.gin" }
    [contenders.search]
    "lr_controller.kl_adaptive.target_kl" = { log_range = [0.005, 0.04], default = 0.01 }
    "genpo.build_env.num_envs" = { choices = [32, 64], default = 64 }

Every error names the spec file and the offending key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs

from genpo.builders.config import resolve_config_path
from genpo.experiments.spec import _NAME, TRAINERS, gin_literal, load_spec_table
from genpo.experiments.statistics import DEFAULT_CONFIDENCE, DEFAULT_LAST_K, DEFAULT_RESAMPLES
from genpo.validation import check_positive_int

SELECTION_RULES = {
    "best": "the completed trial with the highest objective",
    "best_if_ci_clear_of_default": (
        "the completed trial with the highest objective, if the lower end of its objective's bootstrap CI lies above "
        "the upper end of the default configuration's (the first trial); otherwise the default"
    ),
}
PRUNERS = ("median", "none")
_SPEC_KEYS = {
    "out", "study", "storage", "trials", "iterations", "env_steps", "pruning_points", "pruner", "pruner_startup_trials",
    "selection", "sampler_seed", "sampler_startup_trials", "threads_per_run", "last_k", "bindings", "heartbeat_seconds", "bootstrap_resamples",
    "confidence", "references", "tuning", "validation", "contenders",
}  # fmt: skip
_CONTENDER_KEYS = {"name", "tasks", "bindings", "trainer", "search"}
_DIMENSION_KEYS = {"range", "log_range", "step", "choices", "default"}


@attrs.frozen
class Dimension:
    """One searched gin binding: a ``range`` (int when both ends are, else float; ``log`` for a log
    range; optional ``step``) or ``choices`` (TOML values, each written as gin text), with an optional
    ``default`` (the configuration the contender has today)."""

    binding: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    default: object = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def suggest(self, trial) -> object:
        """The value an Optuna trial proposes (or holds, for an enqueued one)."""
        if self.choices:
            return trial.suggest_categorical(self.binding, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.binding, self.low, self.high, log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.binding, self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> str:
        if self.choices:
            return "choices " + ", ".join(gin_literal(choice) for choice in self.choices)
        kind = "log range" if self.log else "range"
        step = f" step {self.step:g}" if self.step is not None else ""
        return f"{kind} [{self.low:g}, {self.high:g}]{step}"


@attrs.frozen
class Contender:
    name: str
    configs: dict  # task -> resolved config path
    config_names: dict  # task -> the config as the spec names it (machine-independent)
    bindings: tuple[str, ...] = ()
    trainer: str = "genpo"
    search: tuple[Dimension, ...] = ()

    def trial_bindings(self, params: dict) -> tuple[str, ...]:
        """The contender's bindings and a trial's searched values, as gin bindings."""
        return (*self.bindings, *(f"{dimension.binding} = {gin_literal(params[dimension.binding])}" for dimension in self.search))

    @property
    def defaults(self) -> dict | None:
        """The default of every searched binding, or None when a dimension has none."""
        if not self.search or any(dimension.default is None for dimension in self.search):
            return None
        return {dimension.binding: dimension.default for dimension in self.search}


@attrs.frozen
class TaskSet:
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    iterations: int | None = None  # validation only: its own budget (default: the tuning's)
    env_steps: int | None = None


@attrs.frozen(kw_only=True)
class TuneSpec:
    path: Path
    text: str
    out: Path
    study: str
    storage: str
    trials: int
    iterations: int | None
    env_steps: int | None
    pruning_points: int
    pruner: str
    pruner_startup_trials: int
    selection: str
    sampler_seed: int
    sampler_startup_trials: int
    threads_per_run: int
    last_k: int
    bindings: tuple[str, ...]
    heartbeat_seconds: int
    bootstrap_resamples: int
    confidence: float
    references: dict
    tuning: TaskSet
    validation: TaskSet
    contenders: tuple[Contender, ...]

    def protocol(self) -> str:
        """Everything that decides the comparison, as canonical JSON: stored with the study when its first
        trial is asked, and compared on every later ``genpo tune`` (the rule cannot change mid-study)."""
        fields = {
            "trials": self.trials, "iterations": self.iterations, "env_steps": self.env_steps,
            "pruning_points": self.pruning_points, "pruner": self.pruner, "pruner_startup_trials": self.pruner_startup_trials,
            "selection": self.selection, "sampler_seed": self.sampler_seed, "sampler_startup_trials": self.sampler_startup_trials, "last_k": self.last_k,
            "bindings": list(self.bindings), "references": self.references,
            "tuning": attrs.asdict(self.tuning), "validation": attrs.asdict(self.validation),
            "contenders": [
                {
                    "name": contender.name, "configs": contender.config_names,
                    "bindings": list(contender.bindings), "trainer": contender.trainer,
                    "search": [attrs.asdict(dimension) for dimension in contender.search],
                }
                for contender in self.contenders
            ],
        }  # fmt: skip
        return json.dumps(fields, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------- parsing
def _positive(path: Path, key: str, value: object) -> int:
    check_positive_int(str(path), key, value)
    return value


def _string_list(path: Path, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{path}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _task_set(data: dict, key: str, path: Path) -> TaskSet:
    section = data.get(key)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: [{key}] with 'tasks' and 'seeds' is required")
    allowed = {"tasks", "seeds"} | ({"iterations", "env_steps"} if key == "validation" else set())
    unknown = set(section) - allowed
    if unknown:
        raise ValueError(f"{path}: [{key}] has unknown keys {sorted(unknown)} (known: {sorted(allowed)})")
    tasks = _string_list(path, f"[{key}] tasks", section.get("tasks"))
    seeds = section.get("seeds")
    if not tasks:
        raise ValueError(f"{path}: [{key}] tasks must not be empty")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise ValueError(f"{path}: [{key}] seeds must be a non-empty list of integers, got {seeds!r}")
    for name, values in (("tasks", tasks), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise ValueError(f"{path}: [{key}] {name} repeat: {list(values)!r}")
    budget = {name: _positive(path, f"[{key}] {name}", section[name]) for name in ("iterations", "env_steps") if name in section}
    if len(budget) > 1:
        raise ValueError(f"{path}: [{key}] give at most one budget, 'iterations' or 'env_steps'")
    return TaskSet(tasks, tuple(seeds), **budget)


def _dimension(binding: str, entry: object, where: str) -> Dimension:
    if not isinstance(entry, dict) or set(entry) - _DIMENSION_KEYS:
        raise ValueError(f"{where}: search {binding!r} must be a table with one of range, log_range, choices (and optional step, default), got {entry!r}")
    kinds = [key for key in ("range", "log_range", "choices") if key in entry]
    if len(kinds) != 1:
        raise ValueError(f"{where}: search {binding!r} needs exactly one of range, log_range, choices")
    default = entry.get("default")
    if kinds[0] == "choices":
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices or "step" in entry:
            raise ValueError(f"{where}: search {binding!r}: choices must be a non-empty list (and no step)")
        for choice in choices:
            if not isinstance(choice, bool | int | float | str):
                raise ValueError(f"{where}: search {binding!r}: a choice must be a number, a boolean or a string (gin text), got {choice!r}")
        if default is not None and default not in choices:
            raise ValueError(f"{where}: search {binding!r}: default {default!r} is not one of the choices {choices!r}")
        return Dimension(binding, choices=tuple(choices), default=default)
    bounds = entry[kinds[0]]
    numeric = isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(end, int | float) and not isinstance(end, bool) for end in bounds)
    if not numeric or not bounds[0] < bounds[1] or not all(math.isfinite(end) for end in bounds):
        raise ValueError(f"{where}: search {binding!r}: {kinds[0]} must be [low, high] numbers with low < high, got {bounds!r}")
    log = kinds[0] == "log_range"
    if log and bounds[0] <= 0:
        raise ValueError(f"{where}: search {binding!r}: a log_range needs low > 0, got {bounds!r}")
    step = entry.get("step")
    if step is not None and (not isinstance(step, int | float) or isinstance(step, bool) or step <= 0 or log):
        raise ValueError(f"{where}: search {binding!r}: step must be a positive number, and a log_range takes none")
    if default is not None and (isinstance(default, bool) or not isinstance(default, int | float) or not bounds[0] <= default <= bounds[1]):
        raise ValueError(f"{where}: search {binding!r}: default {default!r} is not a number in {bounds!r}")
    return Dimension(binding, bounds[0], bounds[1], log, step, default=default)


def _contender(entry: object, path: Path, tasks: tuple[str, ...]) -> Contender:
    if not isinstance(entry, dict) or set(entry) - _CONTENDER_KEYS or "name" not in entry or "tasks" not in entry:
        raise ValueError(f"{path}: each [[contenders]] needs 'name' and 'tasks' (optional 'bindings', 'trainer', 'search'), got {entry!r}")
    name = entry["name"]
    where = f"{path}: contender {name!r}"
    if not isinstance(name, str) or not _NAME.match(name) or "." in name:
        raise ValueError(f"{where}: the name must be a safe directory name without dots ([A-Za-z0-9_=+,-])")
    configs = entry["tasks"]
    if not isinstance(configs, dict):
        raise ValueError(f"{where}: tasks must be a table task -> config, got {configs!r}")
    missing = [task for task in tasks if task not in configs]
    if missing:
        raise ValueError(f"{where}: tasks gives no config for {missing} (every tuning and validation task needs one)")
    trainer = entry.get("trainer", "genpo")
    if trainer not in TRAINERS:
        raise ValueError(f"{where}: trainer must be one of {TRAINERS}, got {trainer!r}")
    search = entry.get("search")
    if not isinstance(search, dict) or not search:
        raise ValueError(f"{where}: search must be a non-empty table binding -> {{range | log_range | choices}} (a contender without one has nothing to tune)")
    return Contender(
        name,
        {task: resolve_config_path(configs[task]) for task in tasks},
        {task: str(configs[task]) for task in tasks},
        _string_list(path, f"contender {name!r} bindings", entry.get("bindings", [])),
        trainer,
        tuple(_dimension(binding, value, where) for binding, value in search.items()),
    )


def check_held_out(path: Path, tuning: TaskSet, validation: TaskSet) -> None:
    """Validation tasks and seeds must be ones tuning never used: one error naming every overlap."""
    tasks = sorted(set(tuning.tasks) & set(validation.tasks))
    seeds = sorted(set(tuning.seeds) & set(validation.seeds))
    if tasks or seeds:
        shared = ", ".join(part for part in (f"tasks {tasks}" if tasks else "", f"seeds {seeds}" if seeds else "") if part)
        raise ValueError(f"{path}: validation must use tasks and seeds tuning never sees; [tuning] and [validation] share {shared}")


def parse_tune_spec(text: str, path: Path | str = "<spec>") -> TuneSpec:
    """A :class:`TuneSpec` from TOML text; every error names the spec file and the offending key."""
    path = Path(path)
    data = load_spec_table(text, path, _SPEC_KEYS)
    for key in ("out", "trials", "references", "contenders"):
        if key not in data:
            raise ValueError(f"{path}: {key!r} is required")
    if ("iterations" in data) == ("env_steps" in data):
        raise ValueError(f"{path}: give exactly one budget per run, 'iterations' or 'env_steps'")
    tuning, validation = _task_set(data, "tuning", path), _task_set(data, "validation", path)
    check_held_out(path, tuning, validation)
    references = data["references"]
    tasks = (*tuning.tasks, *validation.tasks)
    if not isinstance(references, dict) or set(references) != set(tasks):
        given = sorted(references) if isinstance(references, dict) else references
        raise ValueError(f"{path}: [references] must give one reference return per task {sorted(tasks)}, got {given!r}")
    for task, value in references.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value == 0:
            raise ValueError(f"{path}: [references] {task} must be a finite non-zero number, got {value!r}")
    contenders = data["contenders"]
    if not isinstance(contenders, list) or not contenders:
        raise ValueError(f"{path}: give at least one [[contenders]]")
    parsed = tuple(_contender(entry, path, tasks) for entry in contenders)
    names = [contender.name for contender in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: contender names repeat: {names}")
    selection = data.get("selection", "best")
    if selection not in SELECTION_RULES:
        raise ValueError(f"{path}: selection must be one of {sorted(SELECTION_RULES)}, got {selection!r}")
    if selection == "best_if_ci_clear_of_default":
        lacking = [contender.name for contender in parsed if contender.defaults is None]
        if lacking:
            raise ValueError(f"{path}: selection {selection!r} needs a default for every searched binding; contenders {lacking} lack one")
    pruner = data.get("pruner", "median")
    if pruner not in PRUNERS:
        raise ValueError(f"{path}: pruner must be one of {PRUNERS}, got {pruner!r}")
    confidence = data.get("confidence", DEFAULT_CONFIDENCE)
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(f"{path}: confidence must be a float in (0, 1), got {confidence!r}")
    sampler_seed = data.get("sampler_seed", 0)
    if not isinstance(sampler_seed, int) or isinstance(sampler_seed, bool) or sampler_seed < 0:
        raise ValueError(f"{path}: sampler_seed must be a non-negative integer, got {sampler_seed!r}")
    out = Path(data["out"])
    storage = data.get("storage", f"sqlite:///{out}.optuna.db")
    if not isinstance(storage, str) or "://" not in storage:
        raise ValueError(f"{path}: storage must be a database URL (e.g. sqlite:///tune.db, postgresql://...), got {storage!r}")
    study = data.get("study", path.stem)
    if not isinstance(study, str) or not study:
        raise ValueError(f"{path}: study must be a non-empty string, got {study!r}")
    return TuneSpec(
        path=path,
        text=text,
        out=out,
        study=study,
        storage=storage,
        trials=_positive(path, "trials", data["trials"]),
        iterations=_positive(path, "iterations", data["iterations"]) if "iterations" in data else None,
        env_steps=_positive(path, "env_steps", data["env_steps"]) if "env_steps" in data else None,
        pruning_points=_positive(path, "pruning_points", data.get("pruning_points", 1)),
        pruner=pruner,
        pruner_startup_trials=_positive(path, "pruner_startup_trials", data.get("pruner_startup_trials", 5)),
        selection=selection,
        sampler_seed=sampler_seed,
        sampler_startup_trials=_positive(path, "sampler_startup_trials", data.get("sampler_startup_trials", 5)),
        threads_per_run=_positive(path, "threads_per_run", data.get("threads_per_run", 1)),
        last_k=_positive(path, "last_k", data.get("last_k", DEFAULT_LAST_K)),
        bindings=_string_list(path, "bindings", data.get("bindings", [])),
        heartbeat_seconds=_positive(path, "heartbeat_seconds", data.get("heartbeat_seconds", 30)),
        bootstrap_resamples=_positive(path, "bootstrap_resamples", data.get("bootstrap_resamples", DEFAULT_RESAMPLES)),
        confidence=confidence,
        references={task: float(references[task]) for task in tasks},
        tuning=tuning,
        validation=validation,
        contenders=parsed,
    )


def load_tune_spec(path: str | Path) -> TuneSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tuning spec {str(path)!r} not found")
    return parse_tune_spec(path.read_text(), path)
