"""Data-parallel training: ``torchrun --nproc-per-node 2 -m genpo train`` on CPU (gloo).

One test, so that its two torchrun launches run once whichever xdist worker takes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import torch
from conftest import TINY_BINDINGS
from test_trainer import assert_rows_identical

from genpo.cli import main
from genpo.training.checkpoint import load_checkpoint
from genpo.training.run_logger import read_metrics

ENVS, STEPS, ITERATIONS = 16, 8, 4


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "genpo"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *arguments], capture_output=True, text=True, env=environment, timeout=300)


def test_two_ranks_stay_identical_log_once_and_resume_exactly(tmp_path, capsys):
    """A 2-rank run of 4 iterations (checkpoints at 2 and 4), and a copy set back to its iteration-2
    checkpoint (as if killed after it) and resumed with torchrun."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    bindings = [*TINY_BINDINGS, "genpo.trainer.checkpoint_interval = 2", "genpo.run.num_threads = 1"]
    options = [argument for binding in bindings for argument in ("--gin", binding)]
    first = torchrun("train", "tasks/pendulum.gin", "--out", str(whole), "--iterations", str(ITERATIONS), "--quiet", *options)
    assert first.returncode == 0, first.stderr[-3000:]

    # identical parameters and normaliser statistics after every update: checked by the trainer after
    # every iteration (every rank's tensors gathered and compared with rank 0's), the largest difference logged
    rows = read_metrics(whole / "metrics.csv")
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4]
    assert [row["rank_difference"] for row in rows] == [0.0] * ITERATIONS
    assert [row["env_steps"] for row in rows] == [2 * ENVS * STEPS * (i + 1) for i in range(ITERATIONS)]
    # 12-step episodes end at steps 12 and 24: every env of both ranks, in iterations 2 and 3
    assert [row["episodes"] for row in rows] == [0, 2 * ENVS, 2 * ENVS, 0]

    # rank 0 alone prints and writes; the checkpoint holds both ranks' own envs and RNG, and the return
    # statistics, identical on both
    assert first.stdout.count("run directory:") == 1 and first.stdout.count("learning curve:") == 1
    assert [first.stdout.count(f"iteration {i} ") for i in range(1, ITERATIONS + 1)] == [1] * ITERATIONS
    assert len(list((whole / "tensorboard").rglob("events.*"))) == 1
    state = load_checkpoint(whole / "checkpoints" / "latest.pt")
    ranks = state["data_parallel"]["ranks"]
    assert state["data_parallel"]["world_size"] == 2 and len(ranks) == 2
    assert not torch.equal(ranks[0]["collector"]["episode_return"], ranks[1]["collector"]["episode_return"])
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    moments = [{key: value for key, value in rank["reward_scaler"].items() if key.startswith("moments.")} for rank in ranks]
    assert moments[0].keys() == {"moments.mean", "moments.variance", "moments.count"}
    assert all(torch.equal(moments[0][key], moments[1][key]) for key in moments[0])

    # resumed from iteration 2, it logs what the uninterrupted run logged
    shutil.copytree(whole, resumed)
    (resumed / "summary.json").unlink()
    shutil.copyfile(resumed / "checkpoints" / "iteration_0000002.pt", resumed / "checkpoints" / "latest.pt")
    second = torchrun("train", "--resume", str(resumed), "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("run directory:") == 1
    assert_rows_identical(rows, read_metrics(resumed / "metrics.csv"))
    resumed_state = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    assert all(torch.equal(state["actor"][key], value) for key, value in resumed_state["actor"].items())

    # one process cannot continue a 2-rank checkpoint
    assert main(["train", "--resume", str(whole), "--iterations", "1"]) == 2
    assert "was written by 2 rank(s), this run has 1" in capsys.readouterr().err


def test_pooled_moments_are_the_moments_of_the_union():
    """What every rank folds into its normalisers: the moments of all ranks' batches together."""
    from genpo.training.data_parallel import pooled_moments

    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(size, 3, generator=generator, dtype=torch.float64) * (rank + 1) + rank for rank, size in enumerate((5, 9, 2))]
    counts = torch.tensor([[float(len(batch))] for batch in batches], dtype=torch.float64)
    means = torch.stack([batch.mean(0) for batch in batches])
    variances = torch.stack([batch.var(0, unbiased=False) for batch in batches])
    total, mean, variance = pooled_moments(counts, means, variances)
    union = torch.cat(batches)
    assert total.item() == 16.0
    torch.testing.assert_close(mean, union.mean(0))
    torch.testing.assert_close(variance, union.var(0, unbiased=False))
