"""rsl_rl's PPO (rsl-rl-lib 5.x ``OnPolicyRunner``) trained on a genpo env from a genpo Gaussian config.

Why this exists: users compare genpo against the Gaussian PPO they already run, rsl_rl. To make that
comparison inside genpo's tools (``genpo train --trainer rsl_rl``, a sweep variant with
``trainer = "rsl_rl"``, ``benchmarks/throughput.py``), the same gin task config that builds genpo's
Gaussian PPO is translated into rsl_rl's runner config, the env is wrapped in rsl_rl's ``VecEnv``
shape, and the run directory gets genpo's ``metrics.csv`` / ``summary.json`` so that reports and
plots treat both alike. Training itself is rsl_rl's code, untouched.

What is carried over from the genpo config (read from the objects genpo builds, so that defaults and
bindings count alike): env, num_envs, steps per env, epochs, minibatches, clip, value clip on/off,
value / entropy coefficients, gamma, lambda, max grad norm, KL-adaptive (or fixed) learning rate and
target KL, actor and critic hidden sizes and activation, initial std, empirical observation
normalisation on/off. What differs, by rsl_rl's design: no reward scaling (genpo's Gaussian config
scales rewards by a running return std), the adaptive-lr rule reads rsl_rl's analytic Gaussian KL
(genpo's reads the k1 estimate), time-outs are bootstrapped with the value of the last observation
before the reset, and the gradient norm is clipped over all parameters together.

Needs the ``bench`` extra (``pip install -e '.[bench]'``); imported only when used.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import gin
import torch
from tensordict import TensorDict

from genpo.builders.config import parse_config
from genpo.builders.experiment import CONFIG_FILE, build_trainer, run_settings, seed_everything
from genpo.builders.env import build_env
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.networks.critic import ValueMLP
from genpo.components.networks.mlp import mlp_layout
from genpo.components.normalizers.observation import EmpiricalNormalizer, IdentityNormalizer
from genpo.components.optim.lr_controllers import FixedLR, KLAdaptiveLR
from genpo.envs.base import BatchedEnv
from genpo.training.run_logger import RunLogger
from genpo.training.trainer import Trainer

RSL_RL_CONFIG_FILE = "rsl_rl_config.json"


def _import_rsl_rl():
    try:
        from rsl_rl.env import VecEnv
        from rsl_rl.runners import OnPolicyRunner
    except ImportError as error:
        raise ImportError(
            "the rsl_rl trainer needs rsl-rl-lib (5.x): pip install -e '.[bench]'"
        ) from error
    return VecEnv, OnPolicyRunner


def vec_env(env: BatchedEnv):
    """rsl_rl's ``VecEnv`` over a genpo ``BatchedEnv``: observations as the ``policy`` group,
    ``dones = terminated | truncated``, ``extras["time_outs"] = truncated``. It also keeps each
    finished episode's return and length, so that returns are measured exactly as genpo's trainer
    measures them."""
    VecEnv, _ = _import_rsl_rl()

    class BatchedVecEnv(VecEnv):
        def __init__(self, env: BatchedEnv):
            self.env = env
            self.num_envs = env.num_envs
            self.num_actions = env.action_dim
            self.max_episode_length = env.max_episode_steps
            self.episode_length_buf = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
            self.device = env.device
            self.cfg = {}
            self.episode_return = torch.zeros(env.num_envs, device=env.device)
            self.finished: dict[str, list[torch.Tensor]] = {"return": [], "length": []}
            self._observations = self._group(env.reset()["observation"])

        def _group(self, observation: torch.Tensor) -> TensorDict:
            return TensorDict({"policy": observation}, batch_size=[self.num_envs], device=self.device)

        def get_observations(self) -> TensorDict:
            return self._observations

        def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
            result = self.env.step(actions)
            truncated = result["truncated"]
            dones = result["terminated"] | truncated
            self.episode_length_buf += 1
            self.episode_return += result["reward"]
            if dones.any():
                self.finished["return"].append(self.episode_return[dones].clone())
                self.finished["length"].append(self.episode_length_buf[dones].float())
                for key, value in result.get("episode_info", {}).items():
                    self.finished.setdefault(f"info/{key}", []).append(value[dones].float())
            self.episode_length_buf.masked_fill_(dones, 0)
            self.episode_return.masked_fill_(dones, 0.0)
            self._observations = self._group(result["observation"])
            return self._observations, result["reward"], dones.long(), {"time_outs": truncated}

        def pop_episodes(self) -> dict[str, torch.Tensor]:
            """``return``, ``length`` and ``info/<key>`` (the env's ``episode_info``) of each episode
            finished since the last call."""
            episodes = {key: torch.cat(values) if values else torch.zeros(0) for key, values in self.finished.items()}
            self.finished = {"return": [], "length": []}
            return episodes

    return BatchedVecEnv(env)


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"--trainer rsl_rl: {what}; rsl_rl trains only a Gaussian PPO config (e.g. gin/tasks/*_gaussian.gin)")


def _float32_value(value: torch.Tensor) -> float:
    """A float32 buffer's value as the decimal it was set from (0.99, not 0.9900000095)."""
    return float(f"{value.item():.7g}")


def runner_config(trainer: Trainer) -> dict:
    """rsl_rl's runner config for the Gaussian PPO that a genpo ``Trainer`` was built to train.

    Every setting rsl_rl cannot reproduce is an error naming it.
    """
    actor, critic, loss, settings = trainer.actor, trainer.critic, trainer.loss, trainer.settings
    _require(isinstance(actor, GaussianActor), f"the actor is {type(actor).__name__}, not the Gaussian actor")
    _require(isinstance(critic, ValueMLP), f"the critic is {type(critic).__name__}, not critic.mlp")
    _require(loss.compression is None, "the loss has a compression term")
    _require(trainer.critic_observation_normalizer is None, "the env has separate critic observations")
    _require(settings.critic_learning_rate is None, "genpo.trainer.critic_learning_rate is set (rsl_rl has one lr)")
    controller = trainer.lr_controller
    _require(isinstance(controller, KLAdaptiveLR | FixedLR), f"the lr controller is {type(controller).__name__}")
    normalizer = trainer.observation_normalizer
    _require(isinstance(normalizer, EmpiricalNormalizer | IdentityNormalizer), f"observation normaliser {type(normalizer).__name__}")
    estimator = trainer.advantage.estimator
    actor_hidden, actor_activation = mlp_layout(actor.mean)
    critic_hidden, critic_activation = mlp_layout(critic.net)
    normalize = isinstance(normalizer, EmpiricalNormalizer)
    algorithm = {
        "class_name": "PPO",
        "num_learning_epochs": settings.epochs,
        "num_mini_batches": settings.minibatches,
        "clip_param": loss.clip_epsilon,
        "gamma": _float32_value(estimator.gamma),
        "lam": _float32_value(estimator.lmbda),
        "value_loss_coef": loss.value_coefficient,
        "entropy_coef": loss.entropy_coefficient,
        "learning_rate": controller.learning_rate,
        "max_grad_norm": settings.max_grad_norm if settings.max_grad_norm is not None else math.inf,
        "use_clipped_value_loss": loss.value_clip is not None,
        "schedule": "adaptive" if isinstance(controller, KLAdaptiveLR) else "fixed",
    }
    if isinstance(controller, KLAdaptiveLR):
        algorithm["desired_kl"] = controller.target_kl
    return {
        "num_steps_per_env": settings.steps_per_env,
        "save_interval": 10**9,
        "check_for_nan": True,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": algorithm,
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": list(actor_hidden),
            "activation": actor_activation,
            "obs_normalization": normalize,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": actor.log_std.exp()[0].item()},
        },
        "critic": {
            "class_name": "MLPModel",
            "hidden_dims": list(critic_hidden),
            "activation": critic_activation,
            "obs_normalization": normalize,
        },
    }


