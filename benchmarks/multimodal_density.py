"""Action density at the two-goal task's start state: GenPO flow vs Gaussian, after equal training.

Trains both policies (same seed, same budget) and, early in training and at the end, samples many
actions at the start state (the origin) from each; draws their 2-D histograms (raw, unclipped
actions, log colour scale) with the mode statistics of the last iteration (``info/mode``: +1 upper
goal, -1 lower goal, so a mean near 0 with all goals reached means both modes are in use).

    python -m benchmarks.multimodal_density --out docs/results/two_goals_density.png
"""

from __future__ import annotations

import argparse
import tempfile

import gin
import matplotlib
import torch
from tensordict import TensorDict

from genpo.builders import new_experiment
from genpo.training.run_logger import read_metrics

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CONFIGS = {"GenPO (flow)": "tasks/two_goals.gin", "Gaussian": "tasks/two_goals_gaussian.gin"}


@torch.no_grad()
def start_state_actions(trainer, samples: int) -> torch.Tensor:
    """Raw policy actions at the origin (the env clips them to [-1, 1])."""
    observation = trainer.observation_normalizer.compute(torch.zeros(samples, trainer.env.observation_dim))
    return trainer.actor(TensorDict(observation=observation, batch_size=[samples]))["action"]


def draw(axis, actions: torch.Tensor, title: str) -> None:
    from matplotlib.colors import LogNorm

    upper = (actions[:, 1] > 0).float().mean().item()
    axis.hist2d(actions[:, 0].numpy(), actions[:, 1].numpy(), bins=80, range=[[-3, 3], [-3, 3]], norm=LogNorm(), cmap="viridis")
    axis.axhline(0.0, color="white", linewidth=0.5)
    axis.set_title(f"{title}\nupward actions at start: {upper:.0%}", fontsize=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--early-iterations", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--out", default="two_goals_density.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    figure, axes = plt.subplots(2, len(CONFIGS), figsize=(10, 9), sharex=True, sharey=True)
    for column, (name, config) in enumerate(CONFIGS.items()):
        gin.clear_config()
        with tempfile.TemporaryDirectory() as run_dir:
            trainer, _ = new_experiment(run_dir, [config], [f"genpo.run.seed = {args.seed}", "genpo.run.num_threads = 1"])
            trainer.train(args.early_iterations, quiet=True)
            draw(axes[0, column], start_state_actions(trainer, args.samples), f"{name}, iteration {trainer.iteration}")
            trainer.train(args.iterations - args.early_iterations, quiet=True)
            last = read_metrics(trainer.run_dir / "metrics.csv")[-1]
        actions = start_state_actions(trainer, args.samples)
        stats = f"return {last['return_mean']:.2f}, goal {last['info/goal_reached']:.2f}, mode mean {last['info/mode']:+.2f}"
        draw(axes[1, column], actions, f"{name}, iteration {trainer.iteration}: {stats}")
        axes[1, column].set_xlabel("action x (toward the wall)")
        print(f"{name}: {stats}, upward actions at start {(actions[:, 1] > 0).float().mean().item():.3f}")
    for row in axes:
        row[0].set_ylabel("action y (+ upper gap, - lower gap)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
