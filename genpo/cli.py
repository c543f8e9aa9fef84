"""``genpo train | evaluate | sweep | components``: parse arguments, load gin, call the builders."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from genpo import registry


def _train(args: argparse.Namespace) -> int:
    from genpo.builders.experiment import new_experiment, resume_experiment

    if args.trainer == "rsl_rl":
        return _train_rsl_rl(args)
    if args.resume:
        if args.config or args.gin or args.seed is not None:
            raise SystemExit("genpo train --resume DIR takes only --iterations/--quiet: the run's config.gin is reused")
        trainer, settings = resume_experiment(args.resume)
    else:
        if not args.config:
            raise SystemExit("genpo train: give a CONFIG.gin (e.g. gin/tasks/pendulum.gin) or --resume DIR")
        out = args.out or _default_out(args.config)
        trainer, settings = new_experiment(out, [args.config], _run_bindings(args))
    iterations = args.iterations or settings.iterations
    summary = trainer.train(iterations, quiet=args.quiet)
    print(f"run directory: {trainer.run_dir}")
    print(f"learning curve: {trainer.run_dir / 'learning_curve.png'}")
    print(f"checkpoint: {trainer.checkpoint_path}")
    print(json.dumps(summary, indent=2))
    return 0


def _run_bindings(args: argparse.Namespace) -> list[str]:
    bindings = list(args.gin)
    if args.seed is not None:
        bindings.append(f"genpo.run.seed = {args.seed}")
    if args.iterations is not None:
        bindings.append(f"genpo.run.iterations = {args.iterations}")
    return bindings


def _default_out(config: str) -> Path:
    return Path("runs") / f"{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train_rsl_rl(args: argparse.Namespace) -> int:
    from genpo.baselines import rsl_rl

    if args.resume:
        raise SystemExit("genpo train --trainer rsl_rl: --resume is not supported (rsl_rl runs start fresh)")
    if not args.config:
        raise SystemExit("genpo train --trainer rsl_rl: give a Gaussian CONFIG.gin (e.g. gin/tasks/hopper_gaussian.gin)")
    out = args.out or _default_out(args.config)
    summary = rsl_rl.train(out, [args.config], _run_bindings(args), quiet=args.quiet)
    print(f"run directory: {out}")
    print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from genpo.builders.evaluation import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir, episodes=args.episodes, noise=args.noise, seed=args.seed), indent=2))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from genpo.sweep import main as sweep_main

    if args.dry_run and args.report_only:
        raise SystemExit("genpo sweep: --dry-run and --report-only exclude each other")
    command = shlex.join(["genpo", *sys.argv[1:]]) if args.argv is None else shlex.join(["genpo", *args.argv])
    return sweep_main(
        args.spec, max_parallel=args.max_parallel, dry_run=args.dry_run, report_only=args.report_only, command=command
    )


def _components(args: argparse.Namespace) -> int:
    import genpo  # noqa: F401  (registers everything)

    kinds = [args.kind] if args.kind else registry.kinds()
    for kind in kinds:
        print(f"{kind}:")
        for name in registry.names(kind):
            cls = registry.get(kind, name)
            summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            print(f"  {name:<28} {cls.__module__}.{cls.__qualname__}  {summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genpo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a policy from a gin config, or resume a run")
    train.add_argument("config", nargs="?", help="gin config file, e.g. gin/tasks/pendulum.gin")
    train.add_argument("--gin", action="append", default=[], metavar="BINDING", help="extra gin binding (repeatable)")
    train.add_argument("--out", type=Path, help="run directory (default: runs/<config>-<time>)")
    train.add_argument("--seed", type=int)
    train.add_argument("--iterations", type=int, help="iterations to run (with --resume: how many more)")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    train.add_argument(
        "--trainer",
        choices=("genpo", "rsl_rl"),
        default="genpo",
        help="rsl_rl: train a Gaussian config with rsl_rl's OnPolicyRunner instead (needs the bench extra)",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a run's latest checkpoint; prints JSON")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--noise", choices=("zero", "fixed", "random"), default="zero")
    evaluate.add_argument("--seed", type=int, default=12345)
    evaluate.set_defaults(handler=_evaluate)

    sweep = commands.add_parser(
        "sweep", help="train every (variant, seed) of a TOML sweep spec in parallel processes, then write a report"
    )
    sweep.add_argument("spec", type=Path, help="sweep spec (TOML), e.g. sweeps/pendulum_schemes.toml; see docs/sweeps.md")
    sweep.add_argument("--max-parallel", type=int, metavar="N", help="runs at once (default: cores // threads_per_run)")
    sweep.add_argument("--dry-run", action="store_true", help="print each run's command (or that it is finished); run nothing")
    sweep.add_argument("--report-only", action="store_true", help="run nothing; aggregate the runs present into OUT/report.md")
    sweep.set_defaults(handler=_sweep)

    components = commands.add_parser("components", help="list registered components")
    components.add_argument("kind", nargs="?")
    components.set_defaults(handler=_components)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, ImportError) as error:
        print(f"genpo {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
