"""Wall time for GenPO and the Gaussian baseline to reach a return threshold on a task.

Both run in this process, one after the other, with the same seed and thread count; the line per
policy gives iterations, env steps and seconds to the first iteration whose finished episodes average
at least the threshold, then GenPO/Gaussian ratios.

    python -m benchmarks.time_to_solve                      # Pendulum, threshold -250
    python -m benchmarks.time_to_solve --threads 2 --seed 1
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import gin
import torch

from genpo.builders import new_experiment


def time_to_threshold(config: str, threshold: float, max_iterations: int, seed: int) -> tuple[int, int, float]:
    """(iterations, env steps, seconds) until return_mean >= threshold; seconds is inf if never."""
    gin.clear_config()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, _ = new_experiment(run_dir, [config], [f"genpo.run.seed = {seed}", f"genpo.run.num_threads = {torch.get_num_threads()}"])
        elapsed = 0.0
        for _ in range(max_iterations):
            start = time.perf_counter()
            metrics = trainer.run_iteration()
            elapsed += time.perf_counter() - start
            if math.isfinite(metrics["return_mean"]) and metrics["return_mean"] >= threshold:
                return trainer.iteration, trainer.env_steps, elapsed
        return trainer.iteration, trainer.env_steps, math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genpo", default="tasks/pendulum.gin")
    parser.add_argument("--gaussian", default="tasks/pendulum_gaussian.gin")
    parser.add_argument("--threshold", type=float, default=-250.0)
    parser.add_argument("--max-iterations", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name, config in (("GenPO", args.genpo), ("Gaussian", args.gaussian)):
        iterations, steps, seconds = time_to_threshold(config, args.threshold, args.max_iterations, args.seed)
        results[name] = (steps, seconds)
        if math.isinf(seconds):
            print(f"{name}: return >= {args.threshold:g} not reached in {iterations} iterations ({steps} env steps)")
        else:
            print(f"{name}: return >= {args.threshold:g} at iteration {iterations}, {steps} env steps, {seconds:.1f} s")
    (genpo_steps, genpo_seconds), (gauss_steps, gauss_seconds) = results["GenPO"], results["Gaussian"]
    if math.isinf(genpo_seconds) or math.isinf(gauss_seconds):
        print("GenPO/Gaussian: n/a (a policy did not reach the threshold; raise --max-iterations)")
    else:
        print(f"GenPO/Gaussian: {genpo_steps / gauss_steps:.2f}x env steps, {genpo_seconds / gauss_seconds:.2f}x wall time")


if __name__ == "__main__":
    main()
