"""Build a complete training run (env, actor, critic, PPO pieces, trainer) from gin bindings."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import gin
import numpy as np
import torch

from genpo.builders.actor import policy, value_function
from genpo.builders.config import parse_config
from genpo.builders.env import build_env
from genpo.builders.loggers import LOGGERS, metric_sinks
from genpo.builders.safe_config import parse_run_config
from genpo.components.normalizers.observation import EmpiricalNormalizer
from genpo.components.normalizers.reward import ReturnStdScaler
from genpo.envs.base import BatchedEnv
from genpo.training import data_parallel
from genpo.training.thread_policy import AUTO as AUTO_THREADS
from genpo.training.thread_policy import ThreadPolicy
from genpo.training.provenance import record_provenance
from genpo.training.run_directory import (
    CONFIG_FILE,
    OPERATIVE_CONFIG_FILE,
    RunDirectoryError,
    RunRecord,
    accept_config_change,
    config_changed,
    read_config,
    refuse_config_change,
    start_run,
)
from genpo.training.run_folder import check_run_folder, prepare_new_run
from genpo.training.trainer import PPOSettings, Trainer

__all__ = [
    "CONFIG_FILE",
    "OPERATIVE_CONFIG_FILE",
    "build_trainer",
    "check_device",
    "continue_experiment",
    "new_experiment",
    "resume_experiment",
    "run_settings",
    "seed_everything",
    "start_experiment",
    "with_budget",
]


@attrs.frozen
class RunSettings:
    """``iterations`` is None while the budget is ``env_steps``, until :func:`with_budget` resolves it."""

    iterations: int | None
    seed: int
    device: str
    num_threads: int | str | None
    env_steps: int | None = None
    logger: str = "tensorboard"


@gin.configurable("run", module="genpo")
def run_settings(
    *,
    iterations: int | None = None,
    env_steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    num_threads: int | str | None = AUTO_THREADS,
    logger: str = "tensorboard",
) -> RunSettings:
    """How long, on what and with which seed to train: ``genpo.run.iterations = 100``, or a budget in env
    steps (``genpo.run.env_steps``, rounded up to whole iterations); exactly one of the two. ``num_threads``:
    torch's thread count, an int to pin it or ``'auto'`` (None too: the cores other processes leave free,
    re-chosen between iterations; :mod:`genpo.training.thread_policy`). ``logger``: ``'tensorboard'``
    (``metrics.csv`` and TensorBoard, always written) or ``'wandb'`` (Weights & Biases as well; options
    ``genpo.wandb.*``, see :mod:`genpo.builders.loggers`)."""
    if (iterations is None) == (env_steps is None):
        raise ValueError(
            "genpo.run: bind exactly one budget, genpo.run.iterations or genpo.run.env_steps "
            f"(got iterations={iterations!r}, env_steps={env_steps!r})"
        )
    for name, value in (("iterations", iterations), ("env_steps", env_steps)):
        if value is not None and value < 1:
            raise ValueError(f"genpo.run: {name} must be >= 1, got {value!r}")
    check_device(device)
    ThreadPolicy(num_threads)  # validates
    if logger not in LOGGERS:
        raise ValueError(f"genpo.run: logger must be one of {', '.join(map(repr, LOGGERS))}, got {logger!r}")
    return RunSettings(iterations, seed, device, num_threads, env_steps, logger)


def with_budget(settings: RunSettings, env_steps_per_iteration: int) -> RunSettings:
    """``settings`` with its ``env_steps`` budget as whole iterations (at least one budget's worth)."""
    if settings.env_steps is None:
        return settings
    return attrs.evolve(settings, iterations=max(1, math.ceil(settings.env_steps / env_steps_per_iteration)))


def check_device(device: str) -> torch.device:
    """``device`` as a torch device that this machine has; otherwise one line saying why not."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {device!r}: CUDA is not available ({why}); use 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif parsed.type != "cpu":
        raise ValueError(f"device {device!r}: genpo trains on 'cpu' or 'cuda' devices")
    return parsed


_PPO_DEFAULTS = {field.name: field.default for field in attrs.fields(PPOSettings)}


@gin.configurable("trainer", module="genpo")
def build_trainer(
    env: BatchedEnv,
    run_dir: str | Path,
    *,
    loss: Callable = gin.REQUIRED,
    advantage: torch.nn.Module = gin.REQUIRED,
    lr_controller: torch.nn.Module = gin.REQUIRED,
    observation_normalizer: Callable = EmpiricalNormalizer,
    reward_scaler: Callable = ReturnStdScaler,
    exploration_schedule: torch.nn.Module | None = None,
    steps_per_env: int = _PPO_DEFAULTS["steps_per_env"],
    epochs: int = _PPO_DEFAULTS["epochs"],
    minibatches: int = _PPO_DEFAULTS["minibatches"],
    reshuffle_each_epoch: bool = _PPO_DEFAULTS["reshuffle_each_epoch"],
    observation_statistics: str = _PPO_DEFAULTS["observation_statistics"],
    max_grad_norm: float | None = _PPO_DEFAULTS["max_grad_norm"],
    critic_learning_rate: float | None = _PPO_DEFAULTS["critic_learning_rate"],
    checkpoint_interval: int = _PPO_DEFAULTS["checkpoint_interval"],
    keep_checkpoints: int = _PPO_DEFAULTS["keep_checkpoints"],
    evaluation_interval: int | None = _PPO_DEFAULTS["evaluation_interval"],
    evaluation_episodes: int = _PPO_DEFAULTS["evaluation_episodes"],
) -> Trainer:
    """Actor and critic sized from the env, the loss around them, and the trainer; all on env.device.

    The schedule parameters are :class:`PPOSettings`' fields, named here so that gin rejects a
    misspelt one at parse time; their defaults are read from ``PPOSettings``, the one place they live.

    ``evaluation_interval`` (off by default): every that many iterations the deterministic policy plays
    ``evaluation_episodes`` episodes on an env built in the ``eval`` gin scope (as ``genpo evaluate``
    builds it, seeded with :data:`EVALUATION_SEED`), logged as ``eval_return_mean`` beside the training
    return; ``best.pt`` is then the checkpoint with the best evaluation return.
    """
    for name, value, off in (
        ("observation_normalizer", observation_normalizer, "@normalizer.identity"),
        ("reward_scaler", reward_scaler, "@reward_scaler.none"),
    ):
        if value is None:
            raise ValueError(f"genpo.trainer.{name} = None: bind {off} to turn it off")
    settings = PPOSettings(
        steps_per_env=steps_per_env,
        epochs=epochs,
        minibatches=minibatches,
        reshuffle_each_epoch=reshuffle_each_epoch,
        observation_statistics=observation_statistics,
        max_grad_norm=max_grad_norm,
        critic_learning_rate=critic_learning_rate,
        checkpoint_interval=checkpoint_interval,
        keep_checkpoints=keep_checkpoints,
        evaluation_interval=evaluation_interval,
        evaluation_episodes=evaluation_episodes,
    )
    device = env.device
    actor = policy(env.observation_dim, env.action_dim).to(device)
    has_critic_observation = env.critic_observation_dim is not None
    critic_key = "critic_observation" if has_critic_observation else "observation"
    critic = value_function(env.critic_observation_dim or env.observation_dim, observation_key=critic_key).to(device)
    critic_normalizer = (
        observation_normalizer(env.critic_observation_dim, key="critic_observation").to(device)
        if has_critic_observation
        else None
    )
    return Trainer(
        env=env,
        actor=actor,
        critic=critic,
        loss=loss(actor, critic),
        advantage=advantage,
        lr_controller=lr_controller,
        observation_normalizer=observation_normalizer(env.observation_dim).to(device),
        critic_observation_normalizer=critic_normalizer,
        reward_scaler=reward_scaler(env.num_envs).to(device),
        settings=settings,
        run_dir=run_dir,
        exploration_schedule=exploration_schedule,
        evaluation_env=None if evaluation_interval is None else evaluation_env(evaluation_episodes, device),
    )


EVALUATION_SEED = 12345  # ``genpo evaluate``'s default


def evaluation_env(episodes: int, device: torch.device) -> BatchedEnv:
    """The env of periodic evaluation: the ``eval``-scoped env with one env per episode. Built leaving the
    global RNG as it was, so that the run's networks start where they would without evaluation."""
    with torch.random.fork_rng(devices=[]), gin.config_scope("eval"):
        return build_env(num_envs=episodes, seed=EVALUATION_SEED, device=device)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: on CPU a seed fixes the whole run."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def new_experiment(
    run_dir: str | Path,
    config_files: Sequence[str | Path] = (),
    bindings: Sequence[str] = (),
    *,
    overwrite: bool = False,
) -> tuple[Trainer, RunSettings]:
    """A new genpo PPO run (see :func:`start_experiment`)."""
    return start_experiment("genpo", _build, run_dir, config_files, bindings, overwrite=overwrite)


