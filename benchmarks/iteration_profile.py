"""Where a PPO iteration goes: section times of GenPO (or Gaussian) iterations on batched MuJoCo
HalfCheetah, then the self CPU time by op class over one more iteration under ``torch.profiler``.

Nothing is patched. The phases come from the trainer's own metrics row (``collection_time``, and
``update_time``, which includes GAE); the sections inside them from torch's public hooks:

- ``collect: policy sampling``: the actor's forward (the collector calls ``actor(td)``);
- ``GAE``: the advantage module's forward;
- ``update: loss forward``: the loss module's forward, of which ``compression pass`` is the
  compression penalty's forward (fresh samples with grad) and the rest the actor's ``log_prob``
  (GenPO: the inverse pass), the critic and the loss terms;
- ``update: lr rule, backward, grad-norm clipping``: from the end of the loss forward to the
  optimiser step (optimiser step pre-hook);
- ``update: optimiser step``: the optimiser's step pre- and post-hooks.

Beside them, for reference, the env alone: a separate instance stepped steps_per_env times with
random actions, timed in the same rounds.

    .venv/bin/python -m benchmarks.iteration_profile                # GenPO on HalfCheetah
    .venv/bin/python -m benchmarks.iteration_profile --actor gaussian
    .venv/bin/python -m benchmarks.iteration_profile --envs ant --actor gaussian
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.iteration_setup import (
    gaussian_config,
    genpo_config,
    genpo_trainer,
    parse_args,
    schedule_bindings,
    schedule_parser,
    title,
)
from genpo.builders.env import build_env
from genpo.training.trainer import Trainer

LOSS = "update: loss forward"
COMPRESSION = "update: compression pass (fwd)"
BACKWARD = "update: lr rule, backward, grad-norm clipping"
OPTIMISER = "update: optimiser step"
SAMPLING = "collect: policy sampling"
GAE = "GAE"


class SectionTimer:
    """Seconds inside module forwards and optimiser steps, through torch's public hooks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.handles: list = []
        self.started: dict[str, float] = {}
        self.loss_end: float | None = None

    def module(self, module: torch.nn.Module, label: str) -> None:
        def before(_module, _args) -> None:
            self.started[label] = time.perf_counter()

        def after(_module, _args, _output) -> None:
            now = time.perf_counter()
            self.seconds[label] += now - self.started.pop(label)
            if label == LOSS:
                self.loss_end = now

        self.handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        def before(_optimizer, _args, _kwargs) -> None:
            now = time.perf_counter()
            if self.loss_end is not None:
                self.seconds[BACKWARD] += now - self.loss_end
                self.loss_end = None
            self.started[OPTIMISER] = now

        def after(_optimizer, _args, _kwargs) -> None:
            self.seconds[OPTIMISER] += time.perf_counter() - self.started.pop(OPTIMISER)

        self.handles += [optimizer.register_step_pre_hook(before), optimizer.register_step_post_hook(after)]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def timed_sections(trainer: Trainer) -> SectionTimer:
    timer = SectionTimer()
    timer.module(trainer.actor, SAMPLING)
    timer.module(trainer.advantage, GAE)
    timer.module(trainer.loss, LOSS)
    if trainer.loss.compression is not None:
        timer.module(trainer.loss.compression, COMPRESSION)
    timer.optimizer(trainer.optimizer)
    return timer


def profile(args: argparse.Namespace) -> None:
    env_name = args.envs[-1]
    config = genpo_config(env_name) if args.actor == "genpo" else gaussian_config(env_name)
    with tempfile.TemporaryDirectory() as root:
        trainer = genpo_trainer(Path(root), config, schedule_bindings(args))
        env = build_env(env_name, args.num_envs, seed=0, num_threads=args.env_threads)
        env.reset()
        actions = torch.randn(args.steps, args.num_envs, env.action_dim)
        for _ in range(args.warmup):
            trainer.run_iteration()
        timer = timed_sections(trainer)
        rows, env_seconds = [], 0.0
        for _ in range(args.repeats):
            rows.append(trainer.run_iteration())
            start = time.perf_counter()
            for step in range(args.steps):
                env.step(actions[step])
            env_seconds += time.perf_counter() - start
        timer.remove()
        print_sections(args, env_name, rows, timer.seconds, env_seconds / args.repeats)
        print_op_profile(trainer)


