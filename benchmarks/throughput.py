"""Training throughput per PPO iteration: genpo (Gaussian, GenPO, GenPO with a numeric log-det) against
rsl_rl's ``OnPolicyRunner`` and against GenPO's own compute floor, on batched MuJoCo Ant and HalfCheetah.

Every contender runs in this one process on its own instance of the same env (same seed, same MuJoCo
thread count), with the same num_envs, steps per env, epochs x minibatches and hidden sizes (256, 256);
the genpo contenders are built from ``tasks/<env>.gin`` / ``tasks/<env>_gaussian.gin`` with those
settings overridden by bindings.
Contenders are interleaved round by round (A, B, C, D, A, B, ...) after warm-up rounds, and each
reports the median of its timed iterations, so that load from other processes on a shared machine
slows all of them alike.

- ``genpo-gaussian``: ``tasks/<env>_gaussian.gin`` built with ``new_experiment`` into a temporary
  run directory, timed with ``trainer.run_iteration()``.
- ``rsl_rl``: rsl-rl-lib 5.x ``OnPolicyRunner`` configured from the ``genpo-gaussian`` trainer by
  ``genpo.baselines.rsl_rl.runner_config`` (so the two share every setting rsl_rl has), on rsl_rl's
  ``VecEnv`` shape over the same ``BatchedEnv``; timed with ``runner.learn(num_learning_iterations=1)``.
- ``genpo``: ``tasks/<env>.gin`` (GenPO, N = 5, p = 0.9, Mish, compression on every sample).
- ``floor``: GenPO's compute floor. The same velocity network and critic (the genpo trainer's modules),
  run alone in a tight loop: per env step 2N velocity calls and 1 critic call at batch num_envs without
  grad (plus the final bootstrap critic call); per minibatch 2N velocity calls with grad for the
  inverse pass, 2N for the compression pass on ``sample_fraction`` of the minibatch, 1 critic forward,
  then one backward through all of it; plus the time of a separate env instance stepped
  steps_per_env times with random actions. No optimiser step, GAE, normalisers or bookkeeping. The
  velocity calls get the observation and time projections precomputed, as GenPO's flow does.
- ``numeric-logdet``: GenPO with ``actor.genpo.flow = @flow.dummy_action_numeric_log_det`` (the reference
  code's ``vmap(jacrev)`` + ``slogdet`` at every env step and update); run for ``--numeric-iterations``
  timed iterations (default 1, no warm-up) inside the first timed rounds, since one iteration takes
  tens of seconds.

Ratios (one set per env, HalfCheetah last):

- ``Gaussian/rsl_rl``, ``GenPO/numeric-logdet``, ``GenPO/rsl_rl``: speed ratio, the second contender's
  seconds per iteration over the first's (> 1: the first is faster);
- ``GenPO/floor``: time ratio, GenPO's seconds per iteration over the floor's (>= 1).

    .venv/bin/python benchmarks/throughput.py                       # both envs, 2.5 min on 2 busy cores
    .venv/bin/python benchmarks/throughput.py --envs halfcheetah --repeats 3 --numeric-iterations 0
    .venv/bin/python benchmarks/throughput.py --profile             # GenPO iteration breakdown, HalfCheetah
    .venv/bin/python benchmarks/throughput.py --profile gaussian    # the same for the Gaussian baseline
    .venv/bin/python benchmarks/throughput.py --sample-fractions 1.0 0.5 0.25 0   # compression cost

``--profile`` (on the last of ``--envs``) times the sections of GenPO iterations (collection: policy
sampling, critic, env step, normaliser; GAE; update: log-prob inversion, compression pass, critic,
backward, clipping, optimiser step, minibatch indexing and metrics) by wrapping the trainer's parts with
``time.perf_counter``, then gives the self CPU time by op class over one more iteration under
``torch.profiler``.
``--sample-fractions`` times GenPO iterations for each ``compression.squared.sample_fraction``
(0: compression off; interleaved, medians).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gin
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
from genpo.baselines import rsl_rl  # noqa: E402
from genpo.builders import new_experiment  # noqa: E402
from genpo.builders.env import build_env  # noqa: E402
from genpo.envs.base import BatchedEnv  # noqa: E402
from genpo.training.trainer import Trainer  # noqa: E402

ENV_TITLES = {"ant": "Ant", "halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}


def genpo_config(env_name: str) -> str:
    return f"tasks/{env_name}.gin"


def gaussian_config(env_name: str) -> str:
    return f"tasks/{env_name}_gaussian.gin"


# ------------------------------------------------------------------------------------------ genpo runs
def schedule_bindings(args: argparse.Namespace) -> list[str]:
    """Bindings shared by every genpo contender: env size, schedule, network widths, seed."""
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
    ]


def genpo_trainer(run_dir: Path, config: str, bindings: list[str]) -> Trainer:
    gin.clear_config()
    trainer, _ = new_experiment(run_dir, [config], bindings)
    gin.clear_config()
    return trainer


# ------------------------------------------------------------------------------------------ the floor
class ComputeFloor:
    """GenPO's network passes alone (see the module docstring), on the genpo trainer's own modules."""

    def __init__(self, trainer: Trainer, env: BatchedEnv, args: argparse.Namespace):
        flow = trainer.actor.flow
        self.net = flow.velocity_network
        self.critic = trainer.critic
        self.num_steps = flow.num_steps
        self.dt = flow.dt
        compression = trainer.loss.compression
        self.fraction = compression.sample_fraction if compression is not None else 0.0
        self.env = env
        self.observation = env.reset()["observation"]
        self.args = args
        self.batch = args.num_envs * args.steps
        self.minibatch = self.batch // args.minibatches
        self.observations = torch.randn(self.batch, env.observation_dim)
        self.halves = torch.randn(self.batch, 2 * env.action_dim)
        self.actions = torch.randn(args.steps, args.num_envs, env.action_dim)

    def _flow_pass(self, observation: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
        """2N velocity calls, chained so that the backward runs through every one of them."""
        context, times = self.net.step_contexts(observation, self.num_steps)
        x, y = half.chunk(2, dim=-1)
        for step in range(self.num_steps):
            step_context = context + times[step]
            x = x + self.dt * self.net.velocity(y, step_context)
            y = y + self.dt * self.net.velocity(x, step_context)
        return torch.cat([x, y], dim=-1)

    def run_iteration(self) -> None:
        with torch.no_grad():
            for step in range(self.args.steps):
                observation = self.observation
                self._flow_pass(observation, torch.randn(observation.shape[0], self.halves.shape[1]))
                self.critic.compute(observation)
                self.observation = self.env.step(self.actions[step])["observation"]
            self.critic.compute(self.observation)
        count = max(1, round(self.fraction * self.minibatch)) if self.fraction > 0 else 0
        for _ in range(self.args.epochs):
            permutation = torch.randperm(self.batch)
            for index in range(self.args.minibatches):
                rows = permutation[index * self.minibatch : (index + 1) * self.minibatch]
                observation, half = self.observations[rows], self.halves[rows]
                total = self._flow_pass(observation, half).pow(2).mean()
                if count:
                    total = total + self._flow_pass(observation[:count], torch.randn_like(half[:count])).pow(2).mean()
                total = total + self.critic.compute(observation).pow(2).mean()
                total.backward()
                for parameter in (*self.net.parameters(), *self.critic.parameters()):
                    parameter.grad = None  # as the trainer's zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------------------ timing
def interleaved(
    contenders: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    extra: dict[str, tuple[Callable[[], object], int]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, round-robin: ``warmup`` untimed rounds, then ``repeats``
    timed ones. ``extra`` contenders (name -> (call, timed calls)) join the first timed rounds only,
    in the middle of the round, without warm-up."""
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


