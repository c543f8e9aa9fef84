"""The sweep spec: its schema (attrs classes validated on construction), TOML parsing, grid expansion,
and the plan of jobs with each variant's iteration budget.

A spec (see ``docs/sweeps.md``)::

    out = "runs/sweeps/pendulum_schemes"   # relative to the working directory
    seeds = [0, 1, 2]
    iterations = 60                         # or env_steps = 491520 (rounded up to whole iterations)
    threads_per_run = 1                     # torch/OpenMP threads per run (default 1)
    last_k = 3                              # final return = mean of the last k logged returns
    report_env_steps = [256000]             # also report the final return cut at these env steps ...
    report_train_seconds = [120.0]          # ... and at these training seconds (optional)
    evaluation_episodes = 16                # evaluate each finished run's policy (optional) ...
    evaluation_noise = "zero"               # ... under this noise (zero: deterministic; fixed, random)
    bindings = []                           # extra gin bindings for every run (optional)

    [[variants]]
    name = "genpo"
    config = "tasks/pendulum.gin"           # a task config or an ablation file
    bindings = []                           # optional
    trainer = "genpo"                       # optional; "rsl_rl" for rsl_rl's runner on a Gaussian config
    env_steps = 1000000                     # optional: this variant's own budget (or iterations)

    [[grid]]                                # optional, repeatable: the cartesian product of values
    config = "tasks/pendulum.gin"
    prefix = "grid"                         # optional name prefix
    [grid.values]
    "coupling.genpo.p" = [0.7, 0.9]
    "flow.dummy_action.num_steps" = [2, 5]

Every error names the spec file and the offending key.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import attrs

from genpo.builders.config import resolve_config_path
from genpo.experiments.statistics import DEFAULT_CONFIDENCE, DEFAULT_LAST_K, DEFAULT_RESAMPLES
from genpo.training.evaluation import NOISE_MODES
from genpo.validation import check_positive_int

TRAINERS = ("genpo", "rsl_rl")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")
_SPEC_KEYS = {
    "out", "seeds", "iterations", "env_steps", "threads_per_run", "last_k", "bindings", "variants", "grid",
    "bootstrap_resamples", "confidence", "report_env_steps", "report_train_seconds", "evaluation_episodes",
    "evaluation_noise",
}  # fmt: skip
_VARIANT_KEYS = {"name", "config", "bindings", "trainer", "iterations", "env_steps"}
_GRID_KEYS = {"config", "values", "prefix", "bindings"}


def _tuple(value: object) -> object:
    """TOML lists as tuples (anything else is left for the validators to reject)."""
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen
class Variant:
    name: str
    config: Path
    bindings: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    trainer: str = "genpo"  # "rsl_rl": rsl_rl's OnPolicyRunner on the (Gaussian) config; see genpo.baselines.rsl_rl
    iterations: int | None = None  # the variant's own budget instead of the spec's (e.g. a cheap baseline at 2B)
    env_steps: int | None = None

    @property
    def has_own_budget(self) -> bool:
        return self.iterations is not None or self.env_steps is not None


# ---------------------------------------------------------------------- validators naming the spec file
def _spec_int(spec: SweepSpec, attribute: attrs.Attribute, value: object) -> None:
    """A positive integer (or None where the field allows it), named after the spec file."""
    if value is not None:
        check_positive_int(str(spec.path), attribute.name, value)


def _seeds(spec: SweepSpec, attribute: attrs.Attribute, seeds: object) -> None:
    if not isinstance(seeds, tuple) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        shown = list(seeds) if isinstance(seeds, tuple) else seeds
        raise ValueError(f"{spec.path}: seeds must be a non-empty list of integers, got {shown!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{spec.path}: seeds repeat: {list(seeds)!r}")


def _one_budget(spec: SweepSpec, attribute: attrs.Attribute, value: object) -> None:
    if (spec.iterations is None) == (spec.env_steps is None):
        raise ValueError(f"{spec.path}: give exactly one budget, 'iterations' or 'env_steps'")


def _variants(spec: SweepSpec, attribute: attrs.Attribute, variants: tuple[Variant, ...]) -> None:
    if not variants:
        raise ValueError(f"{spec.path}: no variants (give [[variants]] and/or [grid])")
    for variant in variants:
        if variant.iterations is not None and variant.env_steps is not None:
            raise ValueError(f"{spec.path}: variant {variant.name!r}: give at most one budget, 'iterations' or 'env_steps'")
        for key in ("iterations", "env_steps"):
            if getattr(variant, key) is not None:
                check_positive_int(f"{spec.path}: variant {variant.name!r}", key, getattr(variant, key))
        if variant.trainer not in TRAINERS:
            raise ValueError(
                f"{spec.path}: variant {variant.name!r}: trainer must be one of {TRAINERS}, got {variant.trainer!r}"
            )
    names = [variant.name for variant in variants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{spec.path}: variant names repeat: {duplicates}")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{spec.path}: variant name {name!r} is not a safe directory name ([A-Za-z0-9._=+,-])")


def _confidence(spec: SweepSpec, attribute: attrs.Attribute, confidence: object) -> None:
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(f"{spec.path}: confidence must be a float in (0, 1), got {confidence!r}")


def _noise(spec: SweepSpec, attribute: attrs.Attribute, noise: object) -> None:
    if noise not in NOISE_MODES:
        raise ValueError(f"{spec.path}: evaluation_noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")


def _budgets(spec: SweepSpec, attribute: attrs.Attribute, budgets: object) -> None:
    valid = isinstance(budgets, tuple) and all(
        isinstance(budget, int | float) and not isinstance(budget, bool) and math.isfinite(budget) and budget > 0
        for budget in budgets
    )
    if not valid:
        shown = list(budgets) if isinstance(budgets, tuple) else budgets
        raise ValueError(f"{spec.path}: {attribute.name} must be a list of positive numbers, got {shown!r}")


@attrs.frozen(kw_only=True)
class SweepSpec:
    path: Path = attrs.field(converter=Path)
    text: str
    out: Path = attrs.field(converter=Path)
    seeds: tuple[int, ...] = attrs.field(converter=_tuple, validator=_seeds)
    iterations: int | None = attrs.field(default=None, validator=_spec_int)
    env_steps: int | None = attrs.field(default=None, validator=[_spec_int, _one_budget])
    variants: tuple[Variant, ...] = attrs.field(converter=tuple, validator=_variants)
    threads_per_run: int = attrs.field(default=1, validator=_spec_int)
    last_k: int = attrs.field(default=DEFAULT_LAST_K, validator=_spec_int)
    bindings: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    bootstrap_resamples: int = attrs.field(default=DEFAULT_RESAMPLES, validator=_spec_int)
    confidence: float = attrs.field(default=DEFAULT_CONFIDENCE, validator=_confidence)
    report_env_steps: tuple[float, ...] = attrs.field(default=(), converter=_tuple, validator=_budgets)
    report_train_seconds: tuple[float, ...] = attrs.field(default=(), converter=_tuple, validator=_budgets)
    evaluation_episodes: int | None = attrs.field(default=None, validator=_spec_int)
    evaluation_noise: str = attrs.field(default="zero", validator=_noise)


# ------------------------------------------------------------------------------------------- parsing
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
    unknown = set(grid) - _GRID_KEYS
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


def _variant(entry: dict, path: Path) -> Variant:
    if set(entry) - _VARIANT_KEYS or "name" not in entry or "config" not in entry:
        raise ValueError(
            f"{path}: each [[variants]] needs 'name' and 'config' (optional 'bindings', 'trainer', 'iterations', "
            f"'env_steps'), got {entry!r}"
        )
    return Variant(
        str(entry["name"]),
        resolve_config_path(entry["config"]),
        tuple(entry.get("bindings", ())),
        entry.get("trainer", "genpo"),
        entry.get("iterations"),
        entry.get("env_steps"),
    )


def load_spec_table(text: str, path: Path, known_keys: set[str]) -> dict:
    """The top-level table of a TOML spec; invalid TOML or a key outside ``known_keys`` fails naming
    the spec file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from error
    unknown = set(data) - known_keys
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known_keys)})")
    return data


