"""``genpo train | evaluate | export | play | sweep | tune | components``: parse arguments, load gin, call the builders."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from genpo import registry

if TYPE_CHECKING:
    from genpo.training.data_parallel import DataParallel


def _train(args: argparse.Namespace) -> int:
    """One run, or under torchrun one rank of a data-parallel run (rank 0 alone prints)."""
    from genpo.training import data_parallel
    from genpo.training.provenance import command_line, invocation

    parallel = data_parallel.join_from_environment()
    argv = sys.argv[1:] if args.argv is None else args.argv
    try:
        with invocation(command_line(["genpo", *argv])), _writer_lock(args, parallel):
            return _train_rank(args, parallel)
    finally:
        data_parallel.leave()


def _writer_lock(args: argparse.Namespace, parallel: DataParallel):
    """The run directory's lock (rank 0 alone takes it), after the checks that need no build: a
    folder that cannot take the run, or a run another process is writing, fails here at once."""
    import contextlib

    from genpo.training.run_directory import read_config
    from genpo.training.run_folder import check_run_folder
    from genpo.training.run_lock import RunLock

    if not parallel.is_main:
        return contextlib.nullcontext()
    if args.resume is not None:
        read_config(args.resume)
        return RunLock(args.resume)
    if not args.config:
        return contextlib.nullcontext()  # _new_run says what is missing
    if args.out is None and not parallel.active:
        args.out = _default_out(args.config)
    if args.out is None:
        return contextlib.nullcontext()
    return RunLock(check_run_folder(args.out, overwrite=args.overwrite))


def _train_rank(args: argparse.Namespace, parallel: DataParallel) -> int:
    from genpo.training.interrupts import TrainingInterrupted

    trainer, iterations = _resume_run(args, parallel) if args.resume else _new_run(args, parallel)
    if trainer is None:
        return 0
    from genpo.invocation import genpo_command

    run_dir = trainer.run_dir
    resume_hint = f"resume with: {genpo_command()} train --resume {run_dir}"
    if parallel.active:
        resume_hint = f"resume with: torchrun --nproc-per-node {parallel.world_size} -m genpo train --resume {run_dir}"
    if parallel.is_main:
        print(f"run directory: {run_dir}", flush=True)
        _print_precision(trainer)
        threads = getattr(trainer, "threads", None)
        if threads is not None:
            print(threads.start_line, flush=True)
    try:
        summary = trainer.train(iterations, quiet=args.quiet)
    except TrainingInterrupted as stop:
        if parallel.is_main:
            print(f"genpo train: stopped by {stop}\n{resume_hint}", file=sys.stderr)
        return stop.exit_code
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "allocate" not in str(error):
            raise
        from genpo.builders.env import out_of_memory

        num_envs = getattr(getattr(trainer, "env", None), "num_envs", "?")
        raise ValueError(
            f"training ran out of memory ({out_of_memory(error)}) with genpo.build_env.num_envs = {num_envs}: lower it "
            f"(or genpo.trainer.steps_per_env); the last checkpoint is {trainer.checkpoint_path}"
        ) from None
    except KeyboardInterrupt:
        print(
            f"genpo train: interrupted twice; the iteration in flight was abandoned, the last checkpoint "
            f"is {trainer.checkpoint_path}\n{resume_hint}",
            file=sys.stderr,
        )
        return 130
    if not parallel.is_main:
        return 0
    print(f"learning curve: {run_dir / 'learning_curve.png'}")
    print(f"checkpoint: {trainer.checkpoint_path}")
    print(json.dumps(summary, indent=2))
    return 0


def _print_precision(trainer) -> None:
    """The precision the policy's networks run in, so a user sees what ``autocast_dtype = 'auto'`` chose."""
    from genpo.components.networks.cpu_precision import describe_precision

    actor = getattr(trainer, "actor", None)
    line = describe_precision(actor) if actor is not None else None
    if line:
        print(f"precision: {line}", flush=True)


def _new_run(args: argparse.Namespace, parallel: DataParallel):
    """Build a new run from CONFIG; returns (trainer, iterations to run)."""
    if not args.config:
        raise SystemExit("genpo train: give a CONFIG.gin (e.g. gin/tasks/pendulum.gin) or --resume DIR")
    if args.allow_config_change:
        raise SystemExit("genpo train: --allow-config-change applies to --resume only")
    if args.out is None and parallel.active:
        raise SystemExit("genpo train: a data-parallel run needs --out (every rank must name the same directory)")
    out = args.out or _default_out(args.config)
    trainer_kind = args.trainer or "genpo"
    _check_data_parallel(trainer_kind, parallel)
    trainer, settings = _trainer_entry_points(trainer_kind)[0](out, [args.config], _run_bindings(args), overwrite=args.overwrite)
    return trainer, settings.iterations


