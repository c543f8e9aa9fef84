"""Every ablation file in gin/ablations/ parses, stays small, takes effect and trains one iteration.

Parametrised over a glob, so files added later (e.g. ``scheme_*.gin``) are covered without edits here.
The effect check is derived from each binding, with no table of keys: ``<kind>.<name>.<param> = value``
must reach every instance of the registered class ``<kind>.<name>`` built for the run (found by walking
the trainer), as its attribute ``<param>``; a builder configurable's (``genpo.trainer.max_grad_norm``,
``genpo.policy.actor``) as the attribute ``<param>`` of the trainer, its settings, the run settings or the
env. A reference (``@kind.name`` / ``@kind.name()``) must have built exactly that registered class; a
macro (``NAME = value``) is checked through every parameter bound to ``%NAME``. A binding the test
itself overrides (the tiny run's network sizes) is exempt.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator
from pathlib import Path

import gin
import pytest
import torch
from conftest import TINY_BINDINGS
from gin import config as gin_config
from torch import nn

from genpo import registry
from genpo.builders.config import GIN_DIR
from genpo.training.run_logger import read_metrics

ABLATIONS = sorted((GIN_DIR / "ablations").glob("*.gin"))
MAX_BINDINGS = 3
EXTRA = ("genpo.run.iterations = 1",)

BINDING = re.compile(r"^\s*([\w./]+)\s*=\s*(.+?)\s*$")
REFERENCE = re.compile(r"^@(\w+)\.(\w+)(\(\))?$")
MACRO = re.compile(r"^%(\w+)$")


def binding_lines(path: Path) -> list[str]:
    """The file's lines that are neither blank, a comment, nor an include/import."""
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith(("include ", "import ")):
            lines.append(stripped)
    return lines


def parse_value(text: str) -> object:
    """A binding's value: references become the registered class, ``%NAME`` the macro's parsed value."""
    reference = REFERENCE.match(text)
    if reference:
        kind, name, _ = reference.groups()
        return registry.get(kind, name)
    macro = MACRO.match(text)
    if macro:
        return gin.query_parameter(f"{macro.group(1)}/gin.macro.value")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parsed_bindings(path: Path) -> dict[str, object]:
    """``key -> value`` of the file's one-line bindings (read after the config is parsed, for macros)."""
    bindings = {}
    for line in binding_lines(path):
        match = BINDING.match(line)
        if match is not None:
            key, text = match.groups()
            bindings[key] = parse_value(text)
    return bindings


def overridden_keys() -> set[str]:
    """Keys the test's own bindings set after the ablation file (they win, so the file's value is not built)."""
    return {BINDING.match(line).group(1) for line in (*TINY_BINDINGS, *EXTRA)}


def macro_uses(macro: str) -> list[str]:
    """The ``configurable.param`` keys gin has bound to ``%macro``."""
    uses = []
    for (scope, selector), parameters in gin_config._CONFIG.items():  # noqa: SLF001
        for parameter, value in parameters.items():
            if isinstance(value, gin_config.ConfigurableReference) and value.scoped_selector == f"{macro}/gin.macro":
                uses.append(f"{scope + '/' if scope else ''}{selector}.{parameter}")
    return sorted(uses)


def reachable(*roots: object) -> Iterator[object]:
    """Every object reachable from ``roots`` through the attributes of modules and genpo objects."""
    seen, stack = set(), list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, torch.Tensor | type):
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.values())
            continue
        if isinstance(item, list | tuple | set):
            stack.extend(item)
            continue
        yield item
        if isinstance(item, nn.Module) or type(item).__module__.startswith("genpo."):
            stack.extend(getattr(item, "__dict__", {}).values())
            stack.extend(getattr(item, attribute) for attribute in getattr(type(item), "__slots__", ()) if hasattr(item, attribute))


def built_values(key: str, trainer, run_settings) -> list[object]:
    """What the run built for ``key``: the attribute ``param`` of every object the configurable made."""
    assert "/" not in key, f"{key}: a scoped binding is not built by the training run; no effect to check"
    configurable, _, parameter = key.rpartition(".")
    kind, _, name = configurable.partition(".")
    if kind in registry.kinds() and name in registry.names(kind):
        cls = registry.get(kind, name)
        owners = [item for item in reachable(trainer) if type(item) is cls]
        assert owners, f"{key}: the run built no {configurable} ({cls.__qualname__}), so the binding has no effect"
    else:  # a builder configurable (genpo.trainer, genpo.policy, genpo.run, ...): it hands its values on
        candidates = [trainer, trainer.settings, run_settings, trainer.env]
        owners = [next((item for item in candidates if hasattr(item, parameter)), None)]
        assert owners[0] is not None, f"{key}: neither the trainer, its settings, the run settings nor the env has {parameter!r}"
    missing = [type(owner).__qualname__ for owner in owners if not hasattr(owner, parameter)]
    assert not missing, f"{key}: {', '.join(missing)} keeps no attribute {parameter!r} to check the binding against"
    return [getattr(owner, parameter) for owner in owners]


