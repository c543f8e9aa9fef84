"""Cost model of a PPO iteration, GenPO against the Gaussian, at the task files' own sizes
(``tasks/<env>.gin`` and ``tasks/<env>_gaussian.gin``, nothing overridden): matmul FLOPs counted from
the built networks' ``nn.Linear`` shapes, each part timed on the trainer's real modules at the real
batch sizes, achieved GFLOP/s per part, and the CPU's measured matmul peak (fp32 and bf16, 1 and 2
threads) to read them against.

FLOPs: ``2 * in * out`` per sample per linear layer forward, twice that for its backward (input and
weight gradients); activations, the coupling's arithmetic and the optimiser are not counted (they
cost time, not matmul FLOPs). Per iteration, with B = num_envs x steps_per_env samples, E epochs,
M minibatches of B / M:

- collection: one policy pass per sample (GenPO: the observation projection, N time projections and
  2N velocity calls; Gaussian: the mean MLP) and one critic forward per sample, without grad;
- update, E x B samples in all: the likelihood pass (GenPO: the inverse flow, 2N velocity calls;
  Gaussian: the mean MLP) forward + backward, the compression pass (GenPO only: a fresh sampling pass
  on ``sample_fraction`` of each minibatch) forward + backward, the critic forward + backward.

Times: each part run alone in a loop on the trainer's own modules (collection: at batch num_envs,
``steps_per_env`` times; update: at the minibatch size, E x M times), median of ``--repeats``; beside
them the whole iteration (``trainer.run_iteration()``, median of ``--iterations`` after one warm-up),
whose remainder is the env, normalisers, GAE, optimiser, Python and TensorDict bookkeeping.

``--bf16`` adds the velocity network under bf16 autocast (``velocity_network.mlp.autocast_dtype =
'bfloat16'``, the MuJoCo tasks' default) against the same network in fp32 (``= None``), in the same
process: the update's flow passes at the minibatch size and whole iterations, interleaved.

    .venv/bin/python -m benchmarks.cost_model 2>/dev/null              # HalfCheetah, about 2 min
    .venv/bin/python -m benchmarks.cost_model --bf16 2>/dev/null       # plus the bf16 comparison
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks.iteration_setup import gaussian_config, genpo_config, genpo_trainer, interleaved, title
from genpo.training.trainer import Trainer

BF16_BINDING = "velocity_network.mlp.autocast_dtype = 'bfloat16'"
FP32_BINDING = "velocity_network.mlp.autocast_dtype = None"


def linear_flops(module: nn.Module) -> int:
    """Forward matmul FLOPs per sample of every ``nn.Linear`` inside ``module``."""
    return sum(2 * layer.in_features * layer.out_features for layer in module.modules() if isinstance(layer, nn.Linear))


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peaks(size: int, repeats: int) -> list[tuple[int, str, int, float]]:
    """(threads, dtype, n, GFLOP/s) of an n x n @ n x n torch.matmul, for n = ``size`` and 512."""
    threads_before = torch.get_num_threads()
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.bfloat16):
            for n in (size, 512):
                a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
                calls = repeats if n == size else 50 * repeats
                seconds = median_seconds(lambda: [a @ b for _ in range(calls)], 3) / calls
                rows.append((threads, str(dtype).removeprefix("torch."), n, 2 * n**3 / seconds / 1e9))
    torch.set_num_threads(threads_before)
    return rows


class Parts:
    """The network parts of one trainer's iteration: (name, FLOPs per iteration, call, calls per iteration)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        env, settings = trainer.env, trainer.settings
        self.num_envs, self.steps = env.num_envs, settings.steps_per_env
        self.batch = self.num_envs * self.steps
        self.updates = settings.epochs * settings.minibatches
        self.minibatch = self.batch // settings.minibatches
        self.observation_dim = env.observation_dim
        actor, critic = trainer.actor, trainer.critic
        compression = trainer.loss.compression
        self.fraction = compression.sample_fraction if compression is not None else 0.0
        self.compressed = max(1, round(self.fraction * self.minibatch)) if self.fraction > 0 else 0
        self.flow = getattr(actor, "flow", None)
        critic_flops = linear_flops(critic)
        if self.flow is not None:
            net = self.flow.velocity_network
            n = self.flow.num_steps
            per_call = linear_flops(net.half_projection) + linear_flops(net.trunk)
            per_time = linear_flops(net.time_embedding) + linear_flops(net.time_projection)
            self.velocity_call_flops = per_call
            # per sample: observation projection once, 2N velocity calls; the N step-time projections once per pass
            policy_per_sample = linear_flops(net.observation_projection) + 2 * n * per_call
            self.pass_overhead = n * per_time
        else:
            policy_per_sample = linear_flops(actor.mean)
            self.pass_overhead = 0
        self.policy_per_sample = policy_per_sample
        self.critic_per_sample = critic_flops
        self.noise_dim = 2 * env.action_dim
        self.observations = torch.randn(self.minibatch, env.observation_dim)
        self.actions = torch.randn(self.minibatch, self.noise_dim if self.flow is not None else env.action_dim)

    def policy_forward(self, batch: int) -> None:
        observation = self.observations[:batch]
        if self.flow is not None:
            return self.flow.compute(observation, torch.randn(batch, self.noise_dim))[0]
        return self.trainer.actor.mean(observation)

    def likelihood(self, batch: int) -> torch.Tensor:
        observation = self.observations[:batch]
        if self.flow is not None:
            noise, log_det = self.flow.inverse(observation, self.actions[:batch])
            return noise.pow(2).mean() - log_det.mean()
        return self.trainer.actor.mean(observation).pow(2).mean()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        for parameter in self.trainer.actor.parameters():
            parameter.grad = None
        for parameter in self.trainer.critic.parameters():
            parameter.grad = None

    def rows(self) -> list[tuple[str, float, Callable[[], object], int]]:
        """(part, matmul FLOPs per iteration, one call, calls per iteration)."""
        critic = self.trainer.critic
        num_envs, minibatch, compressed = self.num_envs, self.minibatch, self.compressed

        def collect_policy():
            with torch.no_grad():
                self.policy_forward(num_envs)

        def collect_critic():
            with torch.no_grad():
                critic.compute(self.observations[:num_envs])

        rows = [
            ("collect: policy pass (no grad)", self.steps * (num_envs * self.policy_per_sample + self.pass_overhead), collect_policy, self.steps),
            ("collect: critic (no grad)", (self.batch + num_envs) * self.critic_per_sample, collect_critic, self.steps + 1),
            (
                "update: likelihood pass fwd+bwd",
                3 * self.updates * (minibatch * self.policy_per_sample + self.pass_overhead),
                lambda: self.backward(self.likelihood(minibatch)),
                self.updates,
            ),
        ]
        if compressed:
            rows.append(
                (
                    "update: compression pass fwd+bwd",
                    3 * self.updates * (compressed * self.policy_per_sample + self.pass_overhead),
                    lambda: self.backward(self.policy_forward(compressed).pow(2).mean()),
                    self.updates,
                )
            )
        rows.append(
            (
                "update: critic fwd+bwd",
                3 * self.updates * minibatch * self.critic_per_sample,
                lambda: self.backward(critic.compute(self.observations[:minibatch]).pow(2).mean()),
                self.updates,
            )
        )
        return rows