def throughput(env_name: str, args: argparse.Namespace) -> None:
    common = schedule_bindings(args)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        gaussian = genpo_trainer(root / "gaussian", gaussian_config(env_name), common)
        genpo = genpo_trainer(root / "genpo", genpo_config(env_name), common)
        rsl_env = build_env(env_name, args.num_envs, seed=0, num_threads=args.env_threads)
        runner = rsl_rl.build_runner(rsl_env, rsl_rl.runner_config(gaussian))
        floor_env = build_env(env_name, args.num_envs, seed=0, num_threads=args.env_threads)
        floor = ComputeFloor(genpo, floor_env, args)
        contenders = {
            "genpo-gaussian": gaussian.run_iteration,
            "rsl_rl": lambda: rsl_rl.run_iteration(runner),
            "genpo": genpo.run_iteration,
            "floor": floor.run_iteration,
        }
        extra = {}
        if args.numeric_iterations > 0:
            numeric_bindings = [*common, "actor.genpo.flow = @flow.dummy_action_numeric_log_det"]
            numeric = genpo_trainer(root / "numeric", genpo_config(env_name), numeric_bindings)
            extra["numeric-logdet"] = (numeric.run_iteration, args.numeric_iterations)
        times = interleaved(contenders, args.warmup, args.repeats, extra)
    median = {name: statistics.median(values) for name, values in times.items() if values}
    title = ENV_TITLES.get(env_name, env_name)
    print(
        f"== {title} ({env_name}): {args.num_envs} envs x {args.steps} steps, {args.epochs} epochs x "
        f"{args.minibatches} minibatches, hidden {tuple(args.hidden)}, torch threads {torch.get_num_threads()}, "
        f"MuJoCo threads {args.env_threads}; median of {args.repeats} after {args.warmup} warm-up rounds =="
    )
    for name, value in median.items():
        spread = f"min {min(times[name]):.3f}, max {max(times[name]):.3f}, n {len(times[name])}"
        print(f"{name}: {value:.3f} s/iteration ({spread})")
    print(f"Gaussian/rsl_rl: {median['rsl_rl'] / median['genpo-gaussian']:.2f}x")
    print(f"GenPO/floor: {median['genpo'] / median['floor']:.2f}x")
    if "numeric-logdet" in median:
        print(f"GenPO/numeric-logdet: {median['numeric-logdet'] / median['genpo']:.1f}x")
    print(f"GenPO/rsl_rl: {median['rsl_rl'] / median['genpo']:.2f}x", flush=True)


