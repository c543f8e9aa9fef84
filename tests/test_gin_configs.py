"""The committed gin configs: values that several bindings share agree, macros are declared where used, a
missing macro fails loudly, and the configs ship inside the package. Parse only (no training)."""

from __future__ import annotations

import fnmatch
import inspect
import re
import tomllib
from pathlib import Path

import gin
import pytest

import genpo

from genpo import registry
from genpo.builders.config import GIN_DIR, parse_config, query_parameter
from genpo.builders.experiment import build_trainer
from genpo.cli import main

INCLUDE = re.compile(r"^include '([^']+)'", re.MULTILINE)
MACRO_USE = re.compile(r"%([A-Za-z_][\w.]*)")
MACRO_DEFINITION = re.compile(r"^([A-Za-z_]\w*)\s*=\s*(.+?)\s*$", re.MULTILINE)  # no dot: not a binding


def include_closure(relative: str) -> list[str]:
    """``relative`` and every file it includes, transitively (paths relative to GIN_DIR)."""
    seen: list[str] = []
    pending = [relative]
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.append(path)
            pending.extend(INCLUDE.findall((GIN_DIR / path).read_text()))
    return seen


def runnable_configs() -> list[str]:
    """Every task, ablation and IsaacLab file that is a complete run (names its env); the shared bases
    (tasks/locomotion.gin, isaaclab/base.gin) are checked through the files that include them."""
    configs = []
    for folder in ("tasks", "ablations", "isaaclab"):
        for path in sorted((GIN_DIR / folder).glob("*.gin")):
            relative = path.relative_to(GIN_DIR).as_posix()
            if any("genpo.build_env.name" in (GIN_DIR / f).read_text() for f in include_closure(relative)):
                configs.append(relative)
    return configs


RUNNABLE = runnable_configs()
CONSUMERS = sorted(path.relative_to(GIN_DIR).as_posix() for folder in ("policies", "algorithms") for path in (GIN_DIR / folder).glob("*.gin"))


# ------------------------------------------------------------------------------ effective values
def _configurable(selector: str):
    return gin.config._REGISTRY.get_match(selector)  # noqa: SLF001


def effective(selector: str, parameter: str, scope: str = ""):
    """The value ``selector``'s ``parameter`` gets: the bound one (macros resolved) or the default."""
    configurable = _configurable(selector)
    if parameter in gin.config._CONFIG.get((scope, configurable.selector), {}):  # noqa: SLF001
        return query_parameter(f"{scope + '/' if scope else ''}{selector}.{parameter}")
    default = inspect.signature(configurable.wrapped).parameters[parameter].default
    return None if default is inspect.Parameter.empty or default is gin.REQUIRED else default


def selected(selector: str, parameter: str) -> str | None:
    """The registered component (``kind.name``) that ``selector.parameter`` selects."""
    value = effective(selector, parameter)
    if isinstance(value, gin.config.ConfigurableReference):
        return value.configurable.selector
    for kind, name, cls in registry.items():
        if cls is value:
            return f"{kind}.{name}"
    return None


def parameters(selector: str | None) -> set[str]:
    return set(inspect.signature(_configurable(selector).wrapped).parameters) if selector else set()


def hidden_sizes_of_policy() -> tuple[str, object]:
    """(where, hidden sizes) of the selected actor's own network (its MLP or its velocity network)."""
    actor = selected("genpo.policy", "actor")
    if "flow" in parameters(actor):  # GenPO: the flow owns the velocity network
        actor = selected(actor, "flow")
    if "velocity_network" in parameters(actor):
        actor = selected(actor, "velocity_network")
    return actor, tuple(effective(actor, "hidden_sizes"))


