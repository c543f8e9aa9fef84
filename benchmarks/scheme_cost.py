"""Seconds per PPO iteration of each likelihood scheme at its own settings (the scheme sweep's configs),
interleaved round by round in one process on one torch thread, medians; each line gives the time over
the Gaussian's. The configs are used as they are (their task, network sizes, steps and update
schedule), so a ratio prices the scheme as the sweep runs it:

    .venv/bin/python -m benchmarks.scheme_cost                        # sweeps/pendulum_schemes.toml's configs
    .venv/bin/python -m benchmarks.scheme_cost --repeats 5 --scheme fpo_plus_plus=ablations/fpo_plus_plus.gin

A scheme is ``NAME=CONFIG``; the reference is ``gaussian=tasks/pendulum_gaussian.gin``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.iteration_setup import genpo_trainer, interleaved, spread

REFERENCE = ("gaussian", "tasks/pendulum_gaussian.gin")
SCHEMES = {
    "genpo": "tasks/pendulum.gin",
    "reversible_multistep": "ablations/scheme_reversible_multistep.gin",
    "fpo": "ablations/scheme_fpo.gin",
    "dppo": "ablations/scheme_dppo.gin",
    "reinflow": "ablations/scheme_reinflow.gin",
}


def parse_scheme(text: str) -> tuple[str, str]:
    name, separator, config = text.partition("=")
    if not separator or not name.strip() or not config.strip():
        raise argparse.ArgumentTypeError(f"--scheme {text!r}: expected NAME=CONFIG")
    return name.strip(), config.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheme", type=parse_scheme, action="append", dest="schemes", default=None,
                        help="NAME=CONFIG (repeatable; default: the scheme sweep's configs)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = dict([REFERENCE, *(args.schemes or SCHEMES.items())])
    bindings = ["genpo.run.seed = 0"]
    with tempfile.TemporaryDirectory() as root:
        trainers = {name: genpo_trainer(Path(root) / name, config, bindings) for name, config in configs.items()}
        times = interleaved({name: trainer.run_iteration for name, trainer in trainers.items()}, args.warmup, args.repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians[REFERENCE[0]]
    print(f"== seconds per iteration, {args.threads} torch thread(s); median of {args.repeats} after {args.warmup} ==")
    for name, config in configs.items():
        print(f"{name}: {medians[name]:.3f} s ({spread(times[name])}); {medians[name] / reference:.2f}x gaussian  [{config}]")


if __name__ == "__main__":
    main()