# ------------------------------------------------------------------------------------------ profile
def profile(args: argparse.Namespace) -> None:
    """Section times of GenPO (or Gaussian) iterations on the last env, by wrapping the trainer's parts."""
    env_name = args.envs[-1]
    with tempfile.TemporaryDirectory() as root:
        config = genpo_config(env_name) if args.profile == "genpo" else gaussian_config(env_name)
        trainer = genpo_trainer(Path(root), config, [*schedule_bindings(args), *args.bind])
        sections: dict[str, float] = collections.defaultdict(float)
        stack: list[str] = []

        def wrap(owner, attribute: str, label: str, nested_label: str | None = None) -> None:
            original = getattr(owner, attribute)

            def timed(*a, **k):
                name = nested_label if nested_label is not None and "update" in stack else label
                stack.append(name)
                start = time.perf_counter()
                try:
                    return original(*a, **k)
                finally:
                    sections[name] += time.perf_counter() - start
                    stack.pop()

            setattr(owner, attribute, timed)

        collector = trainer.collector
        wrap(trainer.actor, "sample", "collect: policy sampling", "update: compression pass (fwd)")
        wrap(trainer.critic, "compute", "collect: critic", "update: critic (fwd)")
        wrap(trainer.env, "step", "collect: env step")
        wrap(collector, "_update_normalizers", "collect: normaliser update")
        wrap(collector, "_normalized", "collect: normalise")
        wrap(collector, "collect", "collect (total)")
        wrap(trainer, "advantage", "GAE")
        log_prob_label = "update: actor log_prob, GenPO: inverse pass (fwd)"
        wrap(trainer.actor, "log_prob", log_prob_label, log_prob_label)
        wrap(trainer.loss, "forward", "update: loss (total fwd)")
        wrap(trainer.optimizer, "step", "update: optimiser step")
        wrap(trainer, "update", "update")
        # backward and clipping are called through torch: patch the functions the trainer calls
        original_backward = torch.Tensor.backward
        original_clip = torch.nn.utils.clip_grad_norm_

        def backward(tensor, *a, **k):
            start = time.perf_counter()
            original_backward(tensor, *a, **k)
            sections["update: backward"] += time.perf_counter() - start

        def clip(*a, **k):
            start = time.perf_counter()
            result = original_clip(*a, **k)
            sections["update: grad-norm clipping"] += time.perf_counter() - start
            return result

        torch.Tensor.backward = backward
        torch.nn.utils.clip_grad_norm_ = clip
        try:
            for _ in range(args.warmup):
                trainer.run_iteration()
            sections.clear()
            start = time.perf_counter()
            for _ in range(args.repeats):
                trainer.run_iteration()
            total = (time.perf_counter() - start) / args.repeats
        finally:
            torch.Tensor.backward = original_backward
            torch.nn.utils.clip_grad_norm_ = original_clip
    per = {name: value / args.repeats for name, value in sections.items()}
    collection = per.pop("collect (total)")
    update = per.pop("update")
    loss = per.pop("update: loss (total fwd)")
    collect_parts = {k: v for k, v in per.items() if k.startswith("collect:")}
    collect_parts["collect: other (TensorDicts, checks, reward scaling, episodes)"] = collection - sum(
        collect_parts.values()
    )
    forward_parts = {k: v for k, v in per.items() if k.startswith("update:") and k.endswith("(fwd)")}
    forward_parts["update: other loss terms (fwd)"] = loss - sum(forward_parts.values())
    step_names = ("update: backward", "update: grad-norm clipping", "update: optimiser step")
    step_parts = {name: per.get(name, 0.0) for name in step_names}
    other_update = update - loss - sum(step_parts.values())
    step_parts["update: other (minibatch indexing, lr rule, .item() metrics)"] = other_update
    update_parts = {**forward_parts, **step_parts}
    rest = total - collection - update - per.get("GAE", 0.0)
    print(
        f"== {args.profile} iteration profile, {ENV_TITLES.get(env_name, env_name)}: "
        f"{args.num_envs} envs x {args.steps} steps, "
        f"{args.epochs} x {args.minibatches} minibatches, hidden {tuple(args.hidden)}, mean of {args.repeats} "
        f"iterations after {args.warmup}; {total * 1000:.0f} ms per iteration =="
    )
    rows = [("collection", collection), *collect_parts.items(), ("GAE", per.get("GAE", 0.0)), ("update", update)]
    rows += [*update_parts.items(), ("other (iteration metrics)", rest)]
    for name, value in rows:
        indent = "  " if ":" in name else ""
        print(f"{indent}{name:<66s} {value * 1000:8.1f} ms {100 * value / total:5.1f}%")
    print_op_profile(trainer)


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


