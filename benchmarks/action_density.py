"""2-D histograms of trained policies' actions at chosen states (the multi-goal and aliased tasks).

Loads each run with ``genpo.load_policy(run, noise="random")``, samples many actions at each state and draws
one histogram per (run, state): rows are runs, columns states (log colour scale, raw actions as the env
receives them). Default states are the env's own: Soft Q-Learning's plotter states (-2.5, 0), (0, 0),
(2.5, 2.5) on ``multigoal``, the one observation on ``aliased`` (with its two reward discs drawn).

    python -m benchmarks.action_density runs/sweeps/study/aliased/genpo/seed0 runs/sweeps/study/aliased/gaussian/seed0
    python -m benchmarks.action_density RUN --states 0,0 -2.5,0 --out density.png --checkpoint best
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib
import torch

import genpo
from genpo.envs.aliased import LEFT_CENTRE, RADIUS, RIGHT_CENTRE
from genpo.training.run_directory import read_config

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

DEFAULT_STATES = {"multigoal": [(-2.5, 0.0), (0.0, 0.0), (2.5, 2.5)], "aliased": [(1.0,)]}
ENV_NAME = re.compile(r"^(?:genpo\.)?build_env\.name\s*=\s*'([^']+)'", re.MULTILINE)


def env_name(run: Path) -> str:
    """The run's env, from its config.gin (the last binding wins, as in gin)."""
    config, _ = read_config(run)
    names = ENV_NAME.findall(config.read_text())
    if not names:
        raise ValueError(f"action_density: {run} binds no genpo.build_env.name")
    return names[-1]


def sample_actions(run: Path, state: tuple[float, ...], samples: int, checkpoint: str, seed: int) -> torch.Tensor:
    """``samples`` actions [samples, 2] of the run's policy at ``state`` (fresh base noise each)."""
    policy = genpo.load_policy(run, noise="random", checkpoint=checkpoint, seed=seed)
    if policy.action_dim != 2 or len(state) != policy.observation_dim:
        raise ValueError(
            f"action_density: {run} has observation_dim {policy.observation_dim} and action_dim {policy.action_dim}; "
            f"state {state} needs {len(state)} and the plot needs 2"
        )
    return policy(torch.tensor([state], dtype=torch.float32).expand(samples, len(state)))


def mode_shares(env: str, actions: torch.Tensor) -> str:
    """A one-line summary of which modes the actions use."""
    if env == "aliased":
        right = ((actions - torch.tensor(RIGHT_CENTRE)).norm(dim=-1) < RADIUS).float().mean().item()
        left = ((actions - torch.tensor(LEFT_CENTRE)).norm(dim=-1) < RADIUS).float().mean().item()
        return f"right disc {right:.0%}, left disc {left:.0%}"
    axis = actions.abs().argmax(dim=-1)
    positive = actions.gather(-1, axis[:, None])[:, 0] > 0
    shares = {name: ((axis == a) & (positive == p)).float().mean().item() for name, a, p in (("E", 0, True), ("W", 0, False), ("N", 1, True), ("S", 1, False))}
    return " ".join(f"{name} {share:.0%}" for name, share in shares.items())


def draw(axis, env: str, actions: torch.Tensor, title: str, extent: float) -> None:
    axis.hist2d(actions[:, 0].numpy(), actions[:, 1].numpy(), bins=80, range=[[-extent, extent]] * 2, norm=LogNorm(), cmap="viridis")
    if env == "aliased":
        for centre in (RIGHT_CENTRE, LEFT_CENTRE):
            axis.add_patch(Circle(centre, RADIUS, fill=False, color="white", linewidth=0.8))
    else:
        axis.add_patch(plt.Rectangle((-1, -1), 2, 2, fill=False, color="white", linewidth=0.5))  # the env's clip box
    axis.set_title(f"{title}\n{mode_shares(env, actions)}", fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--states", nargs="*", default=None, help="comma-separated observations, e.g. 0,0 -2.5,0")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extent", type=float, default=2.5, help="half-width of the plotted action square")
    parser.add_argument("--out", default="action_density.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    envs = [env_name(run) for run in args.runs]
    if args.states:
        states = [tuple(float(value) for value in text.split(",")) for text in args.states]
    else:
        states = DEFAULT_STATES.get(envs[0])
        if states is None:
            parser.error(f"no default states for env {envs[0]!r}; pass --states")
    figure, axes = plt.subplots(len(args.runs), len(states), figsize=(3.6 * len(states), 3.6 * len(args.runs)), squeeze=False)
    for row, (run, env) in enumerate(zip(args.runs, envs)):
        for column, state in enumerate(states):
            actions = sample_actions(run, state, args.samples, args.checkpoint, args.seed)
            title = f"{run.parent.name}/{run.name} at s = {state}"
            draw(axes[row, column], env, actions, title, args.extent)
            print(f"{run} at {state}: {mode_shares(env, actions)}")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