def print_sections(args, env_name: str, rows: list[dict], seconds: dict[str, float], env_seconds: float) -> None:
    count = len(rows)
    per = {name: value / count for name, value in seconds.items()}
    total = sum(row["wall_time"] for row in rows) / count
    collection = sum(row["collection_time"] for row in rows) / count
    gae = per.get(GAE, 0.0)
    update = sum(row["update_time"] for row in rows) / count - gae
    sampling, loss = per.get(SAMPLING, 0.0), per.get(LOSS, 0.0)
    compression = per.get(COMPRESSION, 0.0)
    steps = per.get(BACKWARD, 0.0) + per.get(OPTIMISER, 0.0)
    sections = [  # (depth, name, seconds)
        (0, "collection", collection),
        (1, SAMPLING, sampling),
        (1, "collect: the rest (critic, env step, normalisers, TensorDicts, episodes)", collection - sampling),
        (0, GAE, gae),
        (0, "update", update),
        (1, LOSS, loss),
        *([(2, COMPRESSION, compression)] if COMPRESSION in per else []),
        (2, "update: loss forward, the rest (log_prob / inverse pass, critic, loss terms)", loss - compression),
        (1, BACKWARD, per.get(BACKWARD, 0.0)),
        (1, OPTIMISER, per.get(OPTIMISER, 0.0)),
        (1, "update: the rest (minibatch indexing, .item() metrics)", update - loss - steps),
    ]
    print(
        f"== {args.actor} iteration profile, {title(env_name)}: {args.num_envs} envs x {args.steps} steps, "
        f"{args.epochs} x {args.minibatches} minibatches, hidden {tuple(args.hidden)}, mean of {count} "
        f"iterations after {args.warmup}; {total * 1000:.0f} ms per iteration =="
    )
    for depth, name, value in sections:
        print(f"{'  ' * depth}{name:<{80 - 2 * depth}s} {value * 1000:8.1f} ms {100 * value / total:5.1f}%")
    print(f"reference: the env alone, {args.steps} steps of a separate instance with random actions: {env_seconds * 1000:.1f} ms")


OP_CLASSES = {
    "matmul (mm, addmm)": ("aten::mm", "aten::addmm"),
    "Mish: softplus, tanh and their backward": (
        "aten::softplus",
        "aten::tanh",
        "aten::softplus_backward",
        "aten::tanh_backward",
    ),
    "ELU and its backward": ("aten::elu", "aten::elu_backward"),
    "elementwise mul (Mish's x * tanh, its backward, coupling)": ("aten::mul",),
}


def print_op_profile(trainer: Trainer) -> None:
    """Self CPU time by op class over one more iteration under ``torch.profiler``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as profiler:
        trainer.run_iteration()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    print("-- self CPU time by op class, one iteration under torch.profiler --")
    classified = 0.0
    for name, ops in OP_CLASSES.items():
        value = sum(event.self_cpu_time_total for event in events if event.key in ops)
        classified += value
        print(f"  {name:<64s} {100 * value / total:5.1f}%")
    print(f"  {'everything else':<64s} {100 * (total - classified) / total:5.1f}%")


def main() -> None:
    parser = schedule_parser(__doc__, envs=("halfcheetah",))
    parser.add_argument("--actor", choices=("genpo", "gaussian"), default="genpo", help="tasks/<env>.gin or tasks/<env>_gaussian.gin")
    profile(parse_args(parser))


if __name__ == "__main__":
    main()