def resume_experiment(
    run_dir: str | Path, *, allow_config_change: bool = False, bindings: Sequence[str] = ()
) -> tuple[Trainer, RunSettings, RunRecord]:
    """A genpo PPO run continued from its latest checkpoint (see :func:`continue_experiment`)."""
    return continue_experiment("genpo", _build, run_dir, allow_config_change=allow_config_change, bindings=bindings)


def start_experiment(
    trainer_kind: str,
    build: Callable[[Path], tuple],
    run_dir: str | Path,
    config_files: Sequence[str | Path],
    bindings: Sequence[str],
    *,
    overwrite: bool,
) -> tuple:
    """Parse the config, ``build(run_dir) -> (trainer, RunSettings)``, and start the run directory:
    ``config.gin``, ``operative_config.gin``, ``run.json`` (with the run's provenance) and an iteration-0 checkpoint (so that a
    run killed before its first periodic checkpoint can still be resumed).

    Every binding is validated and every component built here, before any training step. A folder
    that already holds a run is refused unless ``overwrite``, one that holds anything but a run always
    (:mod:`genpo.training.run_folder`). In a data-parallel run rank 0 alone checks and writes the folder.
    """
    run_dir = Path(run_dir)
    main_rank = data_parallel.current().is_main
    if main_rank:
        check_run_folder(run_dir, overwrite=overwrite)  # before the build: a bad folder fails at once
    parse_config(config_files, bindings)
    trainer, settings = build(run_dir)
    if main_rank:
        prepare_new_run(run_dir, overwrite=overwrite)
        start_run(
            run_dir,
            trainer=trainer_kind,
            config_text=gin.config_str(),
            operative_text=gin.operative_config_str(),
            target_iterations=settings.iterations,
        )
        record_provenance(run_dir, trainer=trainer, device=settings.device)
    trainer.save()
    return trainer, settings