def _resume_run(args: argparse.Namespace, parallel: DataParallel):
    """Rebuild the run in --resume DIR at its latest checkpoint; returns (trainer, iterations to run),
    or (None, 0) for a run that already reached its target."""
    from genpo.training.rollout import EnvResetOnResume
    from genpo.training.run_directory import iterations_to_run, read_config

    given = [name for name, value in (("CONFIG", args.config), ("--gin", args.gin), ("--seed", args.seed),
             ("--out", args.out), ("--overwrite", args.overwrite), ("--trainer", args.trainer),
             ("--num-envs", args.num_envs), ("--env-steps", args.env_steps)) if value]  # fmt: skip
    if given:
        raise SystemExit(
            f"genpo train --resume DIR: {', '.join(given)} cannot be given (the run's config.gin is reused; "
            "--iterations, --device, --threads, --allow-config-change and --quiet can)"
        )
    from genpo.invocation import genpo_command

    _, record = read_config(args.resume)
    _check_data_parallel(record.trainer, parallel)
    resume = _trainer_entry_points(record.trainer)[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EnvResetOnResume)
        trainer, _, record = resume(args.resume, allow_config_change=args.allow_config_change, bindings=_device_bindings(args))
    for warning in caught:
        if issubclass(warning.category, EnvResetOnResume) and parallel.is_main:
            print(f"genpo train: {warning.message}", file=sys.stderr)
        elif not issubclass(warning.category, EnvResetOnResume):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    iterations, record = iterations_to_run(args.resume, record, trainer.iteration, args.iterations, write=parallel.is_main)
    if iterations == 0 and parallel.is_main:
        print(
            f"{args.resume} already finished its {record.target_iterations} iterations; "
            f"`{genpo_command()} train --resume {args.resume} --iterations N` trains N more"
        )
    return (None, 0) if iterations == 0 else (trainer, iterations)


def _check_data_parallel(trainer_kind: str, parallel: DataParallel) -> None:
    if parallel.active and trainer_kind != "genpo":
        raise SystemExit(f"genpo train: the {trainer_kind} trainer runs in one process; launch it without torchrun")


def _trainer_entry_points(trainer_kind: str):
    """(new, resume) of a trainer kind (its evaluate: :func:`genpo.experiments.evaluation.evaluator`)."""
    if trainer_kind == "rsl_rl":
        from genpo.baselines import rsl_rl

        return rsl_rl.new_experiment, rsl_rl.resume_experiment
    from genpo.builders.experiment import new_experiment, resume_experiment

    return new_experiment, resume_experiment


def _device_bindings(args: argparse.Namespace) -> list[str]:
    """Where the run computes: --device and --threads, which a resumed run may change too."""
    bindings = [] if args.device is None else [f"genpo.run.device = {args.device!r}"]
    if args.threads is not None:
        bindings.append(f"genpo.run.num_threads = {args.threads!r}")
    return bindings


def _thread_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"an int >= 1 or 'auto', got {text!r}")
    return count


def _run_bindings(args: argparse.Namespace) -> list[str]:
    """The gin bindings that a new run's flags stand for, after the --gin ones (so the flags win)."""
    bindings = [*args.gin, *_device_bindings(args)]
    if args.seed is not None:
        bindings.append(f"genpo.run.seed = {args.seed}")
    if args.num_envs is not None:
        bindings.append(f"genpo.build_env.num_envs = {args.num_envs}")
    if args.iterations is not None:
        bindings.append(f"genpo.run.iterations = {args.iterations}")
    if args.env_steps is not None:
        bindings += ["genpo.run.iterations = None", f"genpo.run.env_steps = {args.env_steps}"]
    return bindings


