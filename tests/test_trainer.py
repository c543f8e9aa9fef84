"""The trainer end to end on tiny Pendulum runs: resume, failures, checkpoints, run directory, seeds."""

from __future__ import annotations

import csv
import json
import math

import gin
import pytest
import torch
from conftest import GAUSSIAN_CONFIG, GENPO_CONFIG, TINY_BINDINGS

from genpo.builders import new_experiment, resume_experiment
from genpo.training import checkpoint as checkpoint_module
from genpo.training.checkpoint import load_checkpoint, save_checkpoint
from genpo.training.errors import CheckpointError
from genpo.training.run_logger import final_return, read_metrics
from genpo.training.trainer import CHECKPOINT_KEYS

TIMING_COLUMNS = {"wall_time", "env_steps_per_s", "collection_time", "update_time"}
REQUIRED_COLUMNS = [
    "iteration",
    "env_steps",
    "wall_time",
    "return_mean",
    "episode_length_mean",
    "policy_loss",
    "value_loss",
    "entropy",
    "kl_k1",
    "kl_k3",
    "lr",
    "clip_fraction",
    "env_steps_per_s",
]
BATCH = 16 * 8  # num_envs x steps_per_env of the tiny config


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_rows_identical(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        assert list(row_a) == list(row_b)
        different = {
            key: (row_a[key], row_b[key])
            for key in row_a
            if key not in TIMING_COLUMNS and not same_float(row_a[key], row_b[key])
        }
        assert not different, f"iteration {row_a['iteration']}: {different}"


def assert_state_dicts_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One tiny GenPO run of 2 iterations, shared by the read-only tests below."""
    gin.clear_config()
    run_dir = tmp_path_factory.mktemp("short") / "run"
    trainer, _ = new_experiment(run_dir, [GENPO_CONFIG], list(TINY_BINDINGS))
    trainer.train(2, quiet=True)
    gin.clear_config()
    return trainer


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("config", [GENPO_CONFIG, GAUSSIAN_CONFIG], ids=["genpo", "gaussian"])
def test_resume_is_identical_to_an_uninterrupted_run(tmp_path, make_tiny_experiment, config):
    k = 2
    uninterrupted, _ = make_tiny_experiment(tmp_path / "a", config)
    uninterrupted.train(2 * k, quiet=True)

    first_half, _ = make_tiny_experiment(tmp_path / "b", config)
    first_half.train(k, quiet=True)
    gin.clear_config()
    resumed, _, _ = resume_experiment(tmp_path / "b")
    assert (resumed.iteration, resumed.env_steps) == (k, k * BATCH)
    # normaliser, reward scaler, lr and episode accumulators come back exactly
    assert_state_dicts_equal(resumed.observation_normalizer.state_dict(), first_half.observation_normalizer.state_dict())
    assert_state_dicts_equal(resumed.reward_scaler.state_dict(), first_half.reward_scaler.state_dict())
    assert resumed.lr_controller.learning_rate == first_half.lr_controller.learning_rate
    assert torch.equal(resumed.collector.episodes.episode_return, first_half.collector.episodes.episode_return)
    resumed.train(k, quiet=True)

    rows_a = read_metrics(tmp_path / "a" / "metrics.csv")
    rows_b = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [row["iteration"] for row in rows_b] == [1.0, 2.0, 3.0, 4.0]
    assert any(math.isfinite(row["return_mean"]) for row in rows_b[k:])  # episodes did finish after resume
    assert_rows_identical(rows_a, rows_b)
    assert_state_dicts_equal(resumed.actor.state_dict(), uninterrupted.actor.state_dict())
    assert_state_dicts_equal(resumed.critic.state_dict(), uninterrupted.critic.state_dict())


def test_normaliser_and_reward_scaler_are_trained(short_run):
    steps = 2 * BATCH
    moments = short_run.observation_normalizer.moments
    assert moments.count.item() == steps
    assert moments.mean.abs().min().item() > 0.0
    assert (moments.variance - 1.0).abs().min().item() > 0.0
    scaler = short_run.reward_scaler
    assert scaler.moments.count.item() == steps
    assert scaler.moments.variance.item() != 1.0
    assert scaler.discounted_return.abs().sum().item() > 0
    saved = load_checkpoint(short_run.checkpoint_path, CHECKPOINT_KEYS)
    assert torch.equal(saved["observation_normalizer"]["moments.mean"], moments.mean)
    assert torch.equal(saved["reward_scaler"]["moments.variance"], scaler.moments.variance)


# ------------------------------------------------------------------------------ reproducibility
def test_same_seed_same_metrics_different_seed_different(tmp_path, make_tiny_experiment):
    rows = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        trainer, _ = make_tiny_experiment(tmp_path / name, extra=[f"genpo.run.seed = {seed}"])
        trainer.train(2, quiet=True)
        rows[name] = read_metrics(tmp_path / name / "metrics.csv")
    assert_rows_identical(rows["a"], rows["b"])
    assert [row["policy_loss"] for row in rows["a"]] != [row["policy_loss"] for row in rows["c"]]
    assert [row["value_loss"] for row in rows["a"]] != [row["value_loss"] for row in rows["c"]]


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_loads_with_weights_only(short_run):
    state = torch.load(short_run.checkpoint_path, weights_only=True)
    assert state["format"] == "genpo-checkpoint-v1"
    assert set(CHECKPOINT_KEYS) <= set(state)
    assert state["iteration"] == 2 and state["env_steps"] == 2 * BATCH


def test_truncated_checkpoint_is_a_clear_error(short_run, tmp_path):
    data = short_run.checkpoint_path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {truncated} is corrupt or truncated"):
        short_run.load(truncated)


def test_garbage_checkpoint_is_a_clear_error(short_run, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 64)
    with pytest.raises(CheckpointError, match=f"checkpoint {garbage} is corrupt or truncated"):
        short_run.load(garbage)


def test_foreign_and_missing_checkpoints_are_clear_errors(short_run, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="is not a genpo-checkpoint-v1 file"):
        short_run.load(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        short_run.load(tmp_path / "absent.pt")


def test_checkpoint_lacking_keys_names_them(short_run, tmp_path):
    partial = tmp_path / "partial.pt"
    state = short_run.state_dict()
    del state["optimizer"], state["rng"]
    save_checkpoint(state, partial)
    with pytest.raises(CheckpointError, match=f"checkpoint {partial} lacks optimizer, rng"):
        short_run.load(partial)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "checkpoints" / "latest.pt"
    save_checkpoint({"iteration": 1, "weights": torch.arange(3)}, target)
    save_checkpoint({"iteration": 2, "weights": torch.arange(4)}, target)
    assert [path.name for path in target.parent.iterdir()] == ["latest.pt"]
    assert load_checkpoint(target)["iteration"] == 2


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "latest.pt"
    save_checkpoint({"iteration": 1}, target)
    before = target.read_bytes()

    def crash_midway(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"iteration": 2}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["latest.pt"]
    assert load_checkpoint(target)["iteration"] == 1


def test_numpy_arrays_round_trip(tmp_path):
    import numpy as np

    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    path = save_checkpoint({"env": {"qpos": array, "step": np.int64(4)}}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    assert isinstance(state["env"]["qpos"], np.ndarray)
    np.testing.assert_array_equal(state["env"]["qpos"], array)
    assert state["env"]["step"] == 4


# ------------------------------------------------------------------------------ run directory
def test_run_directory_contents(short_run):
    run_dir = short_run.run_dir
    for name in ("operative_config.gin", "config.gin", "metrics.csv", "summary.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert "trainer.steps_per_env = 8" in (run_dir / "config.gin").read_text()  # gin shortens names
    assert "num_envs = 16" in (run_dir / "operative_config.gin").read_text()

    with open(run_dir / "metrics.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert [column for column in REQUIRED_COLUMNS if column not in header] == []
    rows = read_metrics(run_dir / "metrics.csv")
    assert [(row["iteration"], row["env_steps"]) for row in rows] == [(1.0, BATCH), (2.0, 2 * BATCH)]
    assert math.isfinite(rows[-1]["return_mean"]) and rows[-1]["episode_length_mean"] == 12.0
    for column in REQUIRED_COLUMNS:
        if column not in ("return_mean", "episode_length_mean"):
            assert all(math.isfinite(row[column]) for row in rows), column

    events = list(run_dir.rglob("events.out.tfevents*"))
    assert events and events[0].stat().st_size > 0
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["iterations"], summary["env_steps"]) == (2, 2 * BATCH)
    assert summary["final_return"] == pytest.approx(final_return(rows))


# ------------------------------------------------------------------------------ config errors
def test_unknown_binding_fails_before_training(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="gin config error: Configurable 'genpo.trainer' doesn't have a parameter named 'epochz'"):
        new_experiment(run_dir, [GENPO_CONFIG], [*TINY_BINDINGS, "genpo.trainer.epochz = 3"])
    assert not (run_dir / "metrics.csv").exists()


def test_missing_required_value_fails_before_training(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"Required bindings for `build_env` not provided in config: \['name'"):
        new_experiment(run_dir, ["policies/genpo.gin", "algorithms/ppo.gin"], ["genpo.run.iterations = 1"])
    assert not (run_dir / "metrics.csv").exists()


# ------------------------------------------------------------------------------ gradient clipping
def test_every_parameter_group_is_clipped_to_max_grad_norm(tmp_path, make_tiny_experiment, monkeypatch):
    """Before each optimiser step the actor's and the critic's gradients each have norm <= max_grad_norm;
    with a bound this small every step's gradients were larger, so each norm sits at the bound."""
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=["genpo.trainer.max_grad_norm = 0.01"])
    norms: list[list[float]] = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        groups = trainer.optimizer.param_groups
        norms.append([torch.nn.utils.get_total_norm([p.grad for p in group["params"]]).item() for group in groups])
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", recording_step)
    trainer.run_iteration()
    assert len(norms) == trainer.settings.epochs * trainer.settings.minibatches
    assert max(max(group_norms) for group_norms in norms) <= 0.01 * (1 + 1e-5)
    assert min(max(group_norms) for group_norms in norms) > 0.0099