def continue_experiment(
    trainer_kind: str,
    build: Callable[[Path], tuple],
    run_dir: str | Path,
    *,
    allow_config_change: bool,
    bindings: Sequence[str],
) -> tuple:
    """Rebuild a run from its ``config.gin`` (read in the restricted mode of
    :mod:`genpo.builders.safe_config`, plus ``bindings``, e.g. a device) with ``build`` and load its
    latest checkpoint (a run that stopped before writing any starts again from iteration 0); returns
    (trainer, settings, run record). A ``config.gin`` edited since the run started is refused unless
    ``allow_config_change``, in which case the change is recorded in the run directory. The resuming
    process's provenance is added to ``run.json``."""
    run_dir = Path(run_dir)
    config, record = read_config(run_dir)
    if record.trainer != trainer_kind:
        raise RunDirectoryError(f"{run_dir} was trained by the {record.trainer} trainer, not {trainer_kind}")
    changed = config_changed(run_dir, record)
    if changed and not allow_config_change:
        refuse_config_change(run_dir)
    parse_run_config(config, bindings)
    trainer, settings = build(run_dir)
    main_rank = trainer.parallel.is_main
    if main_rank:
        trainer.history.discard_partial_writes()
    if trainer.history.latest.is_file() or trainer.history.iteration_paths():
        trainer.load()
    else:  # stopped before its iteration-0 checkpoint was written (a full disk): start it again
        if main_rank:
            print(f"note: {trainer.history.directory} holds no checkpoint yet; the run starts again from iteration 0", flush=True)
        trainer.save()
    if changed and main_rank:
        old_operative = (run_dir / OPERATIVE_CONFIG_FILE).read_text()
        record = accept_config_change(run_dir, record, trainer.iteration, old_operative, gin.operative_config_str())
    if main_rank:
        record_provenance(run_dir, trainer=trainer, device=settings.device, resumed_at=trainer.iteration)
    return trainer, settings, record


def _build(run_dir: Path) -> tuple[Trainer, RunSettings]:
    """The trainer of ``run_settings()``; a rank of a data-parallel run seeds with seed + rank (its
    own envs and sampling noise; the trainer starts every rank from rank 0's networks) and takes its
    node's GPU."""
    settings = run_settings()
    parallel = data_parallel.current()
    threads = start_threads(settings, pin=parallel.active)
    seed = settings.seed + parallel.rank
    seed_everything(seed)
    env = build_env(seed=seed, device=parallel.device(settings.device))
    trainer = build_trainer(env, run_dir)
    trainer.threads = threads
    trainer.metric_sinks = metric_sinks(settings.logger)
    return trainer, with_budget(settings, env.num_envs * trainer.settings.steps_per_env * parallel.world_size)


def start_threads(settings: RunSettings, *, pin: bool = False) -> ThreadPolicy:
    """Set torch's thread count for a run (see :class:`ThreadPolicy`); ``pin`` keeps an ``'auto'`` count
    at torch's current one (the ranks of a data-parallel run). The policy's ``start_line`` says what it
    chose."""
    requested = settings.num_threads
    if pin and requested in (AUTO_THREADS, None):
        requested = torch.get_num_threads()
    threads = ThreadPolicy(requested)
    threads.start()
    return threads