def parse_spec(text: str, path: Path | str = "<spec>") -> SweepSpec:
    """A :class:`SweepSpec` from TOML text; every error names the spec file and the offending key."""
    path = Path(path)
    data = load_spec_table(text, path, _SPEC_KEYS)
    if "out" not in data:
        raise ValueError(f"{path}: 'out' (the sweep's output directory) is required")
    variants = [_variant(entry, path) for entry in data.get("variants", [])]
    grids = data.get("grid", [])
    for grid in [grids] if isinstance(grids, dict) else grids:
        variants.extend(expand_grid(grid, path))
    settings_keys = (
        "iterations", "env_steps", "threads_per_run", "last_k", "bootstrap_resamples", "confidence",
        "report_env_steps", "report_train_seconds", "evaluation_episodes", "evaluation_noise",
    )  # fmt: skip
    settings = {key: data[key] for key in settings_keys if key in data}
    return SweepSpec(
        path=path,
        text=text,
        out=data["out"],
        seeds=data.get("seeds", [0]),
        variants=variants,
        bindings=tuple(data.get("bindings", ())),
        **settings,
    )


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {str(path)!r} not found")
    return parse_spec(path.read_text(), path)


def select_variants(spec: SweepSpec, patterns: Sequence[str]) -> SweepSpec:
    """The spec with only the variants whose names match one of the shell-style ``patterns``
    (``genpo sweep SPEC --variants 'ant.*'``: run, evaluate, report or archive part of a study). A pattern
    that matches no variant is an error naming it, so a typo never reports an empty sweep."""
    if not patterns:
        return spec
    unmatched = [pattern for pattern in patterns if not any(fnmatchcase(variant.name, pattern) for variant in spec.variants)]
    if unmatched:
        names = ", ".join(variant.name for variant in spec.variants)
        raise ValueError(f"{spec.path}: --variants {', '.join(map(repr, unmatched))} matches no variant (the variants: {names})")
    chosen = [variant for variant in spec.variants if any(fnmatchcase(variant.name, pattern) for pattern in patterns)]
    return attrs.evolve(spec, variants=chosen)