def disagreements() -> list[str]:
    """Every pair of bindings that must agree in the parsed config but does not, one line each."""
    problems = []
    # One discount for GAE and for the return-std reward scaler (GAMMA).
    advantage, scaler = selected("genpo.trainer", "advantage"), selected("genpo.trainer", "reward_scaler")
    if "gamma" in parameters(advantage) and "gamma" in parameters(scaler):
        gae_gamma, scaler_gamma = effective(advantage, "gamma"), effective(scaler, "gamma")
        if gae_gamma != scaler_gamma:
            problems.append(f"{advantage}.gamma = {gae_gamma} but {scaler}.gamma = {scaler_gamma} (define GAMMA once)")
    # One set of hidden sizes for the actor's network and the critic (HIDDEN_SIZES).
    network, policy_sizes = hidden_sizes_of_policy()
    critic = selected("genpo.value_function", "critic")
    critic_sizes = tuple(effective(critic, "hidden_sizes"))
    if policy_sizes != critic_sizes:
        problems.append(f"{network}.hidden_sizes = {policy_sizes} but {critic}.hidden_sizes = {critic_sizes} (define HIDDEN_SIZES once)")
    # The evaluation env is the training env (the eval scope may only change how many envs run).
    eval_name = effective("genpo.build_env", "name", scope="eval")
    if eval_name is not None and eval_name != effective("genpo.build_env", "name"):
        problems.append(f"eval/genpo.build_env.name = {eval_name!r} but genpo.build_env.name = {effective('genpo.build_env', 'name')!r}")
    return problems


@pytest.mark.parametrize("config", RUNNABLE)
def test_bindings_that_must_agree_do(config):
    """GAE gamma = reward-scaler gamma, actor network sizes = critic sizes, eval env = training env."""
    parse_config([config])
    assert disagreements() == [], config


def test_the_agreement_check_sees_a_disagreement():
    parse_config(["tasks/pendulum.gin"], ["advantage.gae.gamma = 0.98", "critic.mlp.hidden_sizes = (32,)"])
    problems = disagreements()
    assert len(problems) == 2, problems
    assert problems[0].startswith("advantage.gae.gamma = 0.98 but reward_scaler.return_std.gamma = 0.99")
    assert problems[1].startswith("velocity_network.mlp.hidden_sizes = (64, 64) but critic.mlp.hidden_sizes = (32,)")


def test_every_folder_has_runnable_configs():
    folders = {config.split("/")[0] for config in RUNNABLE}
    assert folders == {"tasks", "ablations", "isaaclab"}
    assert "tasks/locomotion.gin" not in RUNNABLE and "isaaclab/base.gin" not in RUNNABLE


def test_franka_lift_uses_its_gamma_for_gae_and_the_reward_scaler():
    parse_config(["isaaclab/franka_lift.gin"])
    assert effective("advantage.gae", "gamma") == effective("reward_scaler.return_std", "gamma") == 0.98


# ------------------------------------------------------------------------------ macro declarations
@pytest.mark.parametrize("path", CONSUMERS)
def test_policy_and_algorithm_files_declare_the_macros_they_use_and_define_none(path):
    """Each macro a policy or algorithm file uses (itself or through its includes) is named in its header
    comment, and the file defines no macro (at most ``NAME = %gin.REQUIRED``): the task file does."""
    text = (GIN_DIR / path).read_text()
    header = "\n".join(line for line in text.split("\n\n")[0].splitlines() if line.startswith("#"))
    used = {name for f in include_closure(path) for name in MACRO_USE.findall((GIN_DIR / f).read_text())}
    undeclared = sorted(name for name in used if not name.startswith("gin.") and not re.search(rf"\b{name}\b", header))
    assert undeclared == [], f"{path}: header does not name {undeclared}"
    for name, value in MACRO_DEFINITION.findall(text):
        assert value == "%gin.REQUIRED", f"{path} defines {name} = {value}; the task file should"


# ------------------------------------------------------------------------------ missing macros fail loudly
TINY = [
    "genpo.trainer.steps_per_env = 8",
    "genpo.trainer.minibatches = 2",
    "HIDDEN_SIZES = (8,)",
    "time_embedding.sinusoidal.out_dim = 4",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
]


def build_on_pendulum(tmp_path):
    env = registry.get("env", "pendulum")(4, seed=0, device="cpu")
    return build_trainer(env, tmp_path / "run")


