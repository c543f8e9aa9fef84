"""Evaluate a run directory's checkpoint (latest, best or a file) on a fresh env built in the
``eval`` gin scope."""

from __future__ import annotations

from pathlib import Path

import gin

from genpo.builders.config import parse_config
from genpo.builders.env import build_env
from genpo.builders.experiment import build_trainer, check_device, run_settings
from genpo.training.checkpoint import load_checkpoint, load_module_state
from genpo.training.evaluation import evaluate_policy
from genpo.training.run_directory import read_config


def evaluate_run(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    noise: str = "zero",
    seed: int = 12345,
    checkpoint: str | Path = "latest",
    device: str | None = None,
) -> dict:
    """Mean and std return of ``episodes`` episodes (one per env) of a policy of the run.

    ``checkpoint``: ``latest``, ``best`` (by training return) or a checkpoint file. The env comes
    from the run's config under the ``eval`` scope (``eval/genpo.build_env.*`` bindings override the
    training env's), with ``num_envs = episodes``, on ``device`` (default: the run's).
    """
    if episodes < 1:
        raise ValueError(f"evaluate: episodes must be >= 1, got {episodes!r}")
    run_dir = Path(run_dir)
    config, record = read_config(run_dir)
    if record.trainer != "genpo":
        raise ValueError(f"{run_dir} was trained by the {record.trainer} trainer: evaluate it with that trainer's evaluator")
    parse_config([config])
    device = str(check_device(device)) if device is not None else run_settings().device
    with gin.config_scope("eval"):
        env = build_env(num_envs=episodes, seed=seed, device=device)
    trainer = build_trainer(env, run_dir)
    path = trainer.history.resolve(checkpoint)
    state = load_checkpoint(path, ("actor", "observation_normalizer", "iteration"))
    load_module_state(trainer.actor, state["actor"], "actor", path)
    load_module_state(trainer.observation_normalizer, state["observation_normalizer"], "observation_normalizer", path)
    result = evaluate_policy(trainer.actor, trainer.observation_normalizer, env, noise=noise, seed=seed)
    env.close()
    return {"run_dir": str(run_dir), "checkpoint": str(path), "checkpoint_iteration": int(state["iteration"]), **result}
