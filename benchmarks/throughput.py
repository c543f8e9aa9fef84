"""Training throughput per PPO iteration: genpo (Gaussian, GenPO, GenPO with a numeric log-det) against
rsl_rl's ``OnPolicyRunner``, on batched MuJoCo Ant and HalfCheetah.

Every contender runs in this one process on its own instance of the same env (same seed, same MuJoCo
thread count), with the same num_envs, steps per env, epochs x minibatches and hidden sizes (256, 256);
the genpo contenders are built from ``tasks/<env>.gin`` / ``tasks/<env>_gaussian.gin`` with those
settings overridden by bindings. Contenders are interleaved round by round (A, B, C, A, B, ...) after
warm-up rounds, and each reports the median of its timed iterations, so that load from other
processes on a shared machine slows all of them alike.

- ``genpo-gaussian``: ``tasks/<env>_gaussian.gin`` built with ``new_experiment`` into a temporary
  run directory, timed with ``trainer.run_iteration()``.
- ``rsl_rl``: rsl-rl-lib 5.x ``OnPolicyRunner`` configured from the ``genpo-gaussian`` trainer by
  ``genpo.baselines.rsl_rl.runner_config`` (so the two share every setting rsl_rl has), on rsl_rl's
  ``VecEnv`` shape over the same ``BatchedEnv``; timed with ``runner.learn(num_learning_iterations=1)``.
- ``genpo``: ``tasks/<env>.gin`` (GenPO, N = 5, p = 0.9, Mish, compression on every sample).
- ``numeric-logdet``: GenPO with ``actor.genpo.flow = @flow.dummy_action_numeric_log_det`` (the reference
  code's ``vmap(jacrev)`` + ``slogdet`` at every env step and update); run for ``--numeric-iterations``
  timed iterations (default 1, no warm-up) inside the first timed rounds, since one iteration takes
  tens of seconds.

Ratios (one set per env, HalfCheetah last), each a speed ratio: the second contender's seconds per
iteration over the first's (> 1: the first is faster): ``Gaussian/rsl_rl``, ``GenPO/numeric-logdet``,
``GenPO/rsl_rl``; and ``GenPO/Gaussian``, a cost ratio: GenPO's seconds per iteration over genpo
Gaussian's (the target: at most 3x on HalfCheetah). GenPO against its compute floor is ``benchmarks.compute_floor``; where its iteration
goes, ``benchmarks.iteration_profile``.

    .venv/bin/python -m benchmarks.throughput                       # both envs, about 2 min on 2 busy cores
    .venv/bin/python -m benchmarks.throughput --envs halfcheetah --repeats 3 --numeric-iterations 0
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.iteration_setup import (
    gaussian_config,
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
from genpo.baselines import rsl_rl
from genpo.builders.env import build_env


def throughput(env_name: str, args) -> None:
    common = schedule_bindings(args)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        gaussian = genpo_trainer(root / "gaussian", gaussian_config(env_name), common)
        genpo = genpo_trainer(root / "genpo", genpo_config(env_name), common)
        rsl_env = build_env(env_name, args.num_envs, seed=0, num_threads=args.env_threads)
        runner = rsl_rl.build_runner(rsl_env, rsl_rl.runner_config(gaussian))
        contenders = {
            "genpo-gaussian": gaussian.run_iteration,
            "rsl_rl": lambda: rsl_rl.run_iteration(runner),
            "genpo": genpo.run_iteration,
        }
        extra = {}
        if args.numeric_iterations > 0:
            numeric_bindings = [*common, "actor.genpo.flow = @flow.dummy_action_numeric_log_det"]
            numeric = genpo_trainer(root / "numeric", genpo_config(env_name), numeric_bindings)
            extra["numeric-logdet"] = (numeric.run_iteration, args.numeric_iterations)
        times = interleaved(contenders, args.warmup, args.repeats, extra)
    median = {name: statistics.median(values) for name, values in times.items() if values}
    print(
        f"== {title(env_name)} ({env_name}): {schedule_text(args)}, torch threads {torch.get_num_threads()}, "
        f"MuJoCo threads {args.env_threads}; median of {args.repeats} after {args.warmup} warm-up rounds =="
    )
    for name, value in median.items():
        print(f"{name}: {value:.3f} s/iteration ({spread(times[name])})")
    print(f"Gaussian/rsl_rl: {median['rsl_rl'] / median['genpo-gaussian']:.2f}x")
    if "numeric-logdet" in median:
        print(f"GenPO/numeric-logdet: {median['numeric-logdet'] / median['genpo']:.1f}x")
    print(f"GenPO/rsl_rl: {median['rsl_rl'] / median['genpo']:.2f}x")
    print(f"GenPO/Gaussian: {median['genpo'] / median['genpo-gaussian']:.1f}x", flush=True)


def main() -> None:
    parser = schedule_parser(__doc__)
    parser.add_argument("--numeric-iterations", type=int, default=1, help="timed numeric-log-det iterations")
    args = parse_args(parser)
    for env_name in args.envs:
        throughput(env_name, args)


if __name__ == "__main__":
    main()
