"""Deployment latency at batch 1 of a run's exported policy: onnxruntime vs TorchScript vs ``load_policy``.

Builds a fresh (untrained) run directory from a task config (default ``tasks/halfcheetah.gin``, the default
GenPO policy size: velocity network (256, 256) as tasks/locomotion.gin sets it, 5 flow steps, observation 17, action 6) in a
temporary folder, exports it with ``genpo export`` (zero noise: the deterministic policy) and times one
decision (observation [1, obs_dim] -> action) three ways, interleaved in blocks so that load from other
processes slows all alike; each line is the median over all calls. One thread for torch and onnxruntime.

    .venv/bin/python -m benchmarks.deployment_latency [--config tasks/halfcheetah.gin] [--calls 2000] [--blocks 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gin
import numpy as np
import onnxruntime
import torch

from genpo.builders import new_experiment
from genpo.deployment.export import export_run
from genpo.deployment.policy import load_policy


def contenders(run_dir: Path, observation: np.ndarray) -> dict[str, Callable[[], object]]:
    export_run(run_dir, noise="zero")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(run_dir / "exported" / "policy.onnx"), options, providers=["CPUExecutionProvider"])
    module = torch.jit.load(str(run_dir / "exported" / "policy.pt"))
    policy = load_policy(run_dir, device="cpu")
    tensor = torch.from_numpy(observation)

    def torchscript():
        with torch.no_grad():
            return module(tensor)

    return {
        "onnxruntime (policy.onnx)": lambda: session.run(None, {"observation": observation}),
        "TorchScript (policy.pt)": torchscript,
        "torch load_policy": lambda: policy(tensor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tasks/halfcheetah.gin")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=20)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        new_experiment(run_dir, [arguments.config], ["genpo.build_env.num_envs = 1", "genpo.build_env.num_threads = 1", "genpo.run.num_threads = 1"])
        gin.clear_config()
        policy = load_policy(run_dir, device="cpu")
        observation = np.random.default_rng(0).standard_normal((1, policy.observation_dim)).astype(np.float32)
        calls = contenders(run_dir, observation)
        outputs = [np.asarray(output[0] if isinstance(output, list) else output) for output in (call() for call in calls.values())]
        spread = max(float(np.abs(output - outputs[0]).max()) for output in outputs)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for name, call in calls.items():  # warm-up
            for _ in range(50):
                call()
        per_block = max(1, arguments.calls // arguments.blocks)
        for _ in range(arguments.blocks):
            for name, call in calls.items():
                for _ in range(per_block):
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
    print(f"{arguments.config}: obs {policy.observation_dim}, action {policy.action_dim}, actor {policy.actor_name}; "
          f"batch 1, 1 thread, median of {per_block * arguments.blocks} calls (largest action difference {spread:.1e})")
    for name, samples in times.items():
        print(f"  {name:<28} {1e6 * statistics.median(samples):8.1f} us")


if __name__ == "__main__":
    main()
