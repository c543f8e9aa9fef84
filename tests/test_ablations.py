"""Every ablation file in gin/ablations/ parses, stays small, takes effect and trains one iteration.

Parametrised over a glob, so files added later (e.g. ``scheme_*.gin``) are covered without edits here.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import gin
import pytest

from genpo import registry
from genpo.builders.config import GIN_DIR
from genpo.training.run_logger import read_metrics

ABLATIONS = sorted((GIN_DIR / "ablations").glob("*.gin"))
MAX_BINDINGS = 3
# Composite files that reproduce a whole configuration rather than move one axis; why each is allowed more.
# Files this module owns must bind only keys whose effect it checks below; other workers' files
# (scheme_*.gin) are checked for the keys it knows.
OWN_FILE = re.compile(r"^(?!scheme_).*\.gin$")

BINDING = re.compile(r"^\s*([\w./]+)\s*=\s*(.+?)\s*$")
REFERENCE = re.compile(r"^@(\w+)\.(\w+)(\(\))?$")


def binding_lines(path: Path) -> list[str]:
    """The file's lines that are neither blank, a comment, nor an include/import."""
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith(("include ", "import ")):
            lines.append(stripped)
    return lines


def parsed_bindings(path: Path) -> dict[str, object]:
    """``key -> value`` of the file's one-line bindings; references become the registered class."""
    bindings = {}
    for line in binding_lines(path):
        match = BINDING.match(line)
        if match is None:
            continue
        key, text = match.groups()
        reference = REFERENCE.match(text)
        if reference:
            kind, name, _ = reference.groups()
            bindings[key] = registry.get(kind, name)
        else:
            try:
                bindings[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                bindings[key] = text
    return bindings


def _compression(trainer):
    return trainer.loss.compression


# binding key -> the built object (or value) it must set, read from the trainer before training.
EFFECTS = {
    "loss.ppo.compression_coefficient": lambda trainer: trainer.loss.compression_coefficient,
    "loss.ppo.entropy_coefficient": lambda trainer: trainer.loss.entropy_coefficient,
    "loss.ppo.entropy_estimator": lambda trainer: trainer.loss.entropy_estimator,
    "loss.ppo.compression": _compression,
    "compression.squared.sample_fraction": lambda trainer: _compression(trainer).sample_fraction,
    "compression.norm.sample_fraction": lambda trainer: _compression(trainer).sample_fraction,
    "coupling.genpo.p": lambda trainer: trainer.actor.flow.coupling.p,
    "coupling.leapfrog.p": lambda trainer: trainer.actor.flow.coupling.p,
    "coupling.affine.p": lambda trainer: trainer.actor.flow.coupling.p,
    "flow.dummy_action.coupling": lambda trainer: trainer.actor.flow.coupling,
    "flow.dummy_action.num_steps": lambda trainer: trainer.actor.flow.num_steps,
    "readout.linear.alpha": lambda trainer: trainer.actor.readout.alpha,
    "velocity_network.mlp.time_embedding": lambda trainer: trainer.actor.flow.velocity_network.time_embedding,
    "genpo.trainer.lr_controller": lambda trainer: trainer.lr_controller,
    "lr_controller.fixed.learning_rate": lambda trainer: trainer.lr_controller.learning_rate,
    "lr_controller.kl_adaptive.learning_rate": lambda trainer: trainer.lr_controller.learning_rate,
    "genpo.trainer.kl_for_lr": lambda trainer: trainer.settings.kl_for_lr,
    "genpo.policy.actor": lambda trainer: trainer.actor,
    "actor.fpo.solver": lambda trainer: trainer.actor.solver,
}


def check_effect(key: str, expected: object, built: object) -> None:
    if isinstance(expected, type):
        assert type(built) is expected, f"{key}: built {type(built).__name__}, file says {expected.__name__}"
    elif isinstance(expected, float | int) and not isinstance(expected, bool):
        assert built == pytest.approx(expected), f"{key}: built {built!r}, file says {expected!r}"
    else:
        assert built == expected, f"{key}: built {built!r}, file says {expected!r}"


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
    bindings = parsed_bindings(path)
    checked = {key: value for key, value in bindings.items() if key in EFFECTS}
    if OWN_FILE.match(path.name):
        assert set(checked) == set(bindings), f"{path.name}: no effect check for {sorted(set(bindings) - set(checked))}"
    trainer, settings = make_tiny_experiment(tmp_path / "run", config=path, extra=["genpo.run.iterations = 1"])
    for key, expected in checked.items():
        check_effect(key, expected, EFFECTS[key](trainer))

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
