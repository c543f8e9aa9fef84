"""Faults a long run meets: kill -9 at the worst moments, SIGINT/SIGTERM, and NaNs from the env and
the loss. After each, the last checkpoint must load, the metrics must agree with it, and the
resumed run must equal an uninterrupted one."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import GENPO_CONFIG, TEST_THREADS, TINY_BINDINGS

from genpo.training.checkpoint import load_checkpoint
from genpo.training.errors import NonFiniteError
from genpo.training.run_logger import read_metrics
from genpo.training.trainer import CHECKPOINT_KEYS

pytestmark = pytest.mark.xdist_group("fault_injection")  # one worker: the reference run is trained once

ITERATIONS = 6
FAULT_BINDINGS = (*TINY_BINDINGS, "genpo.trainer.checkpoint_interval = 2")
TIMING_COLUMNS = {"wall_time", "env_steps_per_s", "collection_time", "update_time"}
CHILD = Path(__file__).with_name("fault_child.py")


def genpo_train_args(run_dir: Path) -> list[str]:
    bindings = [argument for binding in FAULT_BINDINGS for argument in ("--gin", binding)]
    return ["train", GENPO_CONFIG, "--out", str(run_dir), "--iterations", str(ITERATIONS), "--quiet", *bindings]


def start_child(genpo_args: list[str], phase: str = "none", iteration: int = 0, wake: bool = False) -> subprocess.Popen:
    """``genpo GENPO_ARGS`` in a child process (with this suite's torch thread count), with a fault
    point (see ``fault_child.py``)."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(TEST_THREADS), "MKL_NUM_THREADS": str(TEST_THREADS)}
    command = [sys.executable, str(CHILD), phase, str(iteration), str(int(wake)), "--", *genpo_args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=environment
    )


def wait_for_line(child: subprocess.Popen, prefix: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and child.poll() is not None:
            raise AssertionError(f"child exited ({child.returncode}) before {prefix!r}: {child.stderr.read()}")
    raise AssertionError(f"no {prefix!r} line within {timeout} s")


def kill_at_fault_point(genpo_args: list[str], phase: str, iteration: int) -> None:
    child = start_child(genpo_args, phase, iteration)
    wait_for_line(child, "FAULT_POINT")
    child.kill()
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL


def rows(run_dir: Path) -> list[dict]:
    """metrics.csv without timing columns, NaN as None (so that rows compare equal)."""
    return [
        {key: None if math.isnan(value) else value for key, value in row.items() if key not in TIMING_COLUMNS}
        for row in read_metrics(run_dir / "metrics.csv")
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run, trained in a child process like the interrupted ones."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    child = start_child(genpo_train_args(run_dir))
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return run_dir


def assert_consistent_with_reference(run_dir: Path, reference: Path) -> int:
    """The latest checkpoint loads and every metrics row up to its iteration equals the reference's;
    returns the checkpoint's iteration."""
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt", CHECKPOINT_KEYS)
    saved = int(state["iteration"])
    kept = [row for row in rows(run_dir) if row["iteration"] <= saved]
    assert kept == rows(reference)[:saved]
    return saved


def assert_equals_reference(run_dir: Path, reference: Path) -> None:
    assert rows(run_dir) == rows(reference)
    final = load_checkpoint(run_dir / "checkpoints" / "latest.pt", CHECKPOINT_KEYS)
    expected = load_checkpoint(reference / "checkpoints" / "latest.pt", CHECKPOINT_KEYS)
    assert final["iteration"] == expected["iteration"] == ITERATIONS
    for key, value in expected["actor"].items():
        assert torch.equal(final["actor"][key], value), key


# ------------------------------------------------------------------------------ kill -9
def test_kill_9_during_collection_update_and_checkpoint_write_then_resume_equals_uninterrupted(tmp_path, reference):
    run_dir = tmp_path / "run"
    resume = ["train", "--resume", str(run_dir), "--quiet"]
    kill_at_fault_point(genpo_train_args(run_dir), "collection", 3)
    assert assert_consistent_with_reference(run_dir, reference) == 2
    kill_at_fault_point(resume, "update", 4)
    assert assert_consistent_with_reference(run_dir, reference) == 2
    kill_at_fault_point(resume, "checkpoint", 4)  # the iteration-4 checkpoint is half written
    assert assert_consistent_with_reference(run_dir, reference) == 2
    assert list((run_dir / "checkpoints").glob(".latest.pt.*")), "the killed write left its temporary file"
    # and a kill at a random moment (seeded), anywhere in the next iterations
    child = start_child(resume)
    wait_for_line(child, "run directory:")
    time.sleep(random.Random(10).uniform(0.5, 3.0))
    child.kill()
    child.communicate(timeout=60)
    assert assert_consistent_with_reference(run_dir, reference) >= 2

    finish = start_child(resume)
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert not list((run_dir / "checkpoints").glob(".*.pt.*")), "partial writes are cleaned on resume"
    assert_equals_reference(run_dir, reference)


# ------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_the_finished_iteration_and_exits_cleanly(tmp_path, reference, signum):
    run_dir = tmp_path / "run"
    child = start_child(genpo_train_args(run_dir), "update", 2, wake=True)
    assert wait_for_line(child, "run directory:").strip() == f"run directory: {run_dir}"
    wait_for_line(child, "FAULT_POINT")  # in the middle of iteration 2's update, waiting
    child.send_signal(signum)  # the handler only sets a flag: iteration 2 finishes, then the run stops
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum
    assert "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name} at iteration 2" in err
    assert err.index(f"{signal.Signals(signum).name} received: finishing the iteration in flight") < err.index("stopped by")
    # the child runs as `python fault_child.py`, so the hint names the interpreter: a line that works as typed
    hint = next(line for line in err.splitlines() if line.startswith("resume with: "))
    interpreter, rest = hint.removeprefix("resume with: ").split(" -m genpo ")
    assert Path(interpreter).resolve() == Path(sys.executable).resolve() and rest == f"train --resume {run_dir}"
    assert assert_consistent_with_reference(run_dir, reference) == 2
    assert [row["iteration"] for row in rows(run_dir)] == [1.0, 2.0]

    finish = start_child(["train", "--resume", str(run_dir), "--quiet"])
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert_equals_reference(run_dir, reference)


def test_a_second_sigint_abandons_the_iteration_and_keeps_the_last_checkpoint(tmp_path, reference):
    run_dir = tmp_path / "run"
    child = start_child(genpo_train_args(run_dir), "collection", 3)
    wait_for_line(child, "FAULT_POINT")
    child.send_signal(signal.SIGINT)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert "Traceback" not in err and "interrupted twice" in err and "resume with:" in err
    assert assert_consistent_with_reference(run_dir, reference) == 2


# ------------------------------------------------------------------------------ non-finite values
def inject_nan(monkeypatch, trainer, *, iteration: int, key: str):
    """Make ``env.step`` return a NaN in ``key`` (env 5) at step 3 of ``iteration``."""
    original = trainer.env.step
    bad_call = (iteration - 1) * trainer.settings.steps_per_env + 3
    calls = {"count": 0}

    def step(action):
        result = original(action)
        if calls["count"] == bad_call:
            value = result[key].clone()
            value[5] = math.nan
            result[key] = value
        calls["count"] += 1
        return result

    monkeypatch.setattr(trainer.env, "step", step)


@pytest.mark.parametrize("key", ["reward", "observation"])
def test_nan_from_env_stops_with_iteration_source_and_last_checkpoint(tmp_path, make_tiny_experiment, monkeypatch, key):
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=["genpo.trainer.checkpoint_interval = 1"])
    inject_nan(monkeypatch, trainer, iteration=3, key=key)
    with pytest.raises(NonFiniteError) as failure:
        trainer.train(5, quiet=True)
    message = str(failure.value)
    assert f"rollout collection: iteration 3: non-finite {key} " in message
    assert "PendulumEnv" in message and "[5]" in message
    assert f"last good checkpoint: {trainer.checkpoint_path}" in message
    state = load_checkpoint(trainer.checkpoint_path, CHECKPOINT_KEYS)
    assert state["iteration"] == 2
    assert all(torch.isfinite(value).all() for value in state["actor"].values())
    assert len(read_metrics(tmp_path / "run" / "metrics.csv")) == 2


def test_nan_in_the_first_iteration_keeps_the_iteration_0_checkpoint(tmp_path, make_tiny_experiment, monkeypatch):
    trainer, _ = make_tiny_experiment(tmp_path / "run")
    inject_nan(monkeypatch, trainer, iteration=1, key="reward")
    with pytest.raises(NonFiniteError, match="rollout collection: iteration 1: non-finite reward .* last good checkpoint: .*latest.pt .iteration 0."):
        trainer.train(2, quiet=True)
    assert load_checkpoint(trainer.checkpoint_path, CHECKPOINT_KEYS)["iteration"] == 0


def test_non_finite_loss_names_the_term_and_iteration(tmp_path, make_tiny_experiment, monkeypatch):
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=["genpo.trainer.checkpoint_interval = 1"])
    forward = trainer.loss.forward

    def poisoned(tensordict):
        out = forward(tensordict)
        if trainer.iteration == 1:  # the second iteration's update
            out["loss_critic"] = out["loss_critic"] * math.nan
        return out

    monkeypatch.setattr(trainer.loss, "forward", poisoned)
    with pytest.raises(NonFiniteError) as failure:
        trainer.train(3, quiet=True)
    message = str(failure.value)
    assert "PPO update: iteration 2, epoch 0, minibatch 0: non-finite loss_critic" in message
    assert "loss_objective" not in message
    assert f"last good checkpoint: {trainer.checkpoint_path}" in message
    assert load_checkpoint(trainer.checkpoint_path, CHECKPOINT_KEYS)["iteration"] == 1
    # stopped before the optimiser step: no NaN reached the weights
    assert all(torch.isfinite(p).all() for p in trainer.critic.parameters())


