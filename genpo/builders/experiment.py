"""Build a complete training run (env, actor, critic, PPO pieces, trainer) from gin bindings."""

from __future__ import annotations

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
from genpo.components.normalizers.observation import EmpiricalNormalizer
from genpo.components.normalizers.reward import ReturnStdScaler
from genpo.envs.base import BatchedEnv
from genpo.training.trainer import PPOSettings, Trainer

CONFIG_FILE = "config.gin"
OPERATIVE_CONFIG_FILE = "operative_config.gin"


@attrs.frozen
class RunSettings:
    iterations: int
    seed: int
    device: str
    num_threads: int | None


@gin.configurable("run", module="genpo")
def run_settings(
    *, iterations: int = gin.REQUIRED, seed: int = 0, device: str = "cpu", num_threads: int | None = None
) -> RunSettings:
    """How long, on what and with which seed to train: ``genpo.run.iterations = 100``."""
    if iterations < 1:
        raise ValueError(f"genpo.run: iterations must be >= 1, got {iterations!r}")
    return RunSettings(iterations, seed, device, num_threads)


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
    steps_per_env: int = 32,
    epochs: int = 5,
    minibatches: int = 4,
    max_grad_norm: float | None = 1.0,
    kl_for_lr: str = "k1",
    critic_learning_rate: float | None = None,
    checkpoint_interval: int = 10,
) -> Trainer:
    """Actor and critic sized from the env, the loss around them, and the trainer; all on env.device."""
    settings = PPOSettings(
        steps_per_env=steps_per_env,
        epochs=epochs,
        minibatches=minibatches,
        max_grad_norm=max_grad_norm,
        kl_for_lr=kl_for_lr,
        critic_learning_rate=critic_learning_rate,
        checkpoint_interval=checkpoint_interval,
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
    )


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: on CPU a seed fixes the whole run."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def new_experiment(
    run_dir: str | Path, config_files: Sequence[str | Path] = (), bindings: Sequence[str] = ()
) -> tuple[Trainer, RunSettings]:
    """Parse the config, build everything, and save ``config.gin`` and ``operative_config.gin``.

    Every binding is validated and every component built here, before any training step.
    """
    parse_config(config_files, bindings)
    run_dir = Path(run_dir)
    trainer, settings = _build(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(gin.config_str())
    (run_dir / OPERATIVE_CONFIG_FILE).write_text(gin.operative_config_str())
    return trainer, settings


def resume_experiment(run_dir: str | Path) -> tuple[Trainer, RunSettings]:
    """Rebuild a run from its ``config.gin`` and load its latest checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a genpo run directory (no {CONFIG_FILE})")
    parse_config([run_dir / CONFIG_FILE])
    trainer, settings = _build(run_dir)
    trainer.load()
    return trainer, settings


def _build(run_dir: Path) -> tuple[Trainer, RunSettings]:
    settings = run_settings()
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    seed_everything(settings.seed)
    env = build_env(seed=settings.seed, device=settings.device)
    return build_trainer(env, run_dir), settings