def cost_table(name: str, trainer: Trainer, args: argparse.Namespace) -> tuple[float, float]:
    parts = Parts(trainer)
    iteration = median_seconds(trainer.run_iteration, args.iterations)
    settings = trainer.settings
    print(
        f"-- {name}: {parts.num_envs} envs x {parts.steps} steps = {parts.batch} samples, {settings.epochs} epochs x "
        f"{settings.minibatches} minibatches of {parts.minibatch}"
        + (f", compression on {parts.compressed} per minibatch" if parts.compressed else "")
        + f"; policy {parts.policy_per_sample / 1e6:.3f} MFLOP per sample forward"
        + (f" (velocity call {parts.velocity_call_flops / 1e3:.1f} kFLOP)" if parts.flow is not None else "")
        + f", critic {parts.critic_per_sample / 1e3:.1f} kFLOP --"
    )
    print(f"  {'part':<36s} {'GFLOP/it':>9s} {'ms/it':>9s} {'GFLOP/s':>8s}")
    total_flops = total_seconds = 0.0
    for part, flops, call, calls in parts.rows():
        seconds = median_seconds(call, args.repeats) * calls
        total_flops += flops
        total_seconds += seconds
        print(f"  {part:<36s} {flops / 1e9:9.2f} {seconds * 1000:9.1f} {flops / seconds / 1e9:8.1f}")
    print(f"  {'network parts together':<36s} {total_flops / 1e9:9.2f} {total_seconds * 1000:9.1f} {total_flops / total_seconds / 1e9:8.1f}")
    print(f"  {'whole iteration (run_iteration)':<36s} {total_flops / 1e9:9.2f} {iteration * 1000:9.1f} {total_flops / iteration / 1e9:8.1f}")
    print(f"  {'the rest (env, optimiser, bookkeeping)':<36s} {'':9s} {(iteration - total_seconds) * 1000:9.1f}")
    return total_flops, iteration


