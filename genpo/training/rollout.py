"""Rollout collection: T steps of a batched env under the current actor, into a TensorDict[T, B]."""

from __future__ import annotations

import warnings

import torch
from tensordict import TensorDict

from genpo.components.actors.base import Actor
from genpo.components.contracts import Critic, Normalizer, RewardScaler
from genpo.envs.base import BatchedEnv, env_name
from genpo.training.episodes import EpisodeTracker
from genpo.training.errors import NonFiniteError


class EnvResetOnResume(UserWarning):
    """A resumed run restarts its episodes: its env cannot restore a snapshot (``restores_state`` False)."""


class RolloutCollector:
    """Steps the env with the actor and stores what PPO needs.

    Per step: normalised ``observation`` (and ``critic_observation``), the actor's outputs
    (``action``, ``action_log_prob``, its ``sample_keys``), ``state_value``, and under ``next``:
    scaled ``reward``, ``terminated``, ``truncated``, ``done``, the normalised next (critic)
    observation (the *final* observation where an episode ended) and its ``state_value``, so that
    time-outs bootstrap with V(final observation). Observations are stored normalised so the
    likelihood at update time sees exactly what the actor saw at sampling time.

    The normalisers fold in each step's observation before the actor sees it, or, with
    ``fold_statistics_after_update``, keep the rollout's raw observations until the trainer calls
    :meth:`fold_observation_statistics` after the update (then a rollout and its update share statistics).

    Episode returns and lengths are tracked on raw rewards (:class:`EpisodeTracker`). :meth:`state_dict` holds the env's state,
    its pending observation and the episode accumulators, for an exact resume; the networks and
    normalisers are owned (and saved) by the trainer.
    """

    def __init__(
        self,
        env: BatchedEnv,
        actor: Actor,
        critic: Critic,
        observation_normalizer: Normalizer,
        critic_observation_normalizer: Normalizer | None,
        reward_scaler: RewardScaler,
        steps_per_env: int,
        fold_statistics_after_update: bool = False,
    ):
        self.env = env
        self.actor = actor
        self.critic = critic
        self.observation_normalizer = observation_normalizer
        self.critic_observation_normalizer = critic_observation_normalizer
        self.reward_scaler = reward_scaler
        self.steps_per_env = steps_per_env
        self.fold_statistics_after_update = fold_statistics_after_update
        self.unfolded_observations: list[TensorDict] = []
        self.has_critic_observation = env.critic_observation_dim is not None
        self.episodes = EpisodeTracker(env.num_envs, env.device)
        self.pending: TensorDict | None = None

    def start(self) -> None:
        self.pending = self.env.reset()
        self._check_finite(self.pending, ("observation", "critic_observation"), iteration=0)

    def _normalized(self, observations: TensorDict, prefix: str = "") -> TensorDict:
        out = TensorDict(
            observation=self.observation_normalizer.compute(observations[prefix + "observation"]),
            batch_size=observations.batch_size,
        )
        if self.has_critic_observation:
            normalizer = self.critic_observation_normalizer
            out["critic_observation"] = normalizer.compute(observations[prefix + "critic_observation"])
        return out

    def _update_normalizers(self, observations: TensorDict) -> None:
        self.observation_normalizer.update(observations["observation"])
        if self.has_critic_observation:
            self.critic_observation_normalizer.update(observations["critic_observation"])

    @torch.no_grad()
    def collect(self, iteration: int) -> tuple[TensorDict, dict[str, torch.Tensor]]:
        """One rollout [T, B] and the finished episodes' statistics (``return``, ``length``, infos)."""
        if self.pending is None:
            self.start()
        value_key = self.critic.in_keys[0]
        steps = []
        for _ in range(self.steps_per_env):
            if self.fold_statistics_after_update:
                self.unfolded_observations.append(self.pending)
            else:
                self._update_normalizers(self.pending)
            step = self._normalized(self.pending)
            self.actor(step)
            action = step["action"]
            if not torch.isfinite(action).all():
                raise NonFiniteError(f"iteration {iteration}: non-finite action from {type(self.actor).__name__}")
            step["state_value"] = self.critic.compute(step[value_key])
            result = self.env.step(action)
            self._check_finite(result, ("observation", "critic_observation", "reward", "final_observation"), iteration)
            terminated, truncated = result["terminated"], result["truncated"]
            done = terminated | truncated
            reward = result["reward"]
            next_step = self._normalized(result, prefix="final_")
            next_step.update(
                reward=self.reward_scaler(reward, done).unsqueeze(-1),
                terminated=terminated.unsqueeze(-1),
                truncated=truncated.unsqueeze(-1),
                done=done.unsqueeze(-1),
            )
            step["next"] = next_step
            steps.append(step)
            self.episodes.step(reward, done, result.get("episode_info", None))
            self.pending = result.select(*(["observation", "critic_observation"] if self.has_critic_observation else ["observation"]))
        rollout = torch.stack(steps, dim=0)
        rollout["next", "state_value"] = self.critic.compute(rollout["next", value_key])
        return rollout, self.episodes.pop()

    def fold_observation_statistics(self) -> None:
        """Fold the observations kept since the last call into the normalisers, as one batch."""
        if self.unfolded_observations:
            self._update_normalizers(torch.cat(self.unfolded_observations))
            self.unfolded_observations = []

    def _check_finite(self, result: TensorDict, keys: tuple[str, ...], iteration: int) -> None:
        for key in keys:
            value = result.get(key, None)
            if value is None:
                continue
            bad = ~torch.isfinite(value.reshape(value.shape[0], -1)).all(-1)
            if bad.any():
                envs = bad.nonzero().flatten()[:8].tolist()
                raise NonFiniteError(
                    f"iteration {iteration}: non-finite {key} from env {type(self.env).__name__} in envs {envs}"
                )

    def state_dict(self) -> dict:
        """Before the first collection (an iteration-0 checkpoint) the env is as built from its seed:
        no env state is stored, and a resume rebuilds it from the same seed."""
        return {
            "env": None if self.pending is None else self.env.state_dict(),
            "pending": None if self.pending is None else self.pending.to_dict(),
            **self.episodes.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["env"] is None:
            self.pending = None
            return
        self.env.load_state_dict(state["env"])
        if not self.env.restores_state:
            self.pending = None  # the next collect resets the env; the saved episodes cannot continue
            self.episodes.restart()
            warnings.warn(
                f"{env_name(self.env)} cannot be snapshotted: the resumed run resets its envs (every episode restarts)",
                EnvResetOnResume,
                stacklevel=2,
            )
            return
        pending = state["pending"]
        self.pending = None if pending is None else TensorDict(pending, batch_size=[self.env.num_envs]).to(self.env.device)
        self.episodes.load_state_dict(state)
