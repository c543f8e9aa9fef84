"""A wrong-typed gin binding fails at parse time in one line naming the binding, the type and where it was bound."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Optional

import gin
import pytest

from genpo.builders import GIN_DIR, parse_config
from genpo.cli import main

# "gin binding <name> = <value> (<where>): expected <type>, got <type>"
MESSAGE = re.compile(
    r"^gin binding (?P<name>\S+) = (?P<value>.+) \((?P<where>[^()]+)\): expected (?P<expected>.+), got (?P<got>.+)$"
)
COMMITTED = sorted(
    path.relative_to(GIN_DIR).as_posix()
    for folder in ("tasks", "ablations", "policies", "algorithms", "isaaclab")
    for path in (GIN_DIR / folder).glob("*.gin")
)


def type_error(config_files=("tasks/pendulum.gin",), bindings=()) -> re.Match:
    """The parsed one-line message of the ValueError that parse_config raises."""
    with pytest.raises(ValueError) as raised:
        parse_config(list(config_files), list(bindings))
    message = str(raised.value)
    assert "\n" not in message, message
    match = MESSAGE.match(message)
    assert match, message
    return match


def file_location(where: str) -> tuple[Path, int]:
    path, line = where.rsplit(":", 1)
    return Path(path).resolve(), int(line)


@gin.configurable(module="test_binding_types")
def probe(
    choice: Literal["k1", "k3"] = "k1",
    pair: tuple[int, float] = (1, 1.0),
    sizes: tuple[int, ...] = (),
    table: dict[str, int] | None = None,
    maybe: Optional[int] = None,  # noqa: UP045  (the typing spelling is checked too)
    either: int | str = 0,
    numbers: Sequence[float] = (),
    function: Callable = print,
    anything=None,
) -> None:
    """A configurable with one parameter per kind of annotation the check understands."""


# --------------------------------------------------------------------------- the message


def test_wrong_type_in_a_gin_binding_names_binding_value_type_and_origin():
    match = type_error(bindings=["coupling.genpo.p = 'abc'"])
    assert match["name"] == "coupling.genpo.p"
    assert match["value"] == "'abc'"
    assert match["where"] == "--gin binding"
    assert (match["expected"], match["got"]) == ("float", "str")


def test_wrong_type_in_a_gin_file_names_the_file_and_line(tmp_path):
    config = tmp_path / "bad.gin"
    config.write_text(
        "include 'tasks/pendulum.gin'\n\n# a string where an int belongs\ngenpo.trainer.steps_per_env = 'x'\n"
    )
    match = type_error([config])
    assert match["name"] == "genpo.trainer.steps_per_env"
    assert match["value"] == "'x'"
    assert file_location(match["where"]) == (config.resolve(), 4)
    assert (match["expected"], match["got"]) == ("int", "str")


def test_wrong_type_in_an_included_file_names_the_included_file(tmp_path):
    inner = tmp_path / "inner.gin"
    inner.write_text("include 'tasks/pendulum.gin'\neval/genpo.build_env.num_envs = 8.5\n")
    outer = tmp_path / "outer.gin"
    outer.write_text(f"include '{inner}'\ngenpo.run.seed = 3\n")
    match = type_error([outer])
    assert match["name"] == "eval/genpo.build_env.num_envs"
    assert file_location(match["where"]) == (inner.resolve(), 2)
    assert (match["expected"], match["got"]) == ("int", "float")


def test_the_error_names_the_binding_that_won(tmp_path):
    config = tmp_path / "override.gin"
    config.write_text("include 'tasks/pendulum.gin'\ncoupling.genpo.p = 'abc'\n")
    parse_config([config], ["coupling.genpo.p = 0.5"])  # the command line overrides the wrong file value
    gin.clear_config()
    match = type_error(bindings=["genpo.run.seed = 1", "genpo.run.seed = 'one'"])
    assert (match["name"], match["where"]) == ("genpo.run.seed", "--gin binding")


def test_several_wrong_bindings_are_counted_in_the_one_line():
    with pytest.raises(ValueError, match=r"\(and 1 more wrong-typed binding\(s\)\)$"):
        parse_config(["tasks/pendulum.gin"], ["coupling.genpo.p = 'abc'", "genpo.run.seed = 'x'"])


def test_cli_train_prints_one_error_line_and_exits_2(tmp_path, capsys):
    bad = "coupling.genpo.p = 'abc'"
    code = main(["train", "tasks/pendulum.gin", "--out", str(tmp_path / "run"), "--gin", bad, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "coupling.genpo.p" in line]
    assert len(lines) == 1, err
    assert "expected float, got str" in lines[0]
    assert "--gin binding" in lines[0]
    assert not (tmp_path / "run").exists()  # failed before anything was built


# --------------------------------------------------------------------------- no false positives


@pytest.mark.parametrize("config", COMMITTED)
def test_every_committed_gin_file_parses(config):
    parse_config([config])


@pytest.mark.parametrize(
    "binding",
    [
        "genpo.trainer.max_grad_norm = None",  # float | None
        "genpo.trainer.critic_learning_rate = 3e-4",
        "genpo.run.num_threads = None",  # int | str | None
        "coupling.genpo.p = 1",  # an int is a float
        "loss.ppo.entropy_coefficient = 0",
        "velocity_network.mlp.hidden_sizes = (32,)",  # Sequence[int]
        "velocity_network.mlp.hidden_sizes = [32, 32]",
        "actor.dppo.sigma = (0.1, 1)",  # float | Sequence[float]
        "actor.dppo.sigma = 0.2",
        "genpo.build_env.device = 'cuda:0'",  # str | torch.device
        "genpo.build_env.headless = False",  # **options: not annotated
        "genpo.trainer.loss = 'not checked'",  # Callable: not checked
        "genpo.trainer.advantage = @advantage.gae()",  # references are skipped
        "steps = 16\ngenpo.trainer.steps_per_env = %steps",  # macros are resolved
        "genpo.run.iterations = %gin.REQUIRED",
    ],
)
def test_well_typed_bindings_pass(binding):
    parse_config(["tasks/pendulum.gin"], binding.split("\n"))


# --------------------------------------------------------------------------- what is checked


@pytest.mark.parametrize(
    "binding, expected, got",
    [
        ("genpo.trainer.max_grad_norm = 'big'", "float | None", "str"),
        ("genpo.run.num_threads = 2.0", "int | str | None", "float"),
        ("genpo.run.iterations = True", "int | None", "bool"),  # a bool is no int here
        ("readout.linear.alpha = False", "float", "bool"),
        ("advantage.gae.normalize = 1", "bool", "int"),
        ("velocity_network.mlp.hidden_sizes = 64", "Sequence[int]", "int"),
        ("velocity_network.mlp.hidden_sizes = (64, 'a')", "Sequence[int]", "tuple"),
        ("actor.dppo.sigma = 'a'", "float | Sequence[float]", "str"),
        ("genpo.run.device = None", "str", "None"),
        ("name = 'x'\ngenpo.run.seed = %name", "int", "str (%name = 'x')"),
    ],
)
def test_wrong_types_of_the_code_base(binding, expected, got):
    match = type_error(bindings=binding.split("\n"))
    assert (match["expected"], match["got"]) == (expected, got)


@pytest.mark.parametrize(
    "binding, expected",
    [
        ("choice = 'k2'", "Literal['k1', 'k3']"),
        ("pair = (1, 2.0, 3)", "tuple[int, float]"),
        ("pair = (1.5, 2)", "tuple[int, float]"),
        ("sizes = (1, None)", "tuple[int, ...]"),
        ("table = {'a': 'b'}", "dict[str, int] | None"),
        ("table = [1]", "dict[str, int] | None"),
        ("maybe = 'x'", "int | None"),
        ("either = None", "int | str"),
        ("numbers = (1.0, 'x')", "Sequence[float]"),
    ],
)
def test_wrong_types_of_other_annotations(binding, expected):
    match = type_error((), [f"test_binding_types.probe.{binding}"])
    assert match["expected"] == expected


@pytest.mark.parametrize(
    "binding",
    [
        "choice = 'k3'",
        "pair = (1, 2)",  # an int is a float
        "pair = [1, 2.0]",  # gin's list for a tuple
        "sizes = (1, 2, 3)",
        "table = {'a': 1}",
        "table = None",
        "maybe = 3",
        "either = 'x'",
        "numbers = [1, 2.5]",
        "function = 'anything'",
        "anything = (1, 'x')",  # not annotated
    ],
)
def test_right_types_of_other_annotations(binding):
    parse_config((), [f"test_binding_types.probe.{binding}"])