def sample_fractions(args: argparse.Namespace) -> None:
    """GenPO iteration time per ``compression.squared.sample_fraction`` (0: compression off), interleaved."""
    env_name = args.envs[-1]

    def bindings(fraction: float) -> list[str]:
        if fraction == 0:
            return ["loss.ppo.compression_coefficient = 0.0"]
        return [f"compression.squared.sample_fraction = {fraction}"]

    with tempfile.TemporaryDirectory() as root:
        trainers = {
            str(fraction): genpo_trainer(
                Path(root) / str(fraction),
                genpo_config(env_name),
                [*schedule_bindings(args), *bindings(fraction), *args.bind],
            )
            for fraction in args.sample_fractions
        }
        calls = {name: trainer.run_iteration for name, trainer in trainers.items()}
        times = interleaved(calls, args.warmup, args.repeats)
    first = str(args.sample_fractions[0])
    reference = statistics.median(times[first])
    print(
        f"== GenPO on {ENV_TITLES.get(env_name, env_name)} by compression.squared.sample_fraction "
        "(0: compression off), "
        f"{args.num_envs} envs x {args.steps} steps, {args.epochs} x {args.minibatches} minibatches, "
        f"median of {args.repeats} after {args.warmup} =="
    )
    for name in trainers:
        value = statistics.median(times[name])
        print(f"sample_fraction {name}: {value:.3f} s/iteration, {value / reference:.2f}x of {first}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["ant", "halfcheetah"], help="HalfCheetah last: the headline")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32, help="steps per env per iteration")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--numeric-iterations", type=int, default=1, help="timed numeric-log-det iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--env-threads", type=int, default=1, help="MuJoCo batch threads")
    parser.add_argument(
        "--profile", nargs="?", const="genpo", choices=("genpo", "gaussian"), help="section profile instead (last env)"
    )
    parser.add_argument("--sample-fractions", type=float, nargs="+", help="time GenPO per compression fraction")
    parser.add_argument("--bind", nargs="*", default=[], help="extra gin bindings for --profile/--sample-fractions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        profile(args)
    elif args.sample_fractions:
        sample_fractions(args)
    else:
        for env_name in args.envs:
            throughput(env_name, args)


if __name__ == "__main__":
    main()
