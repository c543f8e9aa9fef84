"""Evaluate a run directory's latest checkpoint on a fresh env built in the ``eval`` gin scope."""

from __future__ import annotations

from pathlib import Path

import gin

from genpo.builders.config import parse_config
from genpo.builders.env import build_env
from genpo.builders.experiment import CONFIG_FILE, build_trainer, run_settings
from genpo.training.checkpoint import load_checkpoint
from genpo.training.evaluation import evaluate_policy


def evaluate_run(run_dir: str | Path, *, episodes: int = 10, noise: str = "zero", seed: int = 12345) -> dict:
    """Mean and std return of ``episodes`` episodes (one per env) of the run's latest policy.

    The env comes from the run's config under the ``eval`` scope (``eval/genpo.build_env.*``
    bindings override the training env's), with ``num_envs = episodes``.
    """
    if episodes < 1:
        raise ValueError(f"evaluate: episodes must be >= 1, got {episodes!r}")
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a genpo run directory (no {CONFIG_FILE})")
    parse_config([run_dir / CONFIG_FILE])
    settings = run_settings()
    with gin.config_scope("eval"):
        env = build_env(num_envs=episodes, seed=seed, device=settings.device)
    trainer = build_trainer(env, run_dir)
    state = load_checkpoint(trainer.checkpoint_path, ("actor", "observation_normalizer", "iteration"))
    trainer.actor.load_state_dict(state["actor"])
    trainer.observation_normalizer.load_state_dict(state["observation_normalizer"])
    result = evaluate_policy(trainer.actor, trainer.observation_normalizer, env, noise=noise, seed=seed)
    env.close()
    return {"run_dir": str(run_dir), "checkpoint_iteration": int(state["iteration"]), **result}