def build_runner(env: BatchedEnv, config: dict):
    """An ``OnPolicyRunner`` (no log dir: genpo writes the run's files) over :func:`vec_env` of ``env``."""
    _, OnPolicyRunner = _import_rsl_rl()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints both models
        return OnPolicyRunner(vec_env(env), config, log_dir=None, device=str(env.device))


def run_iteration(runner) -> dict[str, float]:
    """One ``runner.learn`` iteration (without a log dir rsl_rl prints nothing); returns a metrics
    row in genpo's columns, without ``iteration`` / ``env_steps``."""
    start = time.perf_counter()
    runner.learn(num_learning_iterations=1)
    seconds = time.perf_counter() - start
    episodes = runner.env.pop_episodes()
    count = episodes["return"].numel()
    steps = runner.env.num_envs * runner.cfg["num_steps_per_env"]
    means = {key: values.mean().item() if count else math.nan for key, values in episodes.items()}
    return {
        "wall_time": seconds,
        "return_mean": means.pop("return"),
        "episode_length_mean": means.pop("length"),
        "episodes": count,
        "lr": runner.alg.learning_rate,
        "action_std": runner.alg.get_policy().output_std.mean().item(),
        "env_steps_per_s": steps / seconds,
        **means,
    }


def train(run_dir: str | Path, config_files: Sequence[str | Path], bindings: Sequence[str] = (), *, quiet: bool = False) -> dict:
    """Train rsl_rl's PPO for the Gaussian config in ``config_files``; genpo's run files in ``run_dir``.

    ``genpo.run.seed`` / ``num_threads`` / ``iterations`` / ``device`` apply as for genpo's trainer.
    Returns the run summary.
    """
    parse_config(config_files, bindings)
    run_dir = Path(run_dir)
    settings = run_settings()
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    seed_everything(settings.seed)
    config = runner_config(build_trainer(build_env(seed=settings.seed, device=settings.device), run_dir))
    seed_everything(settings.seed)
    env = build_env(seed=settings.seed, device=settings.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(gin.config_str())
    (run_dir / RSL_RL_CONFIG_FILE).write_text(json.dumps(config, indent=2))
    runner = build_runner(env, config)
    total = settings.iterations
    logger = RunLogger(run_dir, total, quiet=quiet)
    steps_per_iteration = env.num_envs * config["num_steps_per_env"]
    for iteration in range(1, total + 1):
        row = run_iteration(runner)
        logger.log({"iteration": iteration, "env_steps": iteration * steps_per_iteration, **row})
    return logger.close()
