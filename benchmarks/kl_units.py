"""In which units does GenPO's trust region act? The KL of the env action next to the KL of the doubled
action (x, y) that drives the adaptive lr by default (``kl_estimator.k1``), measured along GenPO training.

By the chain rule KL(doubled) = KL(action) + E_a[KL(hidden half | a)] >= KL(action), so a target on the
doubled KL bounds the action's move more tightly than the same target on a Gaussian's action KL.

Per task (one seed), before each PPO update the actor's parameters are copied; after it, at ``--states``
states of the update's batch:

- ``doubled_kl``: the exact doubled KL(old || new), k1 on ``--doubled-samples`` fresh samples per state
  from the old policy (unbiased; its standard error is ``doubled_kl_se``);
- ``doubled_kl_gaussian`` and ``action_kl_gaussian``: the KL of the moment-matched Gaussians of the doubled
  sample and of the env action (``kl_estimator.gaussian_action``'s estimate, ``--moment-samples`` exact-moment
  noises per state, shared by both policies). ``doubled_kl_gaussian`` against the exact ``doubled_kl`` tells
  how far the Gaussian approximation is from the truth on this policy;
- ``ratio``: action_kl_gaussian / doubled_kl_gaussian (the same approximation in both), and
  ``ratio_exact_doubled``: action_kl_gaussian / doubled_kl;
- ``kl_for_lr``: the mean over the update's minibatches of the k1 estimate that steered the lr.

Before training, the estimators' bias on cases with a known answer (``bias.csv``): 6-D Gaussians of known
KL and a GenPO flow affine in its noise (exact Gaussian action marginal), for ``gaussian_action`` and, to
show why it is not the library's estimator, the nearest-neighbour KL estimate (Wang, Kulkarni, Verdu 2009)
at the same number of samples.

With ``--cost``, instead: the time of one PPO minibatch step (loss, backward) with each KL estimator
driving the lr, on the first task's first rollout, interleaved and repeated (``cost.csv``).

    python -m benchmarks.kl_units --tasks halfcheetah walker2d --iterations 25 --out docs/results/kl_units
    python -m benchmarks.kl_units --cost --tasks halfcheetah --out docs/results/kl_units
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import gin
import torch
from tensordict import TensorDict
from torch import nn
from torch.func import functional_call

from genpo.builders import build_actor, new_experiment
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.estimators.diagonal_gaussian_kl import DiagonalGaussianKL
from genpo.components.estimators.gaussian_action_kl import GaussianActionKL, exact_moment_noise, gaussian_kl
from genpo.components.estimators.kl import K1KL, K3KL

FIELDS = [
    "task", "iteration", "env_steps", "return_mean", "lr", "kl_for_lr", "doubled_kl", "doubled_kl_se",
    "doubled_kl_gaussian", "action_kl_gaussian", "ratio", "ratio_exact_doubled", "train_seconds", "measure_seconds",
]  # fmt: skip


def nearest_neighbour_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """1-NN estimate of KL(p || q) per row of point clouds [*B, n, d] and [*B, m, d] (Wang et al. 2009)."""
    n, m, d = p.shape[-2], q.shape[-2], p.shape[-1]
    within = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist")
    within = within + torch.diag(torch.full((n,), math.inf, dtype=p.dtype))
    across = torch.cdist(p, q, compute_mode="donot_use_mm_for_euclid_dist")
    rho, nu = within.min(-1).values, across.min(-1).values
    return d * (nu.log() - rho.log()).mean(-1) + math.log(m / (n - 1))


def bias_rows(samples: int, states: int, repeats: int) -> list[dict]:
    """Each estimator's mean and spread against the known KL: 6-D Gaussians (a mean shift, a scale change,
    both) and a linear GenPO flow whose velocity bias moves."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    dim = 6
    cases = [("gaussian 6-D, mean shift 0.1", 0.1, 1.0), ("gaussian 6-D, scale 1.05", 0.0, 1.05), ("gaussian 6-D, shift 0.2 and scale 0.9", 0.2, 0.9)]
    for label, shift, scale in cases:
        true = dim * (math.log(scale) + (1.0 + shift**2) / (2.0 * scale**2) - 0.5)
        moment, neighbour = [], []
        for _ in range(repeats):
            noise = exact_moment_noise(states, samples, dim, torch.zeros((), dtype=torch.float64))
            moment.append(gaussian_kl(noise, shift + scale * noise).mean().item())
            p = torch.randn(states, samples, dim, generator=generator, dtype=torch.float64)
            q = shift + scale * torch.randn(states, samples, dim, generator=generator, dtype=torch.float64)
            neighbour.append(nearest_neighbour_kl(p, q).mean().item())
        rows += [summary(label, "gaussian_action", true, moment, samples, states), summary(label, "nearest_neighbour", true, neighbour, samples, states)]
    torch.manual_seed(0)
    bindings = ["HIDDEN_SIZES = (16, 16)", "velocity_network.mlp.hidden_sizes = (16, 16)", "time_embedding.sinusoidal.hidden_sizes = (8,)", "time_embedding.sinusoidal.out_dim = 4"]
    actor = build_actor(3, dim, config_files=["policies/genpo.gin"], bindings=bindings).double()
    linears = [module for module in actor.flow.velocity_network.modules() if isinstance(module, nn.Linear)]
    with torch.no_grad():
        for module in linears:
            module.weight.zero_()
    observation = torch.zeros(states, 3, dtype=torch.float64)
    old = {name: value.detach().clone() for name, value in actor.state_dict().items()}
    with torch.no_grad():
        linears[-1].bias.add_(0.3 * torch.randn(linears[-1].bias.shape, generator=generator, dtype=torch.float64))
    jacobian = torch.autograd.functional.jacobian(lambda z: one_action(actor, z), torch.zeros(actor.noise_dim, dtype=torch.float64))
    with torch.no_grad():
        shift = one_action(actor, torch.zeros(actor.noise_dim, dtype=torch.float64)) - functional_call(actor, old, (TensorDict(observation=observation[:1], batch_size=[1]),), {"noise": torch.zeros(1, actor.noise_dim, dtype=torch.float64)})["action"][0]
    true = 0.5 * (shift @ torch.linalg.solve(jacobian @ jacobian.T, shift)).item()
    moment, neighbour = [], []
    for _ in range(repeats):
        noise = exact_moment_noise(states, samples, actor.noise_dim, observation)
        with torch.no_grad():
            moment.append(gaussian_kl(actions(actor, observation, noise, old), actions(actor, observation, noise)).mean().item())
            p = actions(actor, observation, torch.randn(states, samples, actor.noise_dim, dtype=torch.float64), old)
            q = actions(actor, observation, torch.randn(states, samples, actor.noise_dim, dtype=torch.float64))
            neighbour.append(nearest_neighbour_kl(p, q).mean().item())
    label = "linear GenPO flow 6-D, velocity bias moved"
    return rows + [summary(label, "gaussian_action", true, moment, samples, states), summary(label, "nearest_neighbour", true, neighbour, samples, states)]


