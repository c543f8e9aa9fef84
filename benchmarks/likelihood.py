"""Exact log-prob of a batch: analytic log-det (one inverse pass) vs the reference code's numeric Jacobian.

Both variants invert the same flow with the same weights; the Jacobian variant then builds each sample's
2d x 2d Jacobian of the full forward map with ``vmap(jacrev)`` and takes ``slogdet`` (what the GenPO
reference implementation does, and what the paper names as its main cost). Timed as PPO needs it:
``log_prob`` with the autograd graph built (forward only, no backward). Paper network sizes, N = 5.

The default batch is 1024 for both variants, not the 4096 of a PPO chunk: the Jacobian variant's
autograd graph takes the process to 6-9 GB at batch 1024 and d = 21 (11 GB at 2048) and does not fit
a 23 GB machine at 4096; its time then goes largely to page faults on that memory, so its ratio grows
with the batch. One thread by default: two OpenMP threads on a shared 2-core machine make the small
analytic pass up to 20x slower and the ratio meaningless.

    .venv/bin/python benchmarks/likelihood.py [--batch 1024] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
from tensordict import TensorDict

from genpo.components.actors.genpo_flow import GenPOActor
from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.components.flows.numeric_log_det import NumericLogDetFlow
from genpo.components.networks.time_embedding import SinusoidalTimeEmbedding
from genpo.components.networks.velocity_network import VelocityMLP


def paper_actor(flow_class: type[DummyActionFlow], observation_dim: int, action_dim: int) -> GenPOActor:
    """GenPO actor with the paper's Ant/Humanoid sizes: hidden (400, 200, 100), time embedding 32/[256, 256]."""
    velocity_network = functools.partial(
        VelocityMLP,
        hidden_sizes=(400, 200, 100),
        time_embedding=SinusoidalTimeEmbedding(out_dim=32, hidden_sizes=(256, 256)),
    )
    flow = functools.partial(flow_class, velocity_network=velocity_network, coupling=GenPOCoupling(0.9), num_steps=5)
    return GenPOActor(observation_dim, action_dim, flow=flow)


def time_log_prob(actor: GenPOActor, batch: TensorDict, repeats: int) -> tuple[float, torch.Tensor]:
    """(median wall time in ms, result) of ``log_prob`` with the autograd graph, after one warm-up call."""
    times, log_prob = [], None
    for _ in range(1 + repeats):
        del log_prob  # free the previous call's graph first: only one is alive at a time, as in training
        start = time.perf_counter()
        log_prob = actor.log_prob(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:]), log_prob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="samples per log_prob call (same for both variants)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant (median reported)")
    parser.add_argument("--observation-dim", type=int, default=32)
    parser.add_argument("--action-dims", type=int, nargs="+", default=[4, 8, 21])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"# batch {args.batch}, obs {args.observation_dim}, N 5, hidden (400, 200, 100), "
        f"median of {args.repeats}, threads {torch.get_num_threads()}, log_prob with autograd graph (no backward)"
    )
    for action_dim in args.action_dims:
        analytic = paper_actor(DummyActionFlow, args.observation_dim, action_dim)
        jacobian = paper_actor(NumericLogDetFlow, args.observation_dim, action_dim)
        jacobian.load_state_dict(analytic.state_dict())
        with torch.no_grad():
            batch = analytic(TensorDict(observation=torch.randn(args.batch, args.observation_dim), batch_size=[args.batch]))
        analytic_ms, analytic_log_prob = time_log_prob(analytic, batch, args.repeats)
        jacobian_ms, jacobian_log_prob = time_log_prob(jacobian, batch, args.repeats)
        torch.testing.assert_close(jacobian_log_prob, analytic_log_prob, rtol=0, atol=1e-3)  # same quantity
        print(f"d={action_dim}: analytic {analytic_ms:.1f} ms, jacobian {jacobian_ms:.1f} ms, {jacobian_ms / analytic_ms:.0f}x")


if __name__ == "__main__":
    main()