def _default_out(config: str) -> Path:
    return Path("runs") / f"{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _evaluate(args: argparse.Namespace) -> int:
    from genpo.training.run_directory import read_config

    _, record = read_config(args.run_dir)
    from genpo.experiments.evaluation import evaluator

    from genpo.training.provenance import read_provenance

    evaluate = evaluator(record.trainer)
    result = evaluate(
        args.run_dir, episodes=args.episodes, noise=args.noise, seed=args.seed, checkpoint=args.checkpoint, device=args.device
    )
    result["provenance"] = read_provenance(args.run_dir)
    print(json.dumps(result, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from genpo.deployment.export import export_run

    card = export_run(args.run_dir, format=args.format, noise=args.noise, out=args.out, checkpoint=args.checkpoint)
    out = args.out if args.out is not None else args.run_dir / "exported"
    for name in [*card["files"].values(), "policy.json"]:
        print(out / name)
    return 0


def _play(args: argparse.Namespace) -> int:
    from genpo.deployment.play import play_run

    summary = play_run(
        args.run_dir,
        episodes=args.episodes,
        noise=args.noise,
        seed=args.seed,
        checkpoint=args.checkpoint,
        device=args.device,
        video=args.video,
    )
    print(f"mean return over {len(summary['episodes'])} episode(s): {summary['return_mean']:.2f}")
    if "video" in summary:
        print(f"video: {summary['video']} ({summary['video_frames']} frames)")
    if "wandb_run" in summary:
        print(f"video logged to W&B run {summary['wandb_run']}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from genpo.experiments.command import main as sweep_main

    if args.dry_run and args.report_only:
        raise SystemExit("genpo sweep: --dry-run and --report-only exclude each other")
    if args.archive is not None and not args.report_only:
        raise SystemExit("genpo sweep: --archive needs --report-only (archive the runs present, run nothing)")
    ray = _ray_options("sweep", args)
    command = shlex.join(["genpo", *sys.argv[1:]]) if args.argv is None else shlex.join(["genpo", *args.argv])
    return sweep_main(
        args.spec,
        max_parallel=args.max_parallel,
        dry_run=args.dry_run,
        report_only=args.report_only,
        command=command,
        out=args.out,
        archive=args.archive,
        ray=ray,
        variants=args.variants,
    )


def _ray_options(command: str, args: argparse.Namespace):
    """The Ray backend's options of ``genpo sweep`` / ``genpo tune`` (None for the local backend); options
    of the other backend are refused in one line."""
    if args.backend == "ray":
        from genpo.experiments.ray_backend import RayOptions

        if args.max_parallel is not None:
            raise SystemExit(f"genpo {command}: --max-parallel is for --backend local; Ray runs what --cpus-per-run / --gpus-per-run fit")
        return RayOptions(args.address, args.cpus_per_run, args.gpus_per_run or 0.0)
    given = [name for name, value in (("--address", args.address), ("--cpus-per-run", args.cpus_per_run),
             ("--gpus-per-run", args.gpus_per_run)) if value is not None]  # fmt: skip
    if given:
        raise SystemExit(f"genpo {command}: {', '.join(given)} need --backend ray")
    return None


def _tune(args: argparse.Namespace) -> int:
    from genpo.experiments.tune import main as tune_main

    ray = _ray_options("tune", args)
    command = shlex.join(["genpo", *(sys.argv[1:] if args.argv is None else args.argv)])
    return tune_main(
        args.spec, command=command, storage_url=args.storage, max_parallel=args.max_parallel, ray=ray, report_only=args.report_only
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
    train.add_argument("--seed", type=int, help="genpo.run.seed")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument(
        "--iterations",
        type=int,
        help="genpo.run.iterations: iterations to run (with --resume: how many more; without, resume finishes the run's budget)",
    )
    budget.add_argument(
        "--env-steps", type=int, metavar="N", help="genpo.run.env_steps: the budget in env steps, rounded up to whole iterations"
    )
    train.add_argument("--num-envs", type=int, metavar="N", help="genpo.build_env.num_envs: envs stepped side by side")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    train.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start over")
    train.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue although config.gin was edited (recorded in config_changes.md)",
    )
    train.add_argument("--device", help="torch device, e.g. cpu or cuda (default: genpo.run.device, cpu)")
    train.add_argument(
        "--threads",
        type=_thread_count,
        metavar="N",
        help="torch threads: N pins them (bit-reproducible), 'auto' (default) uses the cores other processes leave "
        "free, re-chosen between iterations (genpo.run.num_threads)",
    )
    train.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    train.add_argument(
        "--trainer",
        choices=("genpo", "rsl_rl"),
        help="rsl_rl: train a Gaussian config with rsl_rl's OnPolicyRunner instead (needs the bench extra)",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a run's checkpoint; prints JSON")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument(
        "--checkpoint", default="latest", metavar="latest|best|PATH", help="which checkpoint (default: latest)"
    )
    evaluate.add_argument("--device", help="torch device (default: the run's)")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--noise", choices=("zero", "fixed", "random"), default="zero")
    evaluate.add_argument("--seed", type=int, default=12345)
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export", help="export a run's policy as one ONNX and/or TorchScript graph (see docs/deployment.md)"
    )
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=("onnx", "torchscript", "both"), default="both")
    export.add_argument(
        "--noise",
        choices=("zero", "input"),
        default="zero",
        help="zero: the deterministic policy (one input); input: the base noise is a second input",
    )
    export.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: RUN_DIR/exported)")
    export.add_argument(
        "--checkpoint", default="latest", metavar="latest|best|PATH", help="which checkpoint (default: latest)"
    )
    export.set_defaults(handler=_export)

    play = commands.add_parser("play", help="run a run's policy in its task's env; prints each episode, can film one")
    play.add_argument("run_dir", type=Path)
    play.add_argument("--episodes", type=int, default=1, help="episodes, played side by side (default: 1)")
    play.add_argument("--noise", choices=("zero", "fixed", "random"), default="zero")
    play.add_argument("--seed", type=int, default=12345)
    play.add_argument("--video", type=Path, metavar="FILE", help="write the first episode to FILE (.mp4 or .gif)")
    play.add_argument(
        "--checkpoint", default="latest", metavar="latest|best|PATH", help="which checkpoint (default: latest)"
    )
    play.add_argument("--device", help="torch device (default: the run's)")
    play.set_defaults(handler=_play)

    sweep = commands.add_parser(
        "sweep", help="train every (variant, seed) of a TOML sweep spec in parallel processes or Ray tasks, then write a report"
    )
    sweep.add_argument("spec", type=Path, help="sweep spec (TOML), e.g. sweeps/pendulum_schemes.toml; see docs/sweeps.md")
    sweep.add_argument(
        "--variants",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the variants whose names match PATTERN (shell-style, e.g. 'ant.*'; repeatable): run, report or archive part of a sweep",
    )
    sweep.add_argument("--max-parallel", type=int, metavar="N", help="runs at once (default: cores // threads_per_run)")
    sweep.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: processes on this machine; ray: one Ray task per run (the scale extra; see docs/scaling.md)",
    )
    sweep.add_argument("--address", help="with --backend ray: the cluster to join (default: start Ray on this machine)")
    sweep.add_argument("--cpus-per-run", type=float, metavar="C", help="with --backend ray: CPUs per run (default: threads_per_run)")
    sweep.add_argument("--gpus-per-run", type=float, metavar="G", help="with --backend ray: GPUs per run (default: 0)")
    sweep.add_argument("--dry-run", action="store_true", help="print each run's command (or that it is finished); run nothing")
    sweep.add_argument("--report-only", action="store_true", help="run nothing; aggregate the runs present into OUT/report.md")
    sweep.add_argument("--out", type=Path, metavar="DIR", help="the sweep's directory instead of the spec's out (e.g. an archive)")
    sweep.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="with --report-only: copy every run's metrics.csv, summary.json, config.gin and run.json to DIR/<variant>/seed<k>/ "
        "and write the report there (commit DIR; --report-only --out DIR rebuilds it)",
    )
    sweep.set_defaults(handler=_sweep)

    tune = commands.add_parser(
        "tune", help="equal-budget Optuna search per contender over gin bindings, then held-out validation and a report"
    )
    tune.add_argument("spec", type=Path, help="tuning spec (TOML), e.g. sweeps/tune/mujoco_genpo_gaussian.toml; see docs/tuning.md")
    tune.add_argument("--storage", metavar="URL", help="the study database (default: the spec's storage, or sqlite:///OUT.optuna.db)")
    tune.add_argument("--backend", choices=("local", "ray"), default="local", help="local processes, or one Ray task per run")
    tune.add_argument("--max-parallel", type=int, metavar="N", help="with --backend local: runs at once (default: cores // threads_per_run)")
    tune.add_argument("--address", help="with --backend ray: the cluster to join (default: start Ray on this machine)")
    tune.add_argument("--cpus-per-run", type=float, metavar="C", help="with --backend ray: CPUs per run (default: threads_per_run)")
    tune.add_argument("--gpus-per-run", type=float, metavar="G", help="with --backend ray: GPUs per run (default: 0)")
    tune.add_argument("--report-only", action="store_true", help="run nothing; write OUT/report.md from the study database")
    tune.set_defaults(handler=_tune)

    components = commands.add_parser("components", help="list registered components")
    components.add_argument("kind", nargs="?")
    components.set_defaults(handler=_components)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except (ValueError, OSError, KeyError, RuntimeError, ImportError) as error:
        print(f"genpo {args.command}: error: {_without_gin_context(str(error))}", file=sys.stderr)
        return 2


def _without_gin_context(message: str) -> str:
    """gin appends "In call to configurable ..." lines to errors raised inside configurables; the
    message already names the culprit."""
    return "\n".join(line for line in message.splitlines() if not line.strip().startswith("In call to configurable"))


if __name__ == "__main__":
    sys.exit(main())