def one_action(actor: nn.Module, noise: torch.Tensor) -> torch.Tensor:
    observation = torch.zeros(1, 3, dtype=noise.dtype)
    return actor.sample(TensorDict(observation=observation, batch_size=[1]), noise[None])["action"][0]


def summary(case: str, estimator: str, true: float, estimates: list[float], samples: int, states: int) -> dict:
    values = torch.tensor(estimates)
    return {"case": case, "estimator": estimator, "samples_per_state": samples, "states": states, "true_kl": round(true, 6),
            "mean": round(values.mean().item(), 6), "bias": round(values.mean().item() - true, 6), "sd": round(values.std().item(), 6)}  # fmt: skip


def actions(actor: nn.Module, observation: torch.Tensor, noise: torch.Tensor, parameters: dict | None = None, key: str = "action") -> torch.Tensor:
    """``key`` of the actor's samples from base noise [S, n, D] at states [S, obs]: [S, n, width]."""
    states, count = noise.shape[:2]
    batch = TensorDict(observation=observation.unsqueeze(1).expand(states, count, observation.shape[-1]), batch_size=[states, count])
    out = actor.sample(batch, noise) if parameters is None else functional_call(actor, parameters, (batch,), {"noise": noise})
    return out[key]


@torch.no_grad()
def measure(actor: nn.Module, old: dict, observation: torch.Tensor, args: argparse.Namespace) -> dict:
    """The doubled KL (exact, k1 on fresh old samples) and the Gaussian-moment doubled and action KLs."""
    states = observation.shape[0]
    batch = TensorDict(observation=observation.unsqueeze(1).expand(states, args.doubled_samples, observation.shape[-1]), batch_size=[states, args.doubled_samples])
    fresh = functional_call(actor, old, (batch,))
    log_ratio = fresh["action_log_prob"] - actor.log_prob(fresh)
    noise = exact_moment_noise(states, args.moment_samples, actor.noise_dim, observation)
    dummy_old, dummy_new = actions(actor, observation, noise, old, "dummy_action"), actions(actor, observation, noise, key="dummy_action")
    width = actor.action_dim
    readout = actor.readout
    doubled_gaussian = gaussian_kl(dummy_old, dummy_new).mean().item()
    action_gaussian = gaussian_kl(readout.compute(dummy_old), readout.compute(dummy_new)).mean().item()
    assert readout.compute(dummy_old).shape[-1] == width
    doubled = log_ratio.mean().item()
    return {
        "doubled_kl": doubled,
        "doubled_kl_se": log_ratio.mean(-1).std().item() / math.sqrt(states),
        "doubled_kl_gaussian": doubled_gaussian,
        "action_kl_gaussian": action_gaussian,
        "ratio": action_gaussian / doubled_gaussian if doubled_gaussian > 0 else math.nan,
        "ratio_exact_doubled": action_gaussian / doubled if doubled > 0 else math.nan,
    }


