"""Env steps per second of one process against `torchrun --nproc-per-node 2` (gloo), per policy.

Each measurement is a short `genpo train` of the task's defaults (64 envs x 64 steps per rank, one
torch thread per rank); the rate is the median of the runs' `env_steps_per_s` (all ranks' env steps over
rank 0's iteration time) after the first iteration. The two set-ups run back to back, in both orders,
so a change of load during the benchmark shows up as disagreement between the orders.

    python -m benchmarks.data_parallel [--iterations 8] [--tasks tasks/halfcheetah_gaussian.gin tasks/halfcheetah.gin]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

THREAD_BINDING = "genpo.run.num_threads = 1"


def train_command(config: str, out: Path, iterations: int, ranks: int) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] if ranks > 1 else [sys.executable]
    return [*launcher, "-m", "genpo", "train", config, "--out", str(out), "--iterations", str(iterations), "--quiet", "--gin", THREAD_BINDING]


def env_steps_per_second(config: str, iterations: int, ranks: int, root: Path) -> float:
    """Median env steps/s of a fresh run after its first iteration."""
    out = root / f"{Path(config).stem}-{ranks}ranks-{len(list(root.iterdir()))}"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(train_command(config, out, iterations, ranks), check=True, env=environment, stdout=subprocess.DEVNULL)
    with open(out / "metrics.csv") as handle:
        rates = [float(row["env_steps_per_s"]) for row in csv.DictReader(handle)][1:]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--tasks", nargs="+", default=["tasks/halfcheetah_gaussian.gin", "tasks/halfcheetah.gin"])
    args = parser.parse_args()
    print(f"{'config':<34} {'order':<14} {'1 rank':>9} {'2 ranks':>9} {'2 / 1':>6}")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for config in args.tasks:
            for order in ((1, 2), (2, 1)):
                rates = {ranks: env_steps_per_second(config, args.iterations, ranks, root) for ranks in order}
                label = "1 rank first" if order[0] == 1 else "2 ranks first"
                print(f"{config:<34} {label:<14} {rates[1]:>9.0f} {rates[2]:>9.0f} {rates[2] / rates[1]:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
