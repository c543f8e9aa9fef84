"""Env-only throughput: genpo's batched MuJoCo envs against gymnasium's ``SyncVectorEnv`` of v5 envs.

Both step ``--num-envs`` envs with the same uniform random actions in this process, in alternating
blocks; time excludes construction and reset. Prints one line per env, ``name: genpo X steps/s, gymnasium Y steps/s, Zx``.

    .venv/bin/python -m benchmarks.envs --num-envs 64 --steps 200 --threads 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import gymnasium
import numpy as np
import torch

from genpo import registry

GYMNASIUM_IDS = {  # HalfCheetah last, as the headline number
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "humanoid": "Humanoid-v5",
    "halfcheetah": "HalfCheetah-v5",
}


def benchmark(name: str, num_envs: int, steps: int, threads: int, rounds: int = 10) -> tuple[float, float]:
    """(genpo, gymnasium) env steps per second over the same actions.

    The two alternate in ``rounds`` blocks, so that load from other processes on a shared machine
    slows both alike instead of whichever happened to run during it.
    """
    env = registry.get("env", name)(num_envs, num_threads=threads)
    reference = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(GYMNASIUM_IDS[name])] * num_envs)
    low, high = env.model.actuator_ctrlrange.T
    actions = np.random.default_rng(0).uniform(low, high, (steps, num_envs, env.action_dim)).astype(np.float32)
    contenders = [(env.step, torch.from_numpy(actions)), (reference.step, actions)]
    env.reset()
    reference.reset(seed=0)
    elapsed = [0.0, 0.0]
    for block in np.array_split(np.arange(steps), rounds):
        for k, (step, batched_actions) in enumerate(contenders):
            start = time.perf_counter()
            for t in block:
                step(batched_actions[t])
            elapsed[k] += time.perf_counter() - start
    env.close()
    reference.close()
    return steps * num_envs / elapsed[0], steps * num_envs / elapsed[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="timed batched steps per env kind and simulator")
    parser.add_argument("--threads", type=int, default=2, help="mujoco.batch threads for genpo's envs")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="gymnasium")  # its passive checker's dtype notes
    torch.set_num_threads(1)
    for name in GYMNASIUM_IDS:
        genpo_rate, gymnasium_rate = benchmark(name, args.num_envs, args.steps, args.threads)
        print(
            f"{name}: genpo {genpo_rate:.0f} steps/s, gymnasium {gymnasium_rate:.0f} steps/s, "
            f"{genpo_rate / gymnasium_rate:.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
