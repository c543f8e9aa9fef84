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

Peak memory: after each timing line, a second line gives each variant's peak memory for one such
``log_prob`` call (its graph plus transients): in a fresh subprocess per variant that builds the actor
and batch, resets its peak RSS (``/proc/self/clear_refs``), calls ``log_prob`` once, and reports the
peak RSS (``VmHWM``) above the RSS just before the call; glibc is set to ``mmap`` every allocation of
64 KiB or more and to trim freed memory at once, so RSS follows live memory. Linux only;
``--no-memory`` skips it (two short subprocesses per action dimension).

    .venv/bin/python -m benchmarks.likelihood [--batch 1024] [--repeats 5] [--threads 1] [--no-memory]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import subprocess
import sys
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


VARIANTS = {"analytic": DummyActionFlow, "jacobian": NumericLogDetFlow}
UNMEASURABLE = 3  # exit status of a memory subprocess that cannot reset its peak RSS


def variant_batch(flow_class: type[DummyActionFlow], observation_dim: int, action_dim: int, batch: int):
    """The actor and the sampled batch a variant is measured on (seeded: the same in every process)."""
    torch.manual_seed(0)
    actor = paper_actor(flow_class, observation_dim, action_dim)
    with torch.no_grad():
        sampled = paper_actor(DummyActionFlow, observation_dim, action_dim)
        sampled.load_state_dict(actor.state_dict())
        data = sampled(TensorDict(observation=torch.randn(batch, observation_dim), batch_size=[batch]))
    return actor, data


def memory_child(variant: str, observation_dim: int, action_dim: int, batch: int) -> None:
    """Subprocess body: build a variant's actor and batch, reset this process's peak RSS, call ``log_prob``
    once (keeping its graph) and print the peak RSS above the RSS before the call, in bytes."""
    actor, data = variant_batch(VARIANTS[variant], observation_dim, action_dim, batch)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM (peak RSS) to the current RSS (Linux >= 4.0)
    except OSError:
        sys.exit(UNMEASURABLE)
    before = _status_bytes("VmRSS")
    log_prob = actor.log_prob(data)
    print(_status_bytes("VmHWM") - before)
    del log_prob


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory(variant: str, args: argparse.Namespace, action_dim: int) -> int | None:
    """Peak memory in bytes of one ``log_prob`` of ``variant`` in a fresh process, or None where the
    platform cannot reset the peak RSS (not Linux, or /proc/self/clear_refs not writable).

    glibc is told to serve every allocation of 64 KiB or more by ``mmap`` and to return freed heap
    memory at once, so that RSS follows live memory instead of reusing resident free pages."""
    command = [
        sys.executable, __file__, "--memory-child", variant, "--action-dims", str(action_dim),
        "--batch", str(args.batch), "--observation-dim", str(args.observation_dim), "--threads", str(args.threads),
    ]  # fmt: skip
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode == UNMEASURABLE:
        return None
    if result.returncode != 0:
        raise RuntimeError(f"memory subprocess for {variant}, d={action_dim} failed:\n{result.stderr[-2000:]}")
    return int(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="samples per log_prob call (same for both variants)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant (median reported)")
    parser.add_argument("--observation-dim", type=int, default=32)
    parser.add_argument("--action-dims", type=int, nargs="+", default=[4, 8, 21])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.observation_dim, args.action_dims[0], args.batch)
        return
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
        del analytic_log_prob, jacobian_log_prob  # free both graphs before the memory subprocesses run
        print(f"d={action_dim}: analytic {analytic_ms:.1f} ms, jacobian {jacobian_ms:.1f} ms, {jacobian_ms / analytic_ms:.0f}x")
        if not args.no_memory:
            peaks = {variant: peak_memory(variant, args, action_dim) for variant in VARIANTS}
            if None in peaks.values():
                print(f"d={action_dim} peak memory: not measurable here (needs Linux /proc/self/clear_refs)")
                continue
            analytic_mib, jacobian_mib = (peaks[variant] / 2**20 for variant in VARIANTS)
            print(
                f"d={action_dim} peak memory of one log_prob: analytic {analytic_mib:.0f} MiB, "
                f"jacobian {jacobian_mib:.0f} MiB, {jacobian_mib / analytic_mib:.0f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
