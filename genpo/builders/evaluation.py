"""Rebuild a run directory's policy (latest, best or a given checkpoint) on a fresh env built in the
``eval`` gin scope, and evaluate it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import gin
import torch

from genpo.builders.safe_config import parse_run_config
from genpo.builders.env import build_env
from genpo.builders.experiment import build_trainer, check_device, run_settings
from genpo.training.checkpoint import load_checkpoint, load_module_state
from genpo.components.actors.base import Actor
from genpo.envs.base import BatchedEnv
from genpo.training.evaluation import evaluate_policy
from genpo.training.trainer import Trainer
from genpo.training.run_directory import read_config

PolicyLoader = Callable[[Trainer, Path, dict], tuple[Actor, torch.nn.Module]]


def load_genpo_policy(trainer: Trainer, path: Path, state: dict) -> tuple[Actor, torch.nn.Module]:
    """The actor and observation normaliser of a genpo checkpoint, in the trainer built from its config."""
    load_module_state(trainer.actor, state["actor"], "actor", path)
    if trainer.exploration_schedule is not None:  # the base-noise scale the policy had at that iteration
        trainer.exploration_schedule.apply(trainer.actor, int(state["iteration"]))
    load_module_state(trainer.observation_normalizer, state["observation_normalizer"], "observation_normalizer", path)
    return trainer.actor, trainer.observation_normalizer


GENPO_POLICY_KEYS = ("actor", "observation_normalizer", "iteration")


@attrs.frozen
class RestoredPolicy:
    """A run's policy as a checkpoint left it, with the eval-scoped env it was rebuilt against."""

    env: BatchedEnv
    actor: Actor
    observation_normalizer: torch.nn.Module
    checkpoint: Path
    iteration: int


def restore_policy(
    run_dir: str | Path,
    *,
    num_envs: int,
    seed: int = 12345,
    checkpoint: str | Path = "latest",
    device: str | None = None,
    load_policy: PolicyLoader = load_genpo_policy,
    checkpoint_keys: tuple[str, ...] = GENPO_POLICY_KEYS,
) -> RestoredPolicy:
    """The run's env (its config under the ``eval`` scope: ``eval/genpo.build_env.*`` bindings override the
    training env's, with ``num_envs`` and ``seed``, on ``device``, default the run's) and the policy of
    ``checkpoint`` (``latest``, ``best`` by training return, or a file), rebuilt from the run's config alone
    (gin is cleared first).

    ``load_policy(trainer, path, state) -> (actor, observation normaliser)`` reads the checkpoint's policy
    (``state`` holds ``checkpoint_keys``): genpo's by default; another trainer passes its own. The caller
    owns (and closes) the env.
    """
    run_dir = Path(run_dir)
    config, _ = read_config(run_dir)
    # The run's config.gin holds only the values it bound: bindings left by a run restored earlier in the
    # same process (a sweep evaluating its runs, a density plot of several runs) would otherwise fill its
    # gaps, e.g. one run's state-dependent std in the next run's model.
    gin.clear_config()
    parse_run_config(config)
    device = str(check_device(device)) if device is not None else run_settings().device
    with gin.config_scope("eval"):
        env = build_env(num_envs=num_envs, seed=seed, device=device)
    trainer = build_trainer(env, run_dir)
    path = trainer.history.resolve(checkpoint)
    state = load_checkpoint(path, checkpoint_keys)
    actor, observation_normalizer = load_policy(trainer, path, state)
    return RestoredPolicy(env, actor, observation_normalizer, path, int(state["iteration"]))


def evaluate_run(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    noise: str = "zero",
    seed: int = 12345,
    checkpoint: str | Path = "latest",
    device: str | None = None,
    load_policy: PolicyLoader = load_genpo_policy,
    checkpoint_keys: tuple[str, ...] = GENPO_POLICY_KEYS,
) -> dict:
    """Mean and std return of ``episodes`` episodes (one per env) of a policy of the run.

    The policy and env come from :func:`restore_policy` (``checkpoint``, ``device``, ``load_policy`` and
    ``checkpoint_keys`` as there), with ``num_envs = episodes``.
    """
    if episodes < 1:
        raise ValueError(f"evaluate: episodes must be >= 1, got {episodes!r}")
    restored = restore_policy(
        run_dir,
        num_envs=episodes,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        load_policy=load_policy,
        checkpoint_keys=checkpoint_keys,
    )
    env = restored.env
    result = evaluate_policy(restored.actor, restored.observation_normalizer, env, noise=noise, seed=seed)
    env.close()
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(restored.checkpoint),
        "checkpoint_iteration": restored.iteration,
        **result,
    }