def bf16_comparison(env_name: str, root: Path, args: argparse.Namespace) -> None:
    fp32 = genpo_trainer(root / "fp32", genpo_config(env_name), [FP32_BINDING])
    bf16 = genpo_trainer(root / "bf16", genpo_config(env_name), [BF16_BINDING])
    parts = {"fp32": Parts(fp32), "bf16": Parts(bf16)}
    minibatch = parts["fp32"].minibatch

    def flow_update(part: Parts) -> Callable[[], None]:
        def call() -> None:  # the update's flow work per minibatch: inverse (log_prob) + compression pass, one backward
            loss = part.likelihood(minibatch) + part.policy_forward(part.compressed or minibatch).pow(2).mean()
            part.backward(loss)

        return call

    def sampling(part: Parts) -> Callable[[], None]:
        def call() -> None:
            with torch.no_grad():
                part.policy_forward(part.num_envs)

        return call

    for label, make in ((f"update flow passes at batch {minibatch} (inverse + compression, fwd+bwd)", flow_update), (f"sampling pass at batch {parts['fp32'].num_envs} (no grad)", sampling)):
        times = interleaved({name: make(part) for name, part in parts.items()}, 3, args.repeats * 3)
        median = {name: statistics.median(values) for name, values in times.items()}
        print(f"  {label}: fp32 {median['fp32'] * 1000:.1f} ms, bf16 {median['bf16'] * 1000:.1f} ms, bf16/fp32 {median['bf16'] / median['fp32']:.2f}x")
    times = interleaved({"fp32": fp32.run_iteration, "bf16": bf16.run_iteration}, 1, args.iterations)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"  whole iteration (interleaved, median of {args.iterations}): fp32 {median['fp32']:.3f} s, bf16 {median['bf16']:.3f} s, "
        f"bf16/fp32 {median['bf16'] / median['fp32']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["halfcheetah"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the parts and iterations")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per part (median)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (median, after one warm-up)")
    parser.add_argument("--peak-size", type=int, default=4096, help="n of the n x n matmul peak")
    parser.add_argument("--bf16", action="store_true", help="also compare the bf16 velocity network with fp32")
    args = parser.parse_args()
    print("== matmul peak: n x n @ n x n torch.matmul, median ==", flush=True)
    for threads, dtype, n, gflops in matmul_peaks(args.peak_size, 3):
        print(f"  threads {threads}, {dtype:<8s} n {n:5d}: {gflops:7.1f} GFLOP/s")
    torch.set_num_threads(args.threads)
    for env_name in args.envs:
        print(f"== {title(env_name)} ({env_name}): task defaults, torch threads {torch.get_num_threads()} ==")
        with tempfile.TemporaryDirectory() as root:
            root = Path(root)
            genpo_flops, genpo_time = cost_table("GenPO", genpo_trainer(root / "genpo", genpo_config(env_name), []), args)
            gaussian_flops, gaussian_time = cost_table("Gaussian", genpo_trainer(root / "gaussian", gaussian_config(env_name), []), args)
            print(
                f"GenPO/Gaussian: {genpo_flops / gaussian_flops:.1f}x the matmul FLOPs, {genpo_time / gaussian_time:.1f}x the time per iteration"
            )
            if args.bf16:
                print(f"-- GenPO velocity network bf16 (autocast) against fp32, torch threads {torch.get_num_threads()} --")
                bf16_comparison(env_name, root, args)


if __name__ == "__main__":
    main()
