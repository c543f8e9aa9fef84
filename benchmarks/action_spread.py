"""How much a trained Pendulum policy still explores: the spread of its sampled actions per state, at each
checkpoint a run kept (e.g. to see FPO's exploration collapse on Pendulum).

For every checkpoint under ``RUN/checkpoints`` (``iteration_*.pt``, else ``latest.pt``; ``best.pt`` with
``--best``), the run's policy is loaded with ``genpo.load_policy(..., noise="random")`` and sampled
``--samples`` times at each of ``--states`` fixed states (angle uniform in [-pi, pi), angular velocity
uniform in [-8, 8], one seed for all runs). Per checkpoint: the mean and median over states of the
per-state standard deviation of the action the env receives, and the fraction of states whose
deviation is below ``--collapsed`` (a near-deterministic policy there).

    python -m benchmarks.action_spread runs/probe/fpo runs/probe/fpo_plus_plus
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import torch

import genpo

ITERATION = re.compile(r"iteration_(\d+)\.pt$")


def pendulum_states(count: int, seed: int) -> torch.Tensor:
    """``count`` Pendulum observations (cos theta, sin theta, theta_dot) from a fixed generator."""
    generator = torch.Generator().manual_seed(seed)
    theta = (torch.rand(count, generator=generator) * 2.0 - 1.0) * math.pi
    speed = (torch.rand(count, generator=generator) * 2.0 - 1.0) * 8.0
    return torch.stack([theta.cos(), theta.sin(), speed], dim=-1)


def checkpoints(run: Path, best: bool) -> list[tuple[str, Path]]:
    """(label, path) of the run's kept checkpoints in iteration order (``latest.pt`` if it kept none), then
    ``best.pt`` when asked, labelled with its iteration."""
    folder = run / "checkpoints"
    numbered = sorted((int(match.group(1)), path) for path in folder.glob("iteration_*.pt") if (match := ITERATION.search(path.name)))
    found = [(f"iteration {number}", path) for number, path in numbered] or [("latest", folder / "latest.pt")]
    if best:
        iteration = json.loads((folder / "best.json").read_text())["iteration"]
        found.append((f"best (iteration {iteration})", folder / "best.pt"))
    return found


@torch.no_grad()
def spread(run: Path, checkpoint: Path, states: torch.Tensor, samples: int) -> torch.Tensor:
    """Per-state standard deviation [S] of ``samples`` sampled actions (first action dimension)."""
    policy = genpo.load_policy(run, noise="random", checkpoint=checkpoint)
    actions = policy(states.repeat_interleave(samples, dim=0))[:, 0]
    return actions.unflatten(0, (len(states), samples)).std(dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--states", type=int, default=64)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--collapsed", type=float, default=0.05, help="per-state std below this counts as collapsed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true", help="also the best.pt checkpoint")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    states = pendulum_states(args.states, args.seed)
    print(f"== per-state std of {args.samples} sampled actions at {args.states} Pendulum states (seed {args.seed}) ==")
    for run in args.runs:
        for label, path in checkpoints(run, args.best):
            deviation = spread(run, path, states, args.samples)
            collapsed = (deviation < args.collapsed).float().mean().item()
            print(
                f"{run} {label}: mean {deviation.mean().item():.3f}, median {deviation.median().item():.3f}, "
                f"below {args.collapsed}: {collapsed:.0%}"
            )


if __name__ == "__main__":
    main()
