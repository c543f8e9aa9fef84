"""docs/extending.md's worked examples are real code: each file block is dropped into its package and found
by the same discovery as ``import genpo``, then checked by the suites a library component gets.

- The scheme (``actor.tanh_gaussian``): its usage snippet runs (ratio == 1), its gin files train a tiny run.
- The coupling (``coupling.tanh_shift``): every test of test_couplings.py and test_actors.py parametrised
  from the registry runs on it, and its ablation file trains a tiny run with test_ablations.py's checks.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import gin
import pytest
import test_ablations
import test_actors
import test_couplings
from _pytest.mark.structures import ParameterSet
from conftest import TINY_BINDINGS, first_minibatch

from genpo import registry
from genpo.builders import new_experiment
from genpo.training.run_logger import read_metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ACTOR_FILE = "genpo/components/actors/tanh_gaussian.py"
POLICY = "gin/policies/tanh_gaussian.gin"
SCHEME = "gin/ablations/scheme_tanh_gaussian.gin"
COUPLING_FILE = "genpo/components/couplings/tanh_shift.py"
COUPLING_ABLATION = "gin/ablations/coupling_tanh_shift.gin"


def code_blocks(language: str) -> list[str]:
    return [body for fence_language, body in FENCE.findall(DOC.read_text()) if fence_language == language]


def header(block: str) -> str:
    """The path a block's first line names (``# genpo/....py``, ``# gin/....gin``), or ``""``."""
    first = block.splitlines()[0]
    return first.removeprefix("#").strip() if first.startswith("# ") and "/" in first else ""


def file_blocks() -> dict[str, str]:
    """The doc's python files by the path their first line names."""
    return {header(block): block for block in code_blocks("python") if header(block)}


def snippets() -> list[str]:
    """The doc's python blocks that are not files: usage snippets, run after the files are installed."""
    return [block for block in code_blocks("python") if not header(block)]


def gin_blocks() -> dict[str, str]:
    """The doc's gin blocks by the path their first line names (``# gin/policies/....gin``)."""
    return {header(block): block for block in code_blocks("gin")}


@pytest.fixture
def drop_in(tmp_path, monkeypatch):
    """``install(path, code)``: put the doc's file ``genpo/components/<concept>/<name>.py`` in a temporary folder
    added to that package, then discover ``genpo.components`` as ``import genpo`` does; returns the module.

    The library's actor and coupling tables, the package paths and ``sys.modules`` are restored afterwards.
    """
    for kind in ("actor", "coupling"):
        monkeypatch.setitem(registry._REGISTRY, kind, dict(registry._REGISTRY[kind]))  # noqa: SLF001
    installed = []

    def install(path: str, code: str):
        module_name = path.removesuffix(".py").replace("/", ".")
        package_name, _, short_name = module_name.rpartition(".")
        package = importlib.import_module(package_name)
        folder = tmp_path / "drop_in" / package_name
        folder.mkdir(parents=True)
        (folder / f"{short_name}.py").write_text(code)
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        importlib.invalidate_caches()
        installed.append(module_name)
        assert module_name in registry.discover("genpo.components"), f"discovery did not import {module_name}"
        return sys.modules[module_name]

    yield install
    for module_name in installed:
        sys.modules.pop(module_name, None)
        package_name, _, short_name = module_name.rpartition(".")
        if hasattr(sys.modules[package_name], short_name):
            delattr(sys.modules[package_name], short_name)


# ------------------------------------------------------------------------------ the likelihood scheme
def test_doc_example_registers_trains_and_starts_at_ratio_one(tmp_path, drop_in):
    assert ACTOR_FILE in file_blocks(), sorted(file_blocks())
    assert snippets(), "docs/extending.md lost its usage snippet"
    module = drop_in(ACTOR_FILE, file_blocks()[ACTOR_FILE])
    assert registry.get("actor", "tanh_gaussian") is module.TanhGaussianActor
    namespace = {"__name__": "genpo_docs_extending_example"}
    for code in snippets():  # the usage snippet asserts ratio == 1 itself
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102
    gin.clear_config()

    blocks = gin_blocks()
    assert {POLICY, SCHEME} <= set(blocks), sorted(blocks)
    policy_path = tmp_path / "policies" / "tanh_gaussian.gin"
    policy_path.parent.mkdir()
    policy_path.write_text(blocks[POLICY])
    scheme_path = tmp_path / "scheme_tanh_gaussian.gin"
    include = "include 'policies/tanh_gaussian.gin'"
    assert include in blocks[SCHEME]
    scheme_path.write_text(blocks[SCHEME].replace(include, f"include '{policy_path}'"))

    bindings = [*TINY_BINDINGS, "genpo.run.iterations = 1", "actor.tanh_gaussian.hidden_sizes = (16,)"]
    trainer, _ = new_experiment(tmp_path / "run", [scheme_path], bindings)
    assert type(trainer.actor) is module.TanhGaussianActor
    assert trainer.actor.action_scale == 2.0
    losses = trainer.loss(first_minibatch(trainer))
    assert losses["ratio_max_deviation"].item() < 1e-4
    assert losses["clip_fraction"].item() == 0.0

    trainer.train(1, quiet=True)
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    metrics = {key: value for key, value in row.items() if key.endswith("_loss") or key in ("kl_k1", "kl_k3", "entropy")}
    assert {"policy_loss", "value_loss", "entropy"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values()), metrics


