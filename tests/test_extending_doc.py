"""docs/extending.md's worked example is real code: its python blocks run, its gin files train a tiny run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import gin
import pytest
from conftest import TINY_BINDINGS
from test_schemes import first_minibatch

from genpo import registry
from genpo.builders import new_experiment
from genpo.training.run_logger import read_metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
POLICY = "gin/policies/tanh_gaussian.gin"
SCHEME = "gin/ablations/scheme_tanh_gaussian.gin"


def code_blocks(language: str) -> list[str]:
    return [body for fence_language, body in FENCE.findall(DOC.read_text()) if fence_language == language]


def gin_blocks() -> dict[str, str]:
    """The doc's gin blocks by the path their first line names (``# gin/policies/....gin``)."""
    return {block.splitlines()[0].removeprefix("#").strip(): block for block in code_blocks("gin")}


@pytest.fixture
def scratch_actor_registry(monkeypatch):
    """The example registers ``actor.tanh_gaussian``; the library's actor table is restored afterwards."""
    monkeypatch.setitem(registry._REGISTRY, "actor", dict(registry._REGISTRY["actor"]))  # noqa: SLF001


def test_doc_example_registers_trains_and_starts_at_ratio_one(tmp_path, scratch_actor_registry):
    python = code_blocks("python")
    assert len(python) >= 2, "docs/extending.md lost its python blocks"
    namespace = {"__name__": "genpo_docs_extending_example"}
    for code in python:  # the class file, then the usage snippet (which asserts ratio == 1 itself)
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102
    assert registry.get("actor", "tanh_gaussian") is namespace["TanhGaussianActor"]
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
    assert type(trainer.actor) is namespace["TanhGaussianActor"]
    assert trainer.actor.action_scale == 2.0
    losses = trainer.loss(first_minibatch(trainer))
    assert losses["ratio_max_deviation"].item() < 1e-4
    assert losses["clip_fraction"].item() == 0.0

    trainer.train(1, quiet=True)
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    metrics = {key: value for key, value in row.items() if key.endswith("_loss") or key in ("kl_k1", "kl_k3", "entropy")}
    assert {"policy_loss", "value_loss", "entropy"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values()), metrics
