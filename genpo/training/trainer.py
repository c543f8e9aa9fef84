"""The PPO trainer: collect a rollout, estimate advantages, run epochs x minibatches of updates."""

from __future__ import annotations

import math
import time
from pathlib import Path

import attrs
import torch
from tensordict import TensorDict
from torch import nn

from genpo.components.actors.base import Actor
from genpo.components.contracts import AdvantageEstimator, Critic, ExplorationSchedule, Loss, Normalizer, RewardScaler
from genpo.components.optim.lr_controllers import LRController
from genpo.envs.base import BatchedEnv
from genpo.training import data_parallel
from genpo.training.checkpoint import load_module_state, restore_rng_state, rng_state
from genpo.training.checkpoint_history import CheckpointHistory
from genpo.training.data_parallel import DataParallelError
from genpo.training.errors import CheckpointError, NonFiniteError
from genpo.training.evaluation import evaluate_policy
from genpo.training.rollout import RolloutCollector
from genpo.training.run_directory import CHECKPOINT_DIR
from genpo.training.training_loop import CheckpointedTrainer
from genpo.validation import positive

CHECKPOINT_KEYS = (
    "iteration",
    "env_steps",
    "actor",
    "critic",
    "observation_normalizer",
    "critic_observation_normalizer",
    "reward_scaler",
    "lr_controller",
    "optimizer",
    "collector",
    "rng",
)


OBSERVATION_STATISTICS = ("before_each_step", "after_update")


@attrs.frozen
class PPOSettings:
    """The update schedule and optimiser settings of one PPO run.

    ``reshuffle_each_epoch``: a fresh minibatch split every epoch (True), or one split per update that
    every epoch walks in the same order (False: rsl_rl's). ``observation_statistics``: when the
    observation normalisers fold in what the env returned, ``'before_each_step'`` (each step's observation
    before the actor sees it) or ``'after_update'`` (the whole rollout's, once, after its update: rsl_rl's,
    so one iteration's rollout and update see the same statistics and the first rollout none).
    """

    steps_per_env: int = attrs.field(default=32, validator=positive)
    epochs: int = attrs.field(default=5, validator=positive)
    minibatches: int = attrs.field(default=4, validator=positive)
    reshuffle_each_epoch: bool = True
    observation_statistics: str = attrs.field(default="before_each_step", validator=attrs.validators.in_(OBSERVATION_STATISTICS))
    max_grad_norm: float | None = attrs.field(default=1.0, validator=positive)
    critic_learning_rate: float | None = attrs.field(default=None, validator=positive)
    checkpoint_interval: int = attrs.field(default=10, validator=positive)
    keep_checkpoints: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    evaluation_interval: int | None = attrs.field(default=None, validator=positive)
    evaluation_episodes: int = attrs.field(default=10, validator=positive)


def check_lr_controller_fits(actor: Actor, lr_controller: LRController) -> None:
    """Refuse a KL-driven lr controller for an actor without a likelihood: its KL estimate is no KL."""
    if lr_controller.uses_kl and not actor.has_likelihood:
        raise ValueError(
            f"{_component_name(actor)} has no likelihood (its log_prob is a surrogate), so its KL estimate "
            f"cannot drive {_component_name(lr_controller)}; bind a fixed learning rate instead: "
            "genpo.trainer.lr_controller = @lr_controller.fixed() and lr_controller.fixed.learning_rate = <lr>"
        )


def _component_name(component: object) -> str:
    """``kind.name`` of a registered component, else its class name."""
    kind, name = getattr(component, "registered_kind", None), getattr(component, "registered_name", None)
    return f"{kind}.{name}" if kind and name else type(component).__name__


