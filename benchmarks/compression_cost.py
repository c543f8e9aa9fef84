"""GenPO's iteration time per ``compression.squared.sample_fraction`` (0: compression off), on batched
MuJoCo HalfCheetah: one GenPO trainer per fraction, interleaved round by round, medians; each line
gives the time relative to the first fraction's, measured in the same rounds.

    .venv/bin/python -m benchmarks.compression_cost --sample-fractions 1.0 0.5 0.25 0
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.iteration_setup import genpo_config, genpo_trainer, interleaved, parse_args, schedule_bindings, schedule_parser, title


def fraction_bindings(fraction: float) -> list[str]:
    if fraction == 0:
        return ["loss.ppo.compression_coefficient = 0.0"]
    return [f"compression.squared.sample_fraction = {fraction}"]


def main() -> None:
    parser = schedule_parser(__doc__, envs=("halfcheetah",))
    parser.add_argument("--sample-fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.0])
    args = parse_args(parser)
    env_name = args.envs[-1]
    with tempfile.TemporaryDirectory() as root:
        trainers = {
            str(fraction): genpo_trainer(
                Path(root) / str(fraction), genpo_config(env_name), [*schedule_bindings(args), *fraction_bindings(fraction)]
            )
            for fraction in args.sample_fractions
        }
        times = interleaved({name: trainer.run_iteration for name, trainer in trainers.items()}, args.warmup, args.repeats)
    first = str(args.sample_fractions[0])
    reference = statistics.median(times[first])
    print(
        f"== GenPO on {title(env_name)} by compression.squared.sample_fraction (0: compression off), "
        f"{args.num_envs} envs x {args.steps} steps, {args.epochs} x {args.minibatches} minibatches, "
        f"median of {args.repeats} after {args.warmup} =="
    )
    for name in trainers:
        value = statistics.median(times[name])
        print(f"sample_fraction {name}: {value:.3f} s/iteration, {value / reference:.2f}x of {first}")


if __name__ == "__main__":
    main()
