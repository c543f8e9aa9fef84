"""rsl_rl's PPO (rsl-rl-lib 5.x ``OnPolicyRunner``) trained on a genpo env from a genpo Gaussian config.

Why this exists: users compare genpo against the Gaussian PPO they already run, rsl_rl. To make that
comparison inside genpo's tools (``genpo train --trainer rsl_rl``, a sweep variant with
``trainer = "rsl_rl"``, ``benchmarks/throughput.py``), the same gin task config that builds genpo's
Gaussian PPO is translated into rsl_rl's runner config, the env is wrapped in rsl_rl's ``VecEnv``
shape, and the run directory gets genpo's ``metrics.csv`` / ``summary.json`` so that reports and
plots treat both alike. Training itself is rsl_rl's code, untouched.

Runs have genpo's run-directory lifecycle (``run.json``, ``config.gin``, checkpoint history, safe
stop on SIGINT/SIGTERM, ``--resume``, ``genpo evaluate``): :class:`RslRlTrainer` gives the runner the
surface of genpo's ``Trainer`` that :func:`~genpo.training.training_loop.run_training` and the CLI
use. Its checkpoint is a genpo checkpoint (loadable with ``weights_only=True``) holding rsl_rl's
``alg.save()`` dict, the adaptive learning rate, the env's state, the ``VecEnv`` adapter's episode
accumulators and pending observations, and the torch RNG state: on CPU a resumed run continues
exactly as an uninterrupted one.

What is carried over from the genpo config (read from the objects genpo builds, so that defaults and
bindings count alike): env, num_envs, steps per env, epochs, minibatches, clip, value clip on/off,
value / entropy coefficients, gamma, lambda, max grad norm, KL-adaptive (or fixed) learning rate and
target KL, actor and critic hidden sizes and activation, initial std, empirical observation
normalisation on/off. What differs, by rsl_rl's design: no reward scaling (genpo's Gaussian config
scales rewards by a running return std), the adaptive-lr rule reads rsl_rl's analytic Gaussian KL
(genpo's reads the k1 estimate), time-outs are bootstrapped with the value of the last observation
before the reset, the std is a parameter itself (genpo learns its log), the observation statistics are
updated once per iteration after the update and the normalised observation is not clipped (genpo
updates them before every rollout step and clips at 10), and every epoch visits the minibatches in the
same order. Like genpo, rsl_rl clips the actor's and the critic's gradient norms separately.

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

import torch
from tensordict import TensorDict

from genpo.baselines.rsl_rl_env import import_rsl_rl, vec_env
from genpo.builders.env import build_env
from genpo.builders.loggers import metric_sinks
from genpo.builders.evaluation import evaluate_run
from genpo.builders.experiment import (
    RunSettings,
    build_trainer,
    continue_experiment,
    run_settings,
    seed_everything,
    start_threads,
    start_experiment,
    with_budget,
)
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.networks.critic import ValueMLP
from genpo.components.networks.mlp import mlp_layout
from genpo.components.normalizers.observation import EmpiricalNormalizer, IdentityNormalizer
from genpo.components.optim.lr_controllers import FixedLR, KLAdaptiveLR
from genpo.envs.base import BatchedEnv
from genpo.training.atomic_files import atomic_write_text
from genpo.training.checkpoint import load_module_state, restore_rng_state, rng_state
from genpo.training.checkpoint_history import CheckpointHistory
from genpo.training.errors import NonFiniteError
from genpo.training.run_directory import CHECKPOINT_DIR, RunRecord
from genpo.training.trainer import PPOSettings, Trainer
from genpo.training.training_loop import CheckpointedTrainer

RSL_RL_CONFIG_FILE = "rsl_rl_config.json"
TRAINER_KIND = "rsl_rl"
CHECKPOINT_KEYS = ("iteration", "env_steps", "rsl_rl", "learning_rate", "current_learning_iteration", "vec_env", "rng")


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
    _require(not actor.state_dependent_std, "the Gaussian actor's std is state-dependent (rsl_rl's is a learned vector)")
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
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": actor.init_std},
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
    _, OnPolicyRunner = import_rsl_rl()
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


class RslRlTrainer(CheckpointedTrainer):
    """An rsl_rl ``OnPolicyRunner`` driven by genpo's run loop like genpo's ``Trainer`` (train, save,
    load and the checkpoint history come from :class:`CheckpointedTrainer`).

    ``settings``: the genpo PPO settings the runner config was translated from (for the checkpoint
    interval and how many checkpoints to keep).
    """

    CHECKPOINT_KEYS = CHECKPOINT_KEYS

    def __init__(self, runner, config: dict, settings: PPOSettings, run_dir: str | Path):
        self.runner = runner
        self.config = config
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.history = CheckpointHistory(self.run_dir / CHECKPOINT_DIR, settings.keep_checkpoints)
        self.iteration = 0
        self.env_steps = 0

    @property
    def env(self):
        """The runner's ``VecEnv`` adapter (see :func:`vec_env`)."""
        return self.runner.env

    def run_iteration(self) -> dict[str, float]:
        """One rsl_rl iteration (rollout and update); returns the iteration's metrics row."""
        try:
            row = run_iteration(self.runner)
        except ValueError as error:  # rsl_rl's check_nan
            if "NaN" not in str(error):
                raise
            raise NonFiniteError(f"iteration {self.iteration + 1}: {error}") from None
        alg = self.runner.alg
        for name, model in (("actor", alg.get_policy()), ("critic", alg._raw_critic)):  # noqa: SLF001
            bad = [key for key, value in model.state_dict().items() if value.is_floating_point() and not value.isfinite().all()]
            if bad:  # rsl_rl does not check its losses; stop before a checkpoint keeps the damage
                raise NonFiniteError(
                    f"iteration {self.iteration + 1}: rsl_rl's PPO update left non-finite {name} entries {', '.join(bad[:3])}"
                )
        self.iteration += 1
        self.env_steps += self.env.num_envs * self.config["num_steps_per_env"]
        return {"iteration": self.iteration, "env_steps": self.env_steps, **row}

    def state_dict(self) -> dict:
        alg = self.runner.alg
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "rsl_rl": alg.save(),  # actor / critic / optimizer state dicts
            "learning_rate": float(alg.learning_rate),
            "current_learning_iteration": int(self.runner.current_learning_iteration),
            "vec_env": self.env.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict, source: str | Path = "checkpoint") -> None:
        """Restore a :meth:`state_dict`; a network that does not fit the one built from the config
        fails naming the entry (``source`` names the file in that message)."""
        alg = self.runner.alg
        saved = state["rsl_rl"]
        load_module_state(alg.get_policy(), saved["actor_state_dict"], "actor", source)
        load_module_state(alg._raw_critic, saved["critic_state_dict"], "critic", source)  # noqa: SLF001
        alg.optimizer.load_state_dict(saved["optimizer_state_dict"])
        alg.learning_rate = float(state["learning_rate"])
        for group in alg.optimizer.param_groups:
            group["lr"] = alg.learning_rate
        self.runner.current_learning_iteration = int(state["current_learning_iteration"])
        self.env.load_state_dict(state["vec_env"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        restore_rng_state(state["rng"])


def _build(run_dir: Path) -> tuple[RslRlTrainer, RunSettings]:
    """What a run of the parsed config needs: the genpo trainer that the config describes, built to
    translate its settings into rsl_rl's runner config, then (re-seeded, so that rsl_rl's networks
    start from the seed) the runner on that trainer's env, which building the trainer left untouched."""
    settings = run_settings()
    threads = start_threads(settings)
    seed_everything(settings.seed)
    translated = build_trainer(build_env(seed=settings.seed, device=settings.device), run_dir)
    if translated.settings.evaluation_interval is not None:
        raise ValueError("genpo.trainer.evaluation_interval: the rsl_rl trainer has no periodic evaluation (genpo evaluate its checkpoints)")
    config = runner_config(translated)
    seed_everything(settings.seed)
    settings = with_budget(settings, translated.env.num_envs * translated.settings.steps_per_env)
    trainer = RslRlTrainer(build_runner(translated.env, config), config, translated.settings, run_dir)
    trainer.threads = threads
    trainer.metric_sinks = metric_sinks(settings.logger)
    return trainer, settings


def _write_runner_config(trainer: RslRlTrainer) -> None:
    """``rsl_rl_config.json``: the runner config the run trains (rewritten at each resume, so that it
    follows an allowed config change)."""
    path = trainer.run_dir / RSL_RL_CONFIG_FILE
    text = json.dumps(trainer.config, indent=2)
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)


def new_experiment(
    run_dir: str | Path,
    config_files: Sequence[str | Path] = (),
    bindings: Sequence[str] = (),
    *,
    overwrite: bool = False,
) -> tuple[RslRlTrainer, RunSettings]:
    """A new rsl_rl run of a Gaussian PPO config (see :func:`genpo.builders.experiment.start_experiment`):
    the run directory gets genpo's run files, an iteration-0 checkpoint and ``rsl_rl_config.json``."""
    trainer, settings = start_experiment(TRAINER_KIND, _build, run_dir, config_files, bindings, overwrite=overwrite)
    _write_runner_config(trainer)
    return trainer, settings


def resume_experiment(
    run_dir: str | Path, *, allow_config_change: bool = False, bindings: Sequence[str] = ()
) -> tuple[RslRlTrainer, RunSettings, RunRecord]:
    """An rsl_rl run continued from its latest checkpoint (see
    :func:`genpo.builders.experiment.continue_experiment`)."""
    trainer, settings, record = continue_experiment(
        TRAINER_KIND, _build, run_dir, allow_config_change=allow_config_change, bindings=bindings
    )
    _write_runner_config(trainer)
    return trainer, settings, record


class _EvaluationActor:
    """The part of genpo's actor interface that :func:`~genpo.training.evaluation.evaluate_policy`
    uses, over rsl_rl's Gaussian ``MLPModel`` (which normalises its own observations): the action is
    ``mean + std * noise``, so zero noise gives the mean."""

    def __init__(self, model, action_dim: int):
        self.model = model
        self.noise_dim = action_dim

    def eval(self) -> _EvaluationActor:
        self.model.eval()
        return self

    def sample(self, step: TensorDict, noise: torch.Tensor) -> TensorDict:
        model = self.model
        observation = TensorDict({"policy": step["observation"]}, batch_size=step.batch_size)
        model.distribution.update(model.mlp(model.get_latent(observation)))
        step["action"] = model.output_mean + model.output_std * noise
        return step


def _load_rsl_rl_policy(trainer: Trainer, path: Path, state: dict) -> tuple[_EvaluationActor, IdentityNormalizer]:
    """The rsl_rl actor of a checkpoint (it normalises its own observations), rebuilt from the runner
    config that the run's genpo config translates to."""
    from rsl_rl.utils import resolve_class

    env = trainer.env
    model_class, model_kwargs = resolve_class(runner_config(trainer)["actor"])
    observation = TensorDict({"policy": torch.zeros(env.num_envs, env.observation_dim)}, batch_size=[env.num_envs])
    model = model_class(observation, {"actor": ["policy"]}, "actor", env.action_dim, **model_kwargs).to(env.device)
    load_module_state(model, state["rsl_rl"]["actor_state_dict"], "actor", path)
    return _EvaluationActor(model, env.action_dim), IdentityNormalizer(env.observation_dim)


def evaluate_rsl_rl_run(run_dir: str | Path, **options) -> dict:
    """:func:`genpo.builders.evaluation.evaluate_run` (same options and output) for a run trained by
    rsl_rl. ``noise``: ``zero`` (the policy's mean action), ``fixed`` (one standard-normal draw per env
    held for the episode: mean + std * eps) or ``random`` (a fresh Gaussian sample every step)."""
    import_rsl_rl()  # a clear error without the bench extra
    return evaluate_run(run_dir, load_policy=_load_rsl_rl_policy, checkpoint_keys=("rsl_rl", "iteration"), **options)