def run_task(task: str, args: argparse.Namespace, writer: csv.DictWriter) -> None:
    with tempfile.TemporaryDirectory() as folder:
        gin.clear_config()
        bindings = ["genpo.run.num_threads = 1", "genpo.build_env.num_threads = 1", f"genpo.run.seed = {args.seed}"]
        trainer, _ = new_experiment(Path(folder) / task, [f"tasks/{task}.gin"], bindings)
        torch.set_num_threads(1)
        update, measured = trainer.update, {}

        def measured_update(batch: TensorDict) -> dict:
            old = {name: value.detach().clone() for name, value in trainer.actor.state_dict().items()}
            metrics = update(batch)
            start = time.perf_counter()
            chosen = torch.randperm(batch.shape[0])[: args.states]
            measured.update(measure(trainer.actor, old, batch["observation"][chosen], args))
            measured["measure_seconds"] = time.perf_counter() - start
            return metrics

        trainer.update = measured_update
        for _ in range(args.iterations):
            start = time.perf_counter()
            metrics = trainer.run_iteration()
            seconds = time.perf_counter() - start
            row = {"task": task, "iteration": metrics["iteration"], "env_steps": metrics["env_steps"], "return_mean": metrics["return_mean"],
                   "lr": metrics["lr"], "kl_for_lr": metrics["kl_k1"], **measured, "train_seconds": seconds - measured["measure_seconds"]}  # fmt: skip
            writer.writerow({key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()})
            print(f"{task} {row['iteration']:3d}: doubled {row['doubled_kl']:.4f} (gaussian {row['doubled_kl_gaussian']:.4f}) "
                  f"action {row['action_kl_gaussian']:.4f} ratio {row['ratio']:.3f}  lr {row['lr']:.2e}  "
                  f"{row['train_seconds']:.1f}+{row['measure_seconds']:.1f} s", flush=True)  # fmt: skip
        trainer.env.close()