class Trainer(CheckpointedTrainer):
    """Owns the run: networks, optimiser, lr controller, normalisers, collector and run directory.

    Depends only on the contracts of its components (:mod:`genpo.components.contracts`): a loss that
    returns ``loss_*`` terms plus detached diagnostics, among them the KL that drives the lr under the key
    ``loss.kl_key`` (``loss.start_update()`` runs before each update), and the env seam. Under
    torchrun it is one rank of a data-parallel run (:mod:`genpo.training.data_parallel`): metrics and env steps are over
    all ranks, and a checkpoint holds every rank's env, episodes, return scaler and RNG.
    """

    CHECKPOINT_KEYS = CHECKPOINT_KEYS

    def __init__(
        self,
        *,
        env: BatchedEnv,
        actor: Actor,
        critic: Critic,
        loss: Loss,
        advantage: AdvantageEstimator,
        lr_controller: LRController,
        observation_normalizer: Normalizer,
        critic_observation_normalizer: Normalizer | None,
        reward_scaler: RewardScaler,
        settings: PPOSettings,
        run_dir: str | Path,
        exploration_schedule: ExplorationSchedule | None = None,
        evaluation_env: BatchedEnv | None = None,
    ):
        check_lr_controller_fits(actor, lr_controller)
        if exploration_schedule is not None:
            exploration_schedule.check_actor(actor)
        if (settings.evaluation_interval is None) != (evaluation_env is None):
            raise ValueError("Trainer: an evaluation env is needed exactly when settings.evaluation_interval is set")
        batch = env.num_envs * settings.steps_per_env
        if batch < settings.minibatches:
            raise ValueError(f"PPOSettings: {settings.minibatches} minibatches need at least as many samples, got {batch}")
        self.env = env
        self.actor = actor
        self.critic = critic
        self.loss = loss
        self.advantage = advantage
        self.lr_controller = lr_controller
        self.observation_normalizer = observation_normalizer
        self.critic_observation_normalizer = critic_observation_normalizer
        self.reward_scaler = reward_scaler
        self.exploration_schedule = exploration_schedule
        self.settings = settings
        self.evaluation_env = evaluation_env
        self.evaluated = False  # whether evaluation_env was stepped (before that, its state is its seed's)
        self.run_dir = Path(run_dir)
        self.history = CheckpointHistory(self.run_dir / CHECKPOINT_DIR, settings.keep_checkpoints)
        learning_rate = lr_controller.learning_rate
        self.separate_critic_lr = settings.critic_learning_rate is not None
        self.optimizer = torch.optim.Adam(
            [
                {"params": list(actor.parameters()), "lr": learning_rate},
                {"params": list(critic.parameters()), "lr": settings.critic_learning_rate or learning_rate},
            ]
        )
        self.collector = RolloutCollector(
            env,
            actor,
            critic,
            observation_normalizer,
            critic_observation_normalizer,
            reward_scaler,
            settings.steps_per_env,
            fold_statistics_after_update=settings.observation_statistics == "after_update",
        )
        self.iteration = 0
        self.env_steps = 0
        self.parallel = data_parallel.current()
        self.parallel.broadcast_from_main([*actor.parameters(), *critic.parameters()])
        if self.parallel.active:
            for moments in self._running_moments:
                moments.combine = self.parallel.combine_moments

    # ----------------------------------------------------------------------------------- one iteration
    def run_iteration(self) -> dict[str, float]:
        """Collect, estimate advantages, update; returns the iteration's metrics row."""
        start = time.perf_counter()
        exploration = {}
        if self.exploration_schedule is not None:  # the rollout's and this update's base-noise scale
            exploration["noise_scale"] = self.exploration_schedule.apply(self.actor, self.iteration)
        self.actor.eval()
        try:
            rollout, episodes = self.collector.collect(self.iteration + 1)
        except NonFiniteError as error:
            raise NonFiniteError(f"rollout collection: {error}") from None
        collected = time.perf_counter()
        self.advantage(rollout)
        self.actor.train()
        try:
            update_metrics = self.update(rollout.exclude("next").reshape(-1))
        except NonFiniteError as error:
            raise NonFiniteError(f"PPO update: {error}") from None
        self.collector.fold_observation_statistics()
        finished = time.perf_counter()
        self.iteration += 1
        steps = rollout.numel() * self.parallel.world_size
        self.env_steps += steps
        if self.parallel.active:
            episodes, update_metrics = self._across_ranks(episodes, update_metrics)
        episode_count = episodes["return"].numel()
        metrics = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_time": finished - start,
            "return_mean": episodes["return"].mean().item() if episode_count else math.nan,
            "episode_length_mean": episodes["length"].mean().item() if episode_count else math.nan,
            "episodes": episode_count,
            **update_metrics,
            **exploration,
            "env_steps_per_s": steps / (finished - start),
            "collection_time": collected - start,
            "update_time": finished - collected,
        }
        for key, values in episodes.items():
            if key.startswith("info/"):
                metrics[key] = values.mean().item()
        interval = self.settings.evaluation_interval
        if interval is not None and self.iteration % interval == 0 and self.parallel.is_main:
            metrics.update(self.evaluate())
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The deterministic policy (zero base noise) over the first episode of each of the evaluation env's
        ``evaluation_episodes`` envs, as ``eval_*`` metrics. Runs on its own env and leaves the training RNG
        as it was, so switching evaluation on does not change what training does."""
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            result = evaluate_policy(self.actor, self.observation_normalizer, self.evaluation_env, noise="zero")
        self.evaluated = True
        return {
            "eval_return_mean": result["return_mean"],
            "eval_return_std": result["return_std"],
            "eval_episode_length_mean": result["episode_length_mean"],
            "eval_time": time.perf_counter() - start,
        }

    def _across_ranks(self, episodes: dict[str, torch.Tensor], update_metrics: dict[str, float]) -> tuple[dict, dict]:
        """Every rank's finished episodes and the ranks' mean update metrics, after checking the
        guarantee of data-parallel training: every rank holds rank 0's parameters and normaliser
        statistics (``rank_difference``, the largest deviation found, is logged: 0)."""
        shared = [*self._parameters, *(buffer for moments in self._running_moments for buffer in moments.buffers())]
        difference = self.parallel.difference_from_main(shared)
        if difference != 0.0:
            raise DataParallelError(
                f"iteration {self.iteration}: a rank's parameters or normaliser statistics differ from rank 0's "
                f"by up to {difference:.3g}"
            )
        gathered = self.parallel.all_gather_object(({key: value.cpu() for key, value in episodes.items()}, update_metrics))
        keys = {key for rank_episodes, _ in gathered for key in rank_episodes}
        episodes = {key: torch.cat([rank_episodes[key] for rank_episodes, _ in gathered if key in rank_episodes]) for key in keys}
        update_metrics = {key: sum(rank_metrics[key] for _, rank_metrics in gathered) / len(gathered) for key in update_metrics}
        return episodes, {**update_metrics, "rank_difference": difference}

    def update(self, batch: TensorDict) -> dict[str, float]:
        """``epochs`` passes of ``minibatches`` clipped-PPO steps over the flattened rollout."""
        settings = self.settings
        size = batch.shape[0]
        minibatch_size = size // settings.minibatches
        totals: dict[str, float] = {}
        count = 0
        self.loss.start_update()
        permutation = torch.randperm(size, device=batch.device)
        for epoch in range(settings.epochs):
            if epoch > 0 and settings.reshuffle_each_epoch:
                permutation = torch.randperm(size, device=batch.device)
            for index in range(settings.minibatches):
                minibatch = batch[permutation[index * minibatch_size : (index + 1) * minibatch_size]]
                losses = self.loss(minibatch)
                total = sum(value for key, value in losses.items() if key.startswith("loss_"))
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                # the gradients, the KL and the loss averaged over ranks, so that all take the same step
                kl, total_value = self.parallel.average_gradients(self._parameters, [losses[self.loss.kl_key], total])
                if not math.isfinite(total_value):
                    bad = [key for key, value in losses.items() if key.startswith("loss_") and not torch.isfinite(value)]
                    raise NonFiniteError(
                        f"iteration {self.iteration + 1}, epoch {epoch}, minibatch {index}: "
                        f"non-finite {', '.join(bad) or 'loss on another rank'}"
                    )
                self._set_learning_rate(self.lr_controller.step(kl, self.iteration))
                if settings.max_grad_norm is not None:
                    for group in self.optimizer.param_groups:
                        nn.utils.clip_grad_norm_(group["params"], settings.max_grad_norm)
                self.optimizer.step()
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value.item()
                count += 1
        metrics = {_METRIC_NAMES.get(key, key): value / count for key, value in totals.items()}
        metrics["lr"] = self.lr_controller.learning_rate
        return metrics

    @property
    def _parameters(self) -> list[nn.Parameter]:
        return [parameter for group in self.optimizer.param_groups for parameter in group["params"]]

    @property
    def _running_moments(self) -> list[nn.Module]:
        """The running moments (``moments``) of the normalisers and the reward scaler that keep any."""
        modules = (self.observation_normalizer, self.critic_observation_normalizer, self.reward_scaler)
        return [module.moments for module in modules if getattr(module, "moments", None) is not None]

    def _set_learning_rate(self, learning_rate: float) -> None:
        self.optimizer.param_groups[0]["lr"] = learning_rate
        if not self.separate_critic_lr:
            self.optimizer.param_groups[1]["lr"] = learning_rate

    # ---------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """The run's state (rank 0's env, episodes, return scaler and RNG at the top level); in a
        data-parallel run also ``data_parallel``: the world size and every rank's own entries (a
        collective: every rank calls it, rank 0 writes it)."""
        critic_normalizer = self.critic_observation_normalizer
        state = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "observation_normalizer": self.observation_normalizer.state_dict(),
            "critic_observation_normalizer": None if critic_normalizer is None else critic_normalizer.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "lr_controller": self.lr_controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "collector": self.collector.state_dict(),
            "rng": rng_state(),
        }
        if self.evaluation_env is not None:
            state["evaluation_env"] = self.evaluation_env.state_dict() if self.evaluated else None
        if self.parallel.active:
            ranks = self.parallel.all_gather_object({key: state[key] for key in _PER_RANK_KEYS})
            state["data_parallel"] = {"world_size": self.parallel.world_size, "ranks": ranks}
        return state

    def load_state_dict(self, state: dict, source: str | Path = "checkpoint") -> None:
        """Restore a :meth:`state_dict`; a network or normaliser that does not fit the one built from
        the config fails naming the entry (``source`` names the file in that message). A rank of a
        data-parallel run restores its own env, episodes, return scaler and RNG; the world size must
        be the one that wrote the checkpoint."""
        saved_world_size = state.get("data_parallel", {"world_size": 1})["world_size"]
        if saved_world_size != self.parallel.world_size:
            raise CheckpointError(
                f"{source} was written by {saved_world_size} rank(s), this run has {self.parallel.world_size}: "
                f"resume it with as many (torchrun --nproc-per-node, times the nodes)"
            )
        if self.parallel.active:
            state = {**state, **state["data_parallel"]["ranks"][self.parallel.rank]}
        modules = {
            "actor": self.actor,
            "critic": self.critic,
            "observation_normalizer": self.observation_normalizer,
            "critic_observation_normalizer": self.critic_observation_normalizer,
            "reward_scaler": self.reward_scaler,
        }
        for name, module in modules.items():
            if module is not None:
                load_module_state(module, state[name], name, source)
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.lr_controller.load_state_dict(state["lr_controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.collector.load_state_dict(state["collector"])
        restore_rng_state(state["rng"])
        evaluation_state = state.get("evaluation_env")
        if self.evaluation_env is not None and evaluation_state is not None:
            self.evaluation_env.load_state_dict(evaluation_state)
            self.evaluated = True


_METRIC_NAMES = {"loss_objective": "policy_loss", "loss_critic": "value_loss"}
# What each rank of a data-parallel run keeps for itself: its envs (and their episodes and discounted
# returns) and its random stream.
_PER_RANK_KEYS = ("reward_scaler", "collector", "rng")
