"""Seconds per PPO iteration of GenPO variants (gin bindings on a task config) against genpo's Gaussian
on the same task, interleaved round by round in one process, medians; each variant's line gives its
time over the first variant's and over the Gaussian's. This is how a cheaper default is priced before
its learning runs: e.g.

    .venv/bin/python -m benchmarks.variant_cost --steps 64 \\
        --variant default= \\
        --variant N5_fp32='flow.dummy_action.num_steps = 5; velocity_network.mlp.autocast_dtype = None' \\
        --variant silu="velocity_network.mlp.activation = 'silu'; critic.mlp.activation = 'silu'"

A variant is ``NAME=BINDING; BINDING; ...`` (nothing after ``=``: the task config as it is).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

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

GAUSSIAN = "gaussian"


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=BINDING; BINDING`` -> (name, bindings); the error names the malformed argument."""
    name, separator, bindings = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=BINDING; BINDING; ... (bindings may be empty)")
    if name.strip() == GAUSSIAN:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: the name {GAUSSIAN!r} is the reference contender's")
    return name.strip(), [binding.strip() for binding in bindings.split(";") if binding.strip()]


def main() -> None:
    parser = schedule_parser(__doc__, envs=("halfcheetah",))
    parser.add_argument("--variant", type=parse_variant, action="append", dest="variants", default=None)
    args = parse_args(parser)
    variants = dict(args.variants or [("default", [])])
    if len(variants) != len(args.variants or [None]):
        parser.error("two --variant arguments share a name")
    for env_name in args.envs:
        shared = schedule_bindings(args)
        with tempfile.TemporaryDirectory() as root:
            trainers = {
                name: genpo_trainer(Path(root) / name, genpo_config(env_name), [*shared, *bindings])
                for name, bindings in variants.items()
            }
            trainers[GAUSSIAN] = genpo_trainer(Path(root) / GAUSSIAN, gaussian_config(env_name), shared)
            times = interleaved({name: trainer.run_iteration for name, trainer in trainers.items()}, args.warmup, args.repeats)
        medians = {name: statistics.median(values) for name, values in times.items()}
        first = next(iter(variants))
        print(
            f"== GenPO variants on {title(env_name)} ({env_name}): {schedule_text(args)}, torch threads {args.threads}, "
            f"MuJoCo threads {args.env_threads}; median of {args.repeats} after {args.warmup} =="
        )
        print(f"{GAUSSIAN}: {medians[GAUSSIAN]:.3f} s/iteration ({spread(times[GAUSSIAN])})")
        for name, bindings in variants.items():
            print(
                f"{name}: {medians[name]:.3f} s/iteration ({spread(times[name])}); {medians[name] / medians[first]:.2f}x of "
                f"{first}, {medians[name] / medians[GAUSSIAN]:.2f}x of {GAUSSIAN}  [{'; '.join(bindings) or 'task config'}]"
            )


if __name__ == "__main__":
    main()
