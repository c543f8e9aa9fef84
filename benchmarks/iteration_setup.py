"""What the PPO-iteration benchmarks share (``throughput``, ``compute_floor``, ``iteration_profile``,
``variant_cost``): the schedule's command-line options, the gin bindings that impose it on every
genpo trainer, building a trainer, and interleaved timing. Not a tool itself."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import gin
import torch

from genpo.builders import new_experiment
from genpo.training.trainer import Trainer

ENV_TITLES = {"ant": "Ant", "halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}


def genpo_config(env_name: str) -> str:
    return f"tasks/{env_name}.gin"


def gaussian_config(env_name: str) -> str:
    return f"tasks/{env_name}_gaussian.gin"


def title(env_name: str) -> str:
    return ENV_TITLES.get(env_name, env_name)


def schedule_parser(description: str, envs: tuple[str, ...] = ("ant", "halfcheetah")) -> argparse.ArgumentParser:
    """The options every iteration benchmark takes (env size, schedule, widths, rounds, threads)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(envs), help="HalfCheetah last: the headline")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32, help="steps per env per iteration")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median or mean reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--env-threads", type=int, default=1, help="MuJoCo batch threads")
    parser.add_argument("--bind", nargs="*", default=[], help="extra gin bindings for every genpo trainer")
    return parser


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def schedule_bindings(args: argparse.Namespace) -> list[str]:
    """Bindings shared by every genpo contender: env size, schedule, network widths, seed, ``--bind``."""
    hidden = tuple(args.hidden)
    return [
        f"genpo.build_env.num_envs = {args.num_envs}",
        f"genpo.build_env.num_threads = {args.env_threads}",
        f"genpo.trainer.steps_per_env = {args.steps}",
        f"genpo.trainer.epochs = {args.epochs}",
        f"genpo.trainer.minibatches = {args.minibatches}",
        f"velocity_network.mlp.hidden_sizes = {hidden}",
        f"critic.mlp.hidden_sizes = {hidden}",
        f"actor.gaussian.hidden_sizes = {hidden}",
        "genpo.run.seed = 0",
        *args.bind,
    ]


def schedule_text(args: argparse.Namespace) -> str:
    return (
        f"{args.num_envs} envs x {args.steps} steps, {args.epochs} epochs x {args.minibatches} minibatches, "
        f"hidden {tuple(args.hidden)}"
    )


def genpo_trainer(run_dir: Path, config: str, bindings: list[str]) -> Trainer:
    """A genpo trainer built from ``config`` and ``bindings`` into ``run_dir`` (gin cleared before and after),
    with torch's thread count pinned at the benchmark's (genpo's 'auto' would re-choose it)."""
    gin.clear_config()
    trainer, _ = new_experiment(run_dir, [config], [f"genpo.run.num_threads = {torch.get_num_threads()}", *bindings])
    gin.clear_config()
    return trainer


def interleaved(
    contenders: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    extra: dict[str, tuple[Callable[[], object], int]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, round-robin: ``warmup`` untimed rounds, then ``repeats``
    timed ones, so that load from other processes slows all contenders alike. ``extra`` contenders
    (name -> (call, timed calls)) join the first timed rounds only, in the middle of the round,
    without warm-up."""
    extra = extra or {}
    times: dict[str, list[float]] = {name: [] for name in (*contenders, *extra)}
    for round_index in range(warmup + repeats):
        timed = round_index >= warmup
        names = list(contenders)
        for name, (_, calls) in extra.items():
            if timed and round_index - warmup < calls:
                names.insert(len(names) // 2, name)
        for name in names:
            call = contenders[name] if name in contenders else extra[name][0]
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            if timed:
                times[name].append(elapsed)
    return times


def spread(values: list[float]) -> str:
    return f"min {min(values):.3f}, max {max(values):.3f}, n {len(values)}"
