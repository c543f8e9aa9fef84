"""GenPO's iteration time against its compute floor: the network passes a GenPO PPO iteration cannot
avoid, run alone in a tight loop on the GenPO trainer's own modules, on batched MuJoCo Ant and HalfCheetah.

The floor calls the trainer's real flow (``flow.compute`` / ``flow.inverse``: its coupling's steps
with their mixing, on its velocity network, the observation and time projections computed once per
pass) and its critic:

- per env step: one sampling pass (2N velocity calls) and one critic call at batch num_envs without
  grad, plus the final bootstrap critic call; a separate env instance stepped steps_per_env times
  with random actions;
- per minibatch: the inverse pass with grad (the likelihood of stored dummy actions), a sampling pass
  with grad on ``sample_fraction`` of the minibatch (the compression penalty's fresh samples), one
  critic forward, then one backward through all of it.

No optimiser step, GAE, normalisers, loss terms or bookkeeping. GenPO (``tasks/<env>.gin``, the same
schedule bindings as the floor's sizes) and the floor are interleaved round by round after warm-up
rounds; each reports the median of its timed iterations. Prints ``GenPO/floor``: GenPO's seconds per
iteration over the floor's (>= 1).

    .venv/bin/python -m benchmarks.compute_floor                     # both envs, about 1 min on 2 busy cores
    .venv/bin/python -m benchmarks.compute_floor --envs halfcheetah --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.iteration_setup import (
    genpo_config,
    genpo_trainer,
    interleaved,
    parse_args,
    schedule_bindings,
    schedule_parser,
    schedule_text,
    spread,
    title,
)
from genpo.builders.env import build_env
from genpo.envs.base import BatchedEnv
from genpo.training.trainer import Trainer


class ComputeFloor:
    """GenPO's network passes alone (see the module docstring), on a genpo trainer's own flow and critic."""

    def __init__(self, trainer: Trainer, env: BatchedEnv, args: argparse.Namespace):
        flow = getattr(trainer.actor, "flow", None)
        if flow is None or not hasattr(flow, "inverse"):
            raise ValueError(f"the compute floor needs a GenPO actor with an invertible flow, got {type(trainer.actor).__name__}")
        self.flow = flow
        self.critic = trainer.critic
        compression = trainer.loss.compression
        self.fraction = compression.sample_fraction if compression is not None else 0.0
        self.env = env
        self.observation = env.reset()["observation"]
        self.args = args
        self.batch = args.num_envs * args.steps
        self.minibatch = self.batch // args.minibatches
        self.noise_dim = 2 * env.action_dim
        self.observations = torch.randn(self.batch, env.observation_dim)
        self.dummy_actions = torch.randn(self.batch, self.noise_dim)
        self.actions = torch.randn(args.steps, args.num_envs, env.action_dim)

    def run_iteration(self) -> None:
        with torch.no_grad():
            for step in range(self.args.steps):
                observation = self.observation
                self.flow.compute(observation, torch.randn(observation.shape[0], self.noise_dim))
                self.critic.compute(observation)
                self.observation = self.env.step(self.actions[step])["observation"]
            self.critic.compute(self.observation)
        count = max(1, round(self.fraction * self.minibatch)) if self.fraction > 0 else 0
        parameters = [*self.flow.parameters(), *self.critic.parameters()]
        for _ in range(self.args.epochs):
            permutation = torch.randperm(self.batch)
            for index in range(self.args.minibatches):
                rows = permutation[index * self.minibatch : (index + 1) * self.minibatch]
                observation = self.observations[rows]
                noise, log_det = self.flow.inverse(observation, self.dummy_actions[rows])
                total = noise.pow(2).mean() - log_det.mean()
                if count:
                    fresh, _ = self.flow.compute(observation[:count], torch.randn(count, self.noise_dim))
                    x, y = fresh.chunk(2, dim=-1)
                    total = total + (x - y).pow(2).mean()
                total = total + self.critic.compute(observation).pow(2).mean()
                total.backward()
                for parameter in parameters:
                    parameter.grad = None  # as the trainer's zero_grad(set_to_none=True)


def compare(env_name: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as root:
        genpo = genpo_trainer(Path(root) / "genpo", genpo_config(env_name), schedule_bindings(args))
        floor_env = build_env(env_name, args.num_envs, seed=0, num_threads=args.env_threads)
        floor = ComputeFloor(genpo, floor_env, args)
        times = interleaved({"genpo": genpo.run_iteration, "floor": floor.run_iteration}, args.warmup, args.repeats)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"== {title(env_name)} ({env_name}): {schedule_text(args)}, torch threads {torch.get_num_threads()}, "
        f"MuJoCo threads {args.env_threads}; median of {args.repeats} after {args.warmup} warm-up rounds =="
    )
    for name, value in median.items():
        print(f"{name}: {value:.3f} s/iteration ({spread(times[name])})")
    print(f"GenPO/floor: {median['genpo'] / median['floor']:.2f}x", flush=True)


def main() -> None:
    args = parse_args(schedule_parser(__doc__))
    for env_name in args.envs:
        compare(env_name, args)


if __name__ == "__main__":
    main()
