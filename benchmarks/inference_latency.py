"""Deployment latency per decision at batch 1: the GenPO actor for N in {1, 2, 5, 10} and the Gaussian actor.

Paper network sizes (Ant / Humanoid rows of docs/method.md §10): velocity network (400, 200, 100) with Mish
and time embedding 32 / [256, 256]; the Gaussian actor's MLP has the same hidden sizes with ELU (IsaacLab's
rsl_rl Ant config). Observation 60, action 8 (Isaac-Ant-v0). Each decision is timed under
``torch.no_grad`` with zero latent noise (the deterministic evaluation mode), two ways:

- ``sample``: ``actor.sample(TensorDict(observation=obs), noise=zeros)["action"]``, the actor contract
  as an evaluator calls it (a TensorDict in, the env action out);
- ``tensors``: the same computation on plain tensors (``flow.compute`` then the readout for GenPO, the
  mean MLP for the Gaussian), without the TensorDict.

All actors are timed in one process, interleaved in blocks (A, B, C, ..., A, B, ...), and each line
gives the median over all decisions. One torch thread by default.

    .venv/bin/python -m benchmarks.inference_latency [--calls 2000] [--blocks 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
from tensordict import TensorDict

from genpo.components.actors.gaussian import GaussianActor
from genpo.components.actors.genpo_flow import GenPOActor
from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.components.networks.time_embedding import SinusoidalTimeEmbedding
from genpo.components.networks.velocity_network import VelocityMLP

HIDDEN = (400, 200, 100)


def genpo_actor(observation_dim: int, action_dim: int, num_steps: int) -> GenPOActor:
    velocity_network = functools.partial(
        VelocityMLP,
        hidden_sizes=HIDDEN,
        activation="mish",
        time_embedding=SinusoidalTimeEmbedding(out_dim=32, hidden_sizes=(256, 256)),
    )
    flow = functools.partial(
        DummyActionFlow, velocity_network=velocity_network, coupling=GenPOCoupling(0.9), num_steps=num_steps
    )
    return GenPOActor(observation_dim, action_dim, flow=flow).eval()


def decision_functions(actor, observation: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The two timed paths of one actor: through the actor contract, and on plain tensors."""
    noise = torch.zeros(1, actor.noise_dim)

    def sample() -> torch.Tensor:
        return actor.sample(TensorDict(observation=observation, batch_size=[1]), noise=noise)["action"]

    if isinstance(actor, GenPOActor):

        def tensors() -> torch.Tensor:
            return actor.readout.compute(actor.flow.compute(observation, noise)[0])

    else:

        def tensors() -> torch.Tensor:
            return actor.mean(observation)

    return {"sample": sample, "tensors": tensors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observation-dim", type=int, default=60)
    parser.add_argument("--action-dim", type=int, default=8)
    parser.add_argument("--num-steps", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--calls", type=int, default=2000, help="timed decisions per actor and path")
    parser.add_argument("--blocks", type=int, default=20, help="interleaved blocks the calls are split into")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    actors = {f"GenPO N={n}": genpo_actor(args.observation_dim, args.action_dim, n) for n in args.num_steps}
    actors["Gaussian"] = GaussianActor(args.observation_dim, args.action_dim, hidden_sizes=HIDDEN).eval()
    observation = torch.randn(1, args.observation_dim)
    functions = {name: decision_functions(actor, observation) for name, actor in actors.items()}
    times: dict[tuple[str, str], list[float]] = {
        (name, path): [] for name, paths in functions.items() for path in paths
    }
    per_block = max(1, args.calls // args.blocks)
    with torch.no_grad():
        for paths in functions.values():  # warm-up
            for call in paths.values():
                for _ in range(50):
                    call()
        for _ in range(args.blocks):
            for name, paths in functions.items():
                for path, call in paths.items():
                    samples = times[(name, path)]
                    for _ in range(per_block):
                        start = time.perf_counter()
                        call()
                        samples.append(time.perf_counter() - start)
    print(
        f"# batch 1, obs {args.observation_dim}, act {args.action_dim}, hidden {HIDDEN}, time embedding 32/[256, 256], "
        f"zero noise, torch.no_grad, threads {torch.get_num_threads()}, median of {per_block * args.blocks} decisions"
    )
    gaussian = statistics.median(times[("Gaussian", "sample")])
    for name in functions:
        sample = statistics.median(times[(name, "sample")])
        tensors = statistics.median(times[(name, "tensors")])
        print(
            f"{name}: {1e6 * sample:.0f} us per decision (actor.sample), {1e6 * tensors:.0f} us on plain tensors, "
            f"{sample / gaussian:.1f}x Gaussian"
        )


if __name__ == "__main__":
    main()