def test_a_required_macro_left_undefined_fails_naming_it(tmp_path):
    parse_config(["policies/genpo.gin", "algorithms/ppo.gin"], TINY)
    with pytest.raises(ValueError, match=r"^gin macro GAMMA is used but not defined"):
        build_on_pendulum(tmp_path)


def test_a_macro_defined_before_the_include_that_requires_it_fails_rather_than_being_ignored(tmp_path):
    config = tmp_path / "early.gin"
    config.write_text("GAMMA = 0.9\ninclude 'policies/genpo.gin'\ninclude 'algorithms/ppo.gin'\n")
    parse_config([config], TINY)
    with pytest.raises(ValueError, match=r"^gin macro GAMMA is used but not defined"):
        build_on_pendulum(tmp_path)


def test_macros_resolve_to_their_values(tmp_path):
    parse_config(["policies/genpo.gin", "algorithms/ppo.gin"], [*TINY, "GAMMA = 0.97"])
    assert query_parameter("advantage.gae.gamma") == query_parameter("reward_scaler.return_std.gamma") == 0.97
    trainer = build_on_pendulum(tmp_path)
    assert trainer.reward_scaler.gamma == 0.97
    assert float(trainer.advantage.estimator.gamma) == pytest.approx(0.97)


@pytest.mark.parametrize(
    ("name", "off"), [("reward_scaler", "@reward_scaler.none"), ("observation_normalizer", "@normalizer.identity")]
)
def test_a_trainer_component_bound_to_none_fails_naming_the_component_that_turns_it_off(tmp_path, name, off):
    parse_config(["policies/genpo.gin", "algorithms/ppo.gin"], [*TINY, "GAMMA = 0.97", f"genpo.trainer.{name} = None"])
    with pytest.raises(ValueError, match=rf"^genpo.trainer.{name} = None: bind {off} to turn it off"):
        build_on_pendulum(tmp_path)


def test_cli_names_a_missing_macro_in_one_line(tmp_path, capsys):
    config = tmp_path / "no_gamma.gin"
    config.write_text(
        "include 'policies/genpo.gin'\ninclude 'algorithms/ppo.gin'\n"
        "HIDDEN_SIZES = (8,)\ngenpo.build_env.name = 'pendulum'\ngenpo.build_env.num_envs = 4\n"
        "genpo.trainer.steps_per_env = 8\ngenpo.trainer.minibatches = 2\ngenpo.run.iterations = 1\n"
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("genpo train: error: gin macro GAMMA is used but not defined"), error
    assert len(error.splitlines()) == 1, error
    assert not (tmp_path / "run" / "metrics.csv").exists()


# ------------------------------------------------------------------------------ configs ship with the package
REPOSITORY = Path(__file__).resolve().parents[1]


def test_configs_live_in_the_package_and_gin_at_the_root_links_to_them():
    package = Path(genpo.__file__).resolve().parent
    assert GIN_DIR == package / "gin"
    assert (REPOSITORY / "gin").is_symlink()
    assert (REPOSITORY / "gin").resolve() == GIN_DIR
    assert (REPOSITORY / "gin" / "tasks" / "pendulum.gin").is_file()


def test_every_config_file_is_declared_as_package_data():
    """A non-editable install ships what pyproject.toml's package-data globs match; each file under
    genpo/gin/ must be matched (setuptools globs are relative to the package folder, ``**`` recursive)."""
    setuptools = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = GIN_DIR.parent
    patterns = setuptools["package-data"]["genpo"]
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    files = {path for path in GIN_DIR.rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    assert len(files) > 50
    assert sorted(str(path.relative_to(package)) for path in files - shipped) == []
    assert any(fnmatch.fnmatch("genpo", pattern) for pattern in setuptools["packages"]["find"]["include"])


def test_a_config_resolves_by_name_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse_config(["tasks/pendulum.gin"])
    assert query_parameter("genpo.build_env.name") == "pendulum"