def check_effect(key: str, expected: object, built: object) -> None:
    if isinstance(expected, type):
        built_class = built if isinstance(built, type) else type(built)
        assert built_class is expected, f"{key}: built {built_class.__name__}, file says {expected.__name__}"
    elif isinstance(expected, float | int) and not isinstance(expected, bool):
        assert built == pytest.approx(expected), f"{key}: built {built!r}, file says {expected!r}"
    elif isinstance(expected, tuple | list):
        assert tuple(built) == tuple(expected), f"{key}: built {built!r}, file says {expected!r}"
    else:
        assert built == expected, f"{key}: built {built!r}, file says {expected!r}"


def expected_effects(path: Path) -> dict[str, object]:
    """``configurable.param -> value`` the run must show: the file's bindings, macros expanded to their
    uses, less what the test overrides."""
    effects = {}
    for key, value in parsed_bindings(path).items():
        if "." not in key:  # a macro definition: it takes effect through the parameters bound to it
            uses = macro_uses(key)
            assert uses, f"{path.name}: macro {key} is bound to no parameter"
            effects.update(dict.fromkeys(uses, value))
        else:
            effects[key] = value
    return {key: value for key, value in effects.items() if key not in overridden_keys()}


def test_ablation_folder_has_the_paper_axes():
    names = {path.name for path in ABLATIONS}
    for stem in ("compression_0", "p_0.9", "num_steps_1", "alpha_0.5", "entropy_off_fixed_lr", "time_embedding_raw"):
        assert f"{stem}.gin" in names


@pytest.mark.parametrize("path", ABLATIONS, ids=[path.stem for path in ABLATIONS])
def test_ablation_is_small_and_includes_a_base(path):
    lines = binding_lines(path)
    assert 1 <= len(lines) <= MAX_BINDINGS, f"{path.name}: {len(lines)} bindings besides includes (at most {MAX_BINDINGS})"
    assert re.search(r"^include '[^']+\.gin'", path.read_text(), re.MULTILINE), f"{path.name} includes no base config"


@pytest.mark.parametrize("path", ABLATIONS, ids=[path.stem for path in ABLATIONS])
def test_ablation_takes_effect_and_trains_one_iteration(path, tmp_path, make_tiny_experiment):
    trainer, settings = make_tiny_experiment(tmp_path / "run", config=path, extra=EXTRA)
    bindings = parsed_bindings(path)
    effects = expected_effects(path)
    assert set(bindings) - set(effects) <= overridden_keys() | {key for key in bindings if "." not in key}
    for key, expected in effects.items():
        for built in built_values(key, trainer, settings):
            check_effect(key, expected, built)

    if bindings.get("loss.ppo.compression_coefficient") == 0:
        assert trainer.loss.compression is None
    summary = trainer.train(1, quiet=True)
    assert summary["iterations"] == 1
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    losses = {key: value for key, value in row.items() if key.endswith("_loss") or key.startswith("loss_")}
    assert {"policy_loss", "value_loss"} <= set(losses)
    assert all(math.isfinite(value) for value in losses.values()), losses
    if bindings.get("loss.ppo.entropy_coefficient") == 0:
        assert "loss_entropy" not in row
    gin.clear_config()


def test_built_values_reads_the_object_each_binding_configured(tmp_path, make_tiny_experiment):
    """The effect check reads the built objects a binding configured, e.g. the coupling's p and the
    flow's coupling, and refuses a binding whose configurable the run never built."""
    trainer, settings = make_tiny_experiment(tmp_path / "run", extra=EXTRA)
    assert built_values("coupling.genpo.p", trainer, settings) == [trainer.actor.flow.coupling.p]
    assert built_values("flow.dummy_action.coupling", trainer, settings) == [trainer.actor.flow.coupling]
    assert built_values("loss.ppo.compression", trainer, settings) == [trainer.loss.compression]
    assert built_values("genpo.trainer.max_grad_norm", trainer, settings) == [trainer.settings.max_grad_norm]
    assert built_values("loss.ppo.kl_estimator", trainer, settings) == [trainer.loss.kl_estimator]
    assert built_values("genpo.policy.actor", trainer, settings) == [trainer.actor]
    with pytest.raises(AssertionError, match="built no coupling.affine"):
        built_values("coupling.affine.p", trainer, settings)
    with pytest.raises(AssertionError, match=r"built LeapfrogCoupling, file says AffineCoupling"):
        check_effect("flow.dummy_action.coupling", registry.get("coupling", "affine"), registry.get("coupling", "leapfrog")(0.9))