# ---------------------------------------------------------------------------------- jobs and budget
@attrs.frozen
class Job:
    """One (variant, seed) run of a sweep."""

    variant: Variant
    seed: int
    iterations: int
    run_dir: Path
    bindings: tuple[str, ...]  # spec-level then variant bindings (the command adds seed/iterations/threads)
    threads: int

    @property
    def label(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"


def iterations_for(variant: Variant, spec: SweepSpec) -> int:
    """The iteration budget: the variant's own or else the spec's ``iterations``, or ``env_steps`` over
    (num_envs x steps_per_env) rounded up.

    The env-step budget reads the variant's bindings through gin's global config, cleared before and after.
    """
    iterations, env_steps = (variant.iterations, variant.env_steps) if variant.has_own_budget else (spec.iterations, spec.env_steps)
    if iterations is not None:
        return iterations
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
    return max(1, math.ceil(env_steps / per_iteration))


def plan(spec: SweepSpec) -> list[Job]:
    """Every (variant, seed) as a job, variants outer so that early results cover all seeds of one."""
    jobs = []
    for variant in spec.variants:
        iterations = iterations_for(variant, spec)
        for seed in spec.seeds:
            run_dir = spec.out / variant.name / f"seed{seed}"
            bindings = (*spec.bindings, *variant.bindings)
            jobs.append(Job(variant, seed, iterations, run_dir, bindings, spec.threads_per_run))
    return jobs