def estimator_cost(task: str, args: argparse.Namespace) -> list[dict]:
    """Seconds per minibatch step (loss forward and backward) with k1, k3 and gaussian_action driving the
    lr: medians of ``--cost-repeats`` interleaved repeats on one minibatch of the task's first rollout.
    For a Gaussian actor's task (``halfcheetah_gaussian``) also gaussian_action over every minibatch state
    and its closed form, diagonal_gaussian."""
    with tempfile.TemporaryDirectory() as folder:
        gin.clear_config()
        bindings = ["genpo.run.num_threads = 1", "genpo.build_env.num_threads = 1", f"genpo.run.seed = {args.seed}"]
        trainer, _ = new_experiment(Path(folder) / task, [f"tasks/{task}.gin"], bindings)
        torch.set_num_threads(1)
        rollout, _ = trainer.collector.collect(1)
        trainer.advantage(rollout)
        batch = rollout.exclude("next").reshape(-1)
        minibatch = batch[: batch.shape[0] // trainer.settings.minibatches]
        estimators = {"k1": K1KL(), "k3": K3KL(), "gaussian_action": GaussianActionKL()}
        if isinstance(trainer.actor, GaussianActor):
            estimators["gaussian_action_every_state"] = GaussianActionKL(num_states=minibatch.shape[0])
            estimators["diagonal_gaussian"] = DiagonalGaussianKL()
        seconds: dict[str, list[float]] = {name: [] for name in estimators}
        loss = trainer.loss
        for _ in range(args.cost_repeats):
            for name, estimator in estimators.items():
                loss.kl_estimator, loss.kl_key = estimator, f"kl_{name}"
                loss.start_update()
                start = time.perf_counter()
                out = loss(minibatch)
                sum(value for key, value in out.items() if key.startswith("loss_")).backward()
                seconds[name].append(time.perf_counter() - start)
                trainer.optimizer.zero_grad(set_to_none=True)
        trainer.env.close()
    return [{"task": task, "kl_estimator": name, "minibatch": minibatch.shape[0], "seconds_median": round(sorted(values)[len(values) // 2], 4)}
            for name, values in seconds.items()]  # fmt: skip


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({row["task"] for row in rows})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for index, task in enumerate(tasks):
        mine = [row for row in rows if row["task"] == task]
        iterations = [int(row["iteration"]) for row in mine]
        color = f"C{index}"
        axes[0].plot(iterations, [float(row["ratio"]) for row in mine], color=color, label=task)
        axes[1].plot(iterations, [float(row["doubled_kl"]) for row in mine], color=color, label=f"{task}: doubled (exact)")
        axes[1].plot(iterations, [float(row["action_kl_gaussian"]) for row in mine], "--", color=color, alpha=0.7, label=f"{task}: action")
    axes[0].set(xlabel="iteration", ylabel="KL(action) / KL(doubled)", title="action KL / doubled KL (moment estimates)", ylim=(0, 1.1))
    axes[1].set(xlabel="iteration", ylabel="KL(old || new) over one update", yscale="log", title="the two KLs")
    for axis in axes:
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV with their keys as the header."""
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["halfcheetah", "walker2d"])
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--states", type=int, default=256)
    parser.add_argument("--doubled-samples", type=int, default=16)
    parser.add_argument("--moment-samples", type=int, default=64)
    parser.add_argument("--bias-repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results/kl_units"))
    parser.add_argument("--cost", action="store_true", help="time one minibatch step per KL estimator instead")
    parser.add_argument("--cost-repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), platform.processor())
    start = time.perf_counter()
    if args.cost:
        rows = estimator_cost(args.tasks[0], args)
        write_rows(args.out / "cost.csv", rows)
        for row in rows:
            print(f"{row['task']} {row['kl_estimator']:16s} {row['seconds_median']:.4f} s per minibatch of {row['minibatch']}")
        print(f"CPU: {cpu}; 1 torch thread")
        return
    bias = bias_rows(args.moment_samples, args.states, args.bias_repeats)
    write_rows(args.out / "bias.csv", bias)
    for row in bias:
        print(f"{row['case']:45s} {row['estimator']:18s} true {row['true_kl']:.4f} mean {row['mean']:.4f} sd {row['sd']:.4f}")
    with (args.out / "kl_units.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        for task in args.tasks:
            run_task(task, args, writer)
            file.flush()
    with (args.out / "kl_units.csv").open() as file:
        plot(list(csv.DictReader(file)), args.out / "kl_units.png")
    print(f"CPU: {cpu}; 1 torch thread; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
