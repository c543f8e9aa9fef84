"""Data-parallel training: ``torchrun --nproc-per-node 2 -m genpo train`` on CPU (gloo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import TINY_BINDINGS
from test_trainer import assert_rows_identical

from genpo.cli import main
from genpo.training.checkpoint import load_checkpoint
from genpo.training.run_logger import read_metrics

pytestmark = pytest.mark.xdist_group("sweep")  # two ranks take both cores: keep them beside the sweep tests

ENVS, STEPS, ITERATIONS = 16, 8, 4


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "genpo"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *arguments], capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """A 2-rank run of 4 iterations (checkpoints at 2 and 4), and a copy set back to its iteration-2
    checkpoint (as if killed after it) and resumed with torchrun."""
    tmp_path = tmp_path_factory.mktemp("data_parallel")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    bindings = [*TINY_BINDINGS, "genpo.trainer.checkpoint_interval = 2", "genpo.run.num_threads = 1"]
    options = [argument for binding in bindings for argument in ("--gin", binding)]
    first = torchrun("train", "tasks/pendulum.gin", "--out", str(whole), "--iterations", str(ITERATIONS), "--quiet", *options)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(whole, resumed)
    (resumed / "summary.json").unlink()
    shutil.copyfile(resumed / "checkpoints" / "iteration_0000002.pt", resumed / "checkpoints" / "latest.pt")
    second = torchrun("train", "--resume", str(resumed), "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    return whole, resumed, first, second


def test_ranks_keep_identical_parameters_and_normalisers_after_every_update(two_rank_runs):
    whole, *_ = two_rank_runs
    rows = read_metrics(whole / "metrics.csv")
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4]
    # checked by the trainer after every iteration (all parameters and normaliser moments gathered)
    assert [row["rank_difference"] for row in rows] == [0.0] * ITERATIONS
    assert [row["env_steps"] for row in rows] == [2 * ENVS * STEPS * (i + 1) for i in range(ITERATIONS)]
    # 12-step episodes end at steps 12 and 24: every env of both ranks, in iterations 2 and 3
    assert [row["episodes"] for row in rows] == [0, 2 * ENVS, 2 * ENVS, 0]


def test_rank_0_alone_logs_and_the_checkpoint_holds_every_rank(two_rank_runs):
    whole, _, first, _ = two_rank_runs
    assert first.stdout.count("run directory:") == 1 and first.stdout.count("learning curve:") == 1
    assert [first.stdout.count(f"iteration {i} ") for i in range(1, ITERATIONS + 1)] == [1] * ITERATIONS
    assert len(list((whole / "tensorboard").rglob("events.*"))) == 1
    state = load_checkpoint(whole / "checkpoints" / "latest.pt")
    ranks = state["data_parallel"]["ranks"]
    assert state["data_parallel"]["world_size"] == 2 and len(ranks) == 2
    # each rank steps its own envs (seed + rank) and sampling noise, with identical return statistics
    assert not torch.equal(ranks[0]["collector"]["episode_return"], ranks[1]["collector"]["episode_return"])
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    moments = [{key: value for key, value in rank["reward_scaler"].items() if key.startswith("moments.")} for rank in ranks]
    assert moments[0].keys() == {"moments.mean", "moments.variance", "moments.count"}
    assert all(torch.equal(moments[0][key], moments[1][key]) for key in moments[0])


def test_resume_continues_exactly(two_rank_runs):
    whole, resumed, _, second = two_rank_runs
    assert second.stdout.count("run directory:") == 1
    assert_rows_identical(read_metrics(whole / "metrics.csv"), read_metrics(resumed / "metrics.csv"))
    state_expected = load_checkpoint(whole / "checkpoints" / "latest.pt")
    state_got = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    assert all(torch.equal(state_expected["actor"][key], value) for key, value in state_got["actor"].items())


def test_resume_with_another_number_of_ranks_is_refused(two_rank_runs, capsys):
    whole, *_ = two_rank_runs
    assert main(["train", "--resume", str(whole), "--iterations", "1"]) == 2
    assert "was written by 2 rank(s), this run has 1" in capsys.readouterr().err
