"""Any registered gymnasium env id behind the :class:`~genpo.envs.base.BatchedEnv` seam.

Not registered under a plain name: the env id is part of the construction
(``GymnasiumBatchedEnv("Pendulum-v1", num_envs=8)``). Meant for parity checks against pure-torch or
batched-MuJoCo envs and for tasks that only exist in gymnasium; it steps envs one by one on the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator

import gymnasium
import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.wrappers import TimeLimit
from tensordict import TensorDict

from genpo.envs._batched import autoreset_output, validate_action
from genpo.envs.base import BatchedEnv

_MUJOCO_STATE = mujoco.mjtState.mjSTATE_INTEGRATION  # every input of mj_step: time, qpos, qvel, act, warmstart...
_SETTOTALMASS_DEPRECATION = "compiler attribute 'settotalmass' is deprecated and will be removed in a future release"


class GymnasiumBatchedEnv(BatchedEnv):
    """``num_envs`` copies of ``gymnasium.make(env_id, **make_kwargs)`` in a same-step auto-resetting
    ``SyncVectorEnv``, with torch tensors on ``device`` in and out.

    Observation and action spaces must be 1-D ``Box`` es. Actions are passed to gymnasium unscaled and
    unclipped, exactly as a gymnasium agent would pass them. Env ``i`` is seeded with ``seed + i`` on the
    first :meth:`reset`.

    Checkpointing: gymnasium envs cannot in general be snapshotted. For MuJoCo envs
    (``gymnasium.envs.mujoco.MujocoEnv``) :meth:`state_dict` holds each env's full MuJoCo integration
    state, time-limit counter and numpy RNG state, so :meth:`load_state_dict` continues exactly. Any
    other env has ``restores_state = False``: its state holds the env id alone, and a resumed run resets
    the envs (every episode restarts, as for IsaacLab).
    """

    def __init__(
        self, env_id: str, num_envs: int, *, seed: int = 0, device: str | torch.device = "cpu", **make_kwargs
    ):
        self.env_id = env_id
        self.num_envs = num_envs
        self.device = torch.device(device)
        self._seed = seed
        self._seed_on_reset = True
        make = functools.partial(gymnasium.make, env_id, **make_kwargs)
        with settotalmass_deprecation_silenced():
            self._vector_env = gymnasium.vector.SyncVectorEnv(
                [make for _ in range(num_envs)], autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
            )
        try:
            self.observation_dim = self._flat_box_size(self._vector_env.single_observation_space, "observation")
            self.action_dim = self._flat_box_size(self._vector_env.single_action_space, "action")
            self.max_episode_steps = self._vector_env.envs[0].spec.max_episode_steps
            if self.max_episode_steps is None:
                raise ValueError(
                    f"{self._name}: the env has no time limit; pass max_episode_steps=... (forwarded to "
                    "gymnasium.make)"
                )
        except Exception:
            self._vector_env.close()
            raise

    @property
    def _name(self) -> str:
        return f"{type(self).__name__}({self.env_id!r})"

    def _flat_box_size(self, space: gymnasium.Space, role: str) -> int:
        if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"{self._name}: the {role} space must be a 1-D gymnasium.spaces.Box, got {space}")
        return space.shape[0]

    def _to_tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype).to(self.device)

    def reset(self) -> TensorDict:
        observation, _ = self._vector_env.reset(seed=self._seed if self._seed_on_reset else None)
        self._seed_on_reset = False
        return TensorDict(
            {"observation": self._to_tensor(observation)}, batch_size=[self.num_envs], device=self.device
        )

    def step(self, action: torch.Tensor) -> TensorDict:
        validate_action(self, action)
        action_dtype = self._vector_env.single_action_space.dtype
        observation, reward, terminated, truncated, info = self._vector_env.step(
            action.detach().cpu().numpy().astype(action_dtype)
        )
        final_observation = observation.copy()
        if "final_obs" in info:
            ended = info["_final_obs"]
            final_observation[ended] = np.stack(info["final_obs"][ended])
        return autoreset_output(
            final_observation=self._to_tensor(final_observation),
            reset_observation=self._to_tensor(observation),
            reward=self._to_tensor(reward),
            terminated=self._to_tensor(terminated, torch.bool),
            truncated=self._to_tensor(truncated, torch.bool),
        )

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        for env, count in zip(self._vector_env.envs, steps.tolist(), strict=True):
            _time_limit(env)._elapsed_steps = int(count)

    @property
    def restores_state(self) -> bool:
        """Whether :meth:`load_state_dict` continues every episode exactly: MuJoCo envs only."""
        return all(isinstance(env.unwrapped, MujocoEnv) for env in self._vector_env.envs)

    def state_dict(self) -> dict:
        if self._seed_on_reset:
            raise RuntimeError(f"{self._name}.state_dict called before reset()")
        envs = [_mujoco_env_state(env) for env in self._vector_env.envs] if self.restores_state else None
        return {"env_id": self.env_id, "num_envs": self.num_envs, "envs": envs}

    def load_state_dict(self, state: dict) -> None:
        """Restore a MuJoCo env's snapshot; for another env only check that the state is of this env (the
        caller resets it, ``restores_state`` being False)."""
        if state["env_id"] != self.env_id or state.get("num_envs", len(state["envs"] or ())) != self.num_envs:
            raise ValueError(
                f"{self._name}.load_state_dict: state of {state.get('num_envs')} {state['env_id']!r} envs, "
                f"expected {self.num_envs}"
            )
        if not self.restores_state:
            return
        if self._seed_on_reset:  # gymnasium refuses to step an env that was never reset
            self.reset()
        for env, env_state in zip(self._vector_env.envs, state["envs"], strict=True):
            _load_mujoco_env_state(env, env_state)

    def close(self) -> None:
        self._vector_env.close()


@contextlib.contextmanager
def settotalmass_deprecation_silenced() -> Iterator[None]:
    """Drop MuJoCo's deprecation warning for ``<compiler settotalmass>`` while inside.

    Gymnasium's half_cheetah.xml sets that attribute and gymnasium compiles the file itself, so the
    model cannot be fixed before compiling as :mod:`genpo.envs.mujoco_assets` does; this adapter
    runs gymnasium's envs unchanged and filters only that one message. It is a C-level warning
    (``mju_warning``, printed to stderr and appended to MUJOCO_LOG.TXT), not a Python warning, so the
    filter is a temporary ``mju_user_warning`` handler: every other message goes on to the handler
    installed before, or where there was none, to stderr (in the default handler's format) and to
    MUJOCO_LOG.TXT (``mju_writeLog``), as the log configuration asks.
    """
    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if message.startswith(_SETTOTALMASS_DEPRECATION):
            return
        if previous is not None:
            previous(message)
            return
        config = mujoco.MjLogConfig.get()
        if config.logto_console:
            sys.stderr.write(f"WARNING: {message}\n\n")
            sys.stderr.flush()
        if config.logto_file:
            mujoco.mju_writeLog("WARNING", message)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _mujoco_env_state(env: gymnasium.Env) -> dict:
    """One MuJoCo gymnasium env's simulator state, time-limit counter and RNG state (torch-loadable)."""
    model, data = env.unwrapped.model, env.unwrapped.data
    physics = np.empty(mujoco.mj_stateSize(model, _MUJOCO_STATE))
    mujoco.mj_getState(model, data, physics, _MUJOCO_STATE)
    return {
        "physics": torch.from_numpy(physics),
        "elapsed_steps": _time_limit(env)._elapsed_steps,
        "rng": env.unwrapped.np_random.bit_generator.state,
    }


def _load_mujoco_env_state(env: gymnasium.Env, state: dict) -> None:
    mujoco.mj_setState(env.unwrapped.model, env.unwrapped.data, state["physics"].cpu().numpy(), _MUJOCO_STATE)
    _time_limit(env)._elapsed_steps = state["elapsed_steps"]
    env.unwrapped.np_random.bit_generator.state = state["rng"]


def _time_limit(env: gymnasium.Env) -> TimeLimit:
    """The ``TimeLimit`` wrapper that ``gymnasium.make`` put around ``env``."""
    while not isinstance(env, TimeLimit):
        env = env.env
    return env
