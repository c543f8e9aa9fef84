"""Shared pieces for implementing :class:`~genpo.envs.base.BatchedEnv`.

- :func:`validate_action`: the shape and finiteness checks every ``step`` starts with;
- :func:`autoreset_output`: the seam's step output from an episode's last observation and the reset one,
  for any env that auto-resets (pure torch, MuJoCo, gymnasium);
- :class:`TensorStateEnv`: a base for pure-torch envs whose whole state is a TensorDict, which then only
  define their initial-state sampler, observation and transition.
"""

from __future__ import annotations

import abc

import torch
from tensordict import TensorDict

from genpo.envs.base import BatchedEnv


def validate_action(env: BatchedEnv, action: torch.Tensor) -> None:
    """Raise, naming the env, on an action of the wrong shape or with NaN/inf entries.

    The finiteness check syncs with the device once per step; a NaN action would otherwise silently
    poison the simulator state of every later step.
    """
    env.check_action(action)
    if not bool(torch.isfinite(action).all()):
        raise ValueError(f"{type(env).__name__}.step: action contains non-finite values (nan or inf)")


def autoreset_output(
    *,
    final_observation: torch.Tensor,
    reset_observation: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_critic_observation: torch.Tensor | None = None,
    reset_critic_observation: torch.Tensor | None = None,
    episode_info: TensorDict | None = None,
) -> TensorDict:
    """The step TensorDict of the seam for envs that reset where ``terminated | truncated``.

    ``final_observation`` is the observation after the step (the episode's last where done);
    ``reset_observation`` is the first observation of a new episode, read only where done (other rows
    may hold anything, so envs can sample resets for the whole batch without indexing). ``truncated``
    is cleared where ``terminated``: a step that ends at a terminal state must never be bootstrapped.
    """
    done = terminated | truncated
    output = {
        "observation": _where_rows(done, reset_observation, final_observation),
        "final_observation": final_observation,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated & ~terminated,
    }
    if final_critic_observation is not None:
        output["critic_observation"] = _where_rows(done, reset_critic_observation, final_critic_observation)
        output["final_critic_observation"] = final_critic_observation
    if episode_info is not None:
        output["episode_info"] = episode_info
    return TensorDict(output, batch_size=done.shape, device=done.device)


def _where_rows(mask: torch.Tensor, if_true: torch.Tensor, if_false: torch.Tensor) -> torch.Tensor:
    """Row-wise select: ``mask`` [B] picks rows of ``if_true`` over ``if_false`` ([B, ...])."""
    return torch.where(mask.view(-1, *([1] * (if_false.dim() - 1))), if_true, if_false)


class TensorStateEnv(BatchedEnv):
    """Base for pure-torch batched envs: state is a TensorDict [num_envs], randomness is ``self.generator``.

    Subclasses set ``observation_dim``/``action_dim`` and implement :meth:`_initial_state`,
    :meth:`_observe` and :meth:`_transition`; this class does validation, time limits, auto-reset and
    checkpointing. Fresh initial states are sampled for the whole batch every step and selected where
    done, so a step never branches on data (no host sync beyond the action check) and consumes the
    generator identically whatever ends, which keeps runs reproducible.
    """

    def __init__(self, num_envs: int, *, seed: int, device: str | torch.device, max_episode_steps: int):
        if num_envs < 1:
            raise ValueError(f"{type(self).__name__}: num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_episode_steps = max_episode_steps
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: TensorDict | None = None
        self._elapsed_steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    @abc.abstractmethod
    def _initial_state(self) -> TensorDict:
        """A fresh initial state for every env, sampled with ``self.generator``."""

    @abc.abstractmethod
    def _observe(self, state: TensorDict) -> torch.Tensor:
        """Observation [B, observation_dim] (float32) of ``state``."""

    @abc.abstractmethod
    def _transition(
        self, state: TensorDict, action: torch.Tensor
    ) -> tuple[TensorDict, torch.Tensor, torch.Tensor, TensorDict | None]:
        """Apply ``action`` (any float dtype: cast it to the state's).

        Returns (next state, float32 reward [B], terminated [B], episode_info TensorDict [B] or None).
        """

    def reset(self) -> TensorDict:
        self._state = self._initial_state()
        self._elapsed_steps = torch.zeros_like(self._elapsed_steps)
        observation = self._observe(self._state)
        return TensorDict({"observation": observation}, batch_size=[self.num_envs], device=self.device)

    def step(self, action: torch.Tensor) -> TensorDict:
        validate_action(self, action)
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.step called before reset() or load_state_dict()")
        next_state, reward, terminated, episode_info = self._transition(self._state, action)
        elapsed_steps = self._elapsed_steps + 1
        truncated = elapsed_steps >= self.max_episode_steps
        done = terminated | truncated
        fresh_state = self._initial_state()
        self._state = torch.where(done, fresh_state, next_state)
        self._elapsed_steps = torch.where(done, 0, elapsed_steps)
        return autoreset_output(
            final_observation=self._observe(next_state),
            reset_observation=self._observe(fresh_state),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            episode_info=episode_info,
        )

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        self._elapsed_steps = steps.to(self.device, torch.int64).clone()

    def state_dict(self) -> dict:
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.state_dict called before reset()")
        return {
            "state": {key: value.clone() for key, value in self._state.items()},
            "elapsed_steps": self._elapsed_steps.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self._state = TensorDict(state["state"], batch_size=[self.num_envs]).to(self.device)
        self._elapsed_steps = state["elapsed_steps"].to(self.device)
        self.generator.set_state(state["generator"].cpu())