# ------------------------------------------------------------------------------ the coupling
def registry_parametrised_tests(module, parameter: str, lists: list[list[str]]) -> Iterator[tuple[str, object, dict]]:
    """``(name, test, kwargs)`` for each test of ``module`` parametrised over ``parameter`` with one of ``lists``
    (the module's registry-derived lists, matched by identity), over every value of its other
    parametrisations (CPU only: values that carry marks, such as CUDA, are left out)."""
    for name, test in sorted(vars(module).items()):
        if not name.startswith("test_") or not callable(test):
            continue
        marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"]
        if not any(mark.args[0] == parameter and any(mark.args[1] is values for values in lists) for mark in marks):
            continue
        grids = []
        for mark in marks:
            if mark.args[0] == parameter:
                continue
            assert "," not in mark.args[0], f"{name}: only one-name parametrisations are expanded here"
            values = [
                value.values[0] if isinstance(value, ParameterSet) else value
                for value in mark.args[1]
                if not (isinstance(value, ParameterSet) and value.marks)
            ]
            grids.append([(mark.args[0], value) for value in values])
        for combination in itertools.product(*grids):
            kwargs = dict(combination)
            missing = set(inspect.signature(test).parameters) - set(kwargs) - {parameter}
            assert not missing, f"{name} needs {sorted(missing)}, which this runner does not provide"
            yield name, test, kwargs


def test_doc_coupling_gets_the_registry_parametrised_suites(tmp_path, drop_in, monkeypatch, make_tiny_experiment):
    assert COUPLING_FILE in file_blocks(), sorted(file_blocks())
    module = drop_in(COUPLING_FILE, file_blocks()[COUPLING_FILE])
    coupling = registry.get("coupling", "tanh_shift")
    assert coupling is module.TanhShiftCoupling
    constant = coupling.state_independent_log_det
    assert constant is True  # what the doc says: a shift by a function of the other half has determinant 1

    ablation = tmp_path / "gin" / "ablations" / "coupling_tanh_shift.gin"
    ablation.parent.mkdir(parents=True)
    ablation.write_text(gin_blocks()[COUPLING_ABLATION])
    monkeypatch.setattr(test_couplings, "GIN_FOLDERS", [*test_couplings.GIN_FOLDERS, tmp_path / "gin"])

    suites = [
        (test_couplings, "coupling", [test_couplings.COUPLINGS, test_couplings.CONSTANT if constant else test_couplings.STATE_DEPENDENT]),
        (test_actors, "kind", [test_actors.ACTORS, test_actors.COUPLINGS, *([test_actors.CLOSED_FORM_ENTROPY] if constant else [])]),
    ]
    ran = set()
    for suite, parameter, lists in suites:
        for name, test, kwargs in registry_parametrised_tests(suite, parameter, lists):
            gin.clear_config()
            test(**{parameter: "tanh_shift"}, **kwargs)
            ran.add(name)
    assert {
        "test_inverse_undoes_forward",
        "test_step_log_det_is_jacobian_log_det",
        "test_flow_log_det_is_jacobian_log_det",
        "test_coupling_declares_whether_its_log_det_depends_on_the_state",
        "test_declared_log_det_dependence_holds",
        "test_numeric_log_det_flow_equals_analytic",
        "test_coupling_is_selected_by_a_gin_file",
        "test_stored_log_prob_equals_recomputed",
        "test_inverse_recovers_noise",
        "test_density_integrates_to_one",
        "test_log_prob_gradient_reaches_every_parameter",
        "test_closed_form_entropy_exactly_when_the_coupling_declares_a_constant_log_det",
        "test_entropy_matches_monte_carlo",
    } <= ran, sorted(ran)

    # Its gin file: one tiny iteration with the binding checks every ablation gets.
    trainer, settings = make_tiny_experiment(tmp_path / "run", config=ablation, extra=test_ablations.EXTRA)
    effects = test_ablations.expected_effects(ablation)
    assert effects == {"flow.dummy_action.coupling": coupling}
    for key, expected in effects.items():
        for built in test_ablations.built_values(key, trainer, settings):
            test_ablations.check_effect(key, expected, built)
    trainer.train(1, quiet=True)
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(math.isfinite(row[key]) for key in ("policy_loss", "value_loss", "kl_k1")), row
