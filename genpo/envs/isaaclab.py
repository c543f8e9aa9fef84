"""IsaacLab tasks (``isaaclab:<task>``) behind the :class:`~genpo.envs.base.BatchedEnv` seam.

Importing this module never imports Isaac Lab: every ``isaaclab*`` import sits inside a function, so
``import genpo`` works (and the CPU test suite runs) on machines without Isaac Lab, which needs Python
3.12, an NVIDIA GPU and torch 2.11 (Isaac Lab 3.x). See ``docs/isaaclab.md`` for install and run commands.

Which Isaac Lab object is wrapped
---------------------------------
When :class:`IsaacLabEnv` creates the env itself it follows Isaac Lab's own RSL-RL training entry point:
``parse_env_cfg(task, device=..., num_envs=...)`` from ``isaaclab_tasks.utils``, the simulation runtime
started headless (``isaaclab.app.launch_simulation`` in Isaac Lab 3.x, ``AppLauncher`` before it), then
``gym.make(task, cfg=env_cfg)`` wrapped in ``isaaclab_rl.rsl_rl.RslRlVecEnvWrapper``. The RSL-RL wrapper
rather than the raw env because (1) its ``VecEnv`` shape (TensorDict of observation groups, rewards, dones,
``extras``) is the shape this seam was modelled on, (2) it is the wrapper Isaac Lab maintains and tests for
on-policy PPO, and (3) it encodes Isaac Lab's time-limit convention (``extras["time_outs"]`` only for
infinite-horizon tasks; in a finite-horizon task the time limit is part of the MDP and is not bootstrapped),
so GenPO sees exactly the transitions Isaac Lab's PPO baseline sees. The ``extras`` dict passes through the
wrapper untouched, so terminal observations and episode logs are still available.

``env=`` accepts either interface (duck-typed, which is what the CPU contract test uses with fakes): an
rsl_rl ``VecEnv`` such as ``RslRlVecEnvWrapper`` (has ``get_observations``; ``step`` returns
``obs, rewards, dones, extras``) or a raw Isaac Lab env (``ManagerBasedRLEnv`` / ``DirectRLEnv`` from
``gym.make``; ``step`` returns ``obs, rewards, terminated, truncated, extras``), for which the finite-horizon
rule above is applied here. A given env keeps its own device, seed and ``num_envs`` (which must equal
``num_envs``); ``seed``, ``device`` and ``headless`` are only used when this class creates the env.

What is mapped
--------------
- observation group ``"policy"`` -> ``observation``; group ``"critic"`` (when the env defines it) ->
  ``critic_observation`` and ``critic_observation_dim``. A group that is a dict of terms (``concatenate_terms
  = False``) or has extra dimensions is flattened per env and concatenated in the env's term order. Widths
  come from ``env.unwrapped.single_observation_space``.
- rewards -> ``reward`` (float32). rsl_rl interface: ``truncated = dones & extras["time_outs"]``,
  ``terminated = dones & ~extras["time_outs"]`` (no ``"time_outs"`` key: every done is a termination). A step
  that is both terminal and timed out therefore counts as a time-out there, as in rsl_rl's own PPO. Raw
  interface: ``terminated`` / ``truncated`` as returned, with ``truncated`` folded into ``terminated`` when
  ``cfg.is_finite_horizon``.
- Every tensor returned is a copy on the env's device (Isaac Lab reuses its reward, termination and
  observation buffers in place, and the rollout keeps each step's tensors until it stacks them). Actions are
  moved to the env's device and passed through unclipped unless ``clip_actions`` is given (the GenPO policy
  has no squashing; Isaac Lab's action terms scale actions themselves).

Final observations and bootstrapping
------------------------------------
Isaac Lab resets finished envs inside ``step`` and returns the first observation of the new episode. Since
Isaac Lab PR #6219 (3.x) an env whose config has ``compute_final_obs = True`` also publishes the pre-reset
observation groups, for the whole batch, in ``extras["final_obs"]``; this class sets that flag when it
creates the env and, wherever ``extras["final_obs"]`` is present, uses its rows for the envs that finished:
``final_observation`` / ``final_critic_observation`` are then exact and time-outs bootstrap with
V(final observation). Envs without the flag (older Isaac Lab, or a given env created without it) do not
expose the pre-reset observation at all; then the best available approximation is used: the observation the
finishing action was taken in, i.e. V(s_T) is approximated by V(s_{T-1}). This is exactly what rsl_rl's PPO
does on Isaac Lab (``rewards += gamma * values * time_outs``); it is biased by one step of value change at
each time-out and harmless for terminations, which are never bootstrapped. A warning names the case once.

Episode logs
------------
``extras["log"]`` holds batch aggregates computed when envs reset, not per-env values. Keys under
``Episode_Reward/`` and ``Metrics/`` are means over the envs that reset in that step, so broadcasting them to
every env and letting the trainer average over finished episodes recovers the mean over all finished
episodes exactly: they are passed through as ``episode_info`` (logged as ``info/Episode_Reward/...``). All
other keys (``Episode_Termination/*`` are counts, ``Curriculum/*`` are global state) do not fit the
per-episode contract and are dropped from the step output; the latest log dict stays readable as
:attr:`IsaacLabEnv.last_log`.

Checkpoints and resume
----------------------
A GPU simulation cannot be snapshotted: :meth:`IsaacLabEnv.state_dict` holds only the task, the batch size
and the step counter (it never raises), and :meth:`IsaacLabEnv.load_state_dict` restores the counter and
resets every env, so a resumed run restarts all episodes from fresh initial states. Networks, normalisers,
optimiser and lr state resume exactly; the environment's randomness does not.

Process lifetime
----------------
Isaac Sim runs one simulation app per process; it is started on the first env created here and left running
(:meth:`IsaacLabEnv.close` closes the env only, since closing Kit ends the process). Isaac Lab's Kit launcher
closes the app at interpreter exit; a strong module-level reference keeps the launch context alive until then.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import warnings
from collections.abc import Mapping

import torch
from tensordict import TensorDict, TensorDictBase

from genpo.envs._batched import _where_rows, autoreset_output, validate_action
from genpo.envs.base import BatchedEnv

POLICY_GROUP = "policy"
CRITIC_GROUP = "critic"
EPISODE_LOG_PREFIXES = ("Episode_Reward/", "Metrics/")
"""``extras["log"]`` keys that are means over the envs reset in a step, hence valid as ``episode_info``."""

INSTALL_HINT = (
    "IsaacLabEnv({task!r}) needs Isaac Lab, which is not installed in this Python environment. Isaac Lab 3.x "
    "requires Python 3.12, an NVIDIA GPU and torch 2.11: on such a machine install it with "
    "`pip install -e .[isaaclab]` (Isaac Sim and torch come from NVIDIA's and PyTorch's indexes; exact "
    "commands in docs/isaaclab.md), or pass env=<an already created Isaac Lab env>."
)

_SIMULATION: list = []
"""Launch contexts (Isaac Lab 3.x) or the ``AppLauncher`` (2.x) started here, kept alive for the process."""


class IsaacLabEnv(BatchedEnv):
    """An Isaac Lab task (``gym.make(task)``) as a batch of ``num_envs`` auto-resetting episodes.

    See the module docstring for what is wrapped, the key mapping, terminal observations, episode logs and
    the resume caveat. ``clip_actions`` clamps actions to ``[-clip_actions, clip_actions]`` (default: no
    clipping).
    """

    restores_state = False

    def __init__(
        self,
        task: str,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cuda:0",
        headless: bool = True,
        env=None,
        clip_actions: float | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"IsaacLabEnv({task!r}): num_envs must be >= 1, got {num_envs!r}")
        self.task = task
        if env is None:
            env = _make_isaaclab_env(task, num_envs, seed=seed, device=device, headless=headless)
        self._env = env
        self._rsl_rl_interface = callable(getattr(env, "get_observations", None))
        unwrapped = getattr(env, "unwrapped", env)
        if int(unwrapped.num_envs) != num_envs:
            raise ValueError(f"{self._name}: the given env has {unwrapped.num_envs} envs, expected num_envs={num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(unwrapped.device)
        self.clip_actions = clip_actions

        groups = _subspaces(unwrapped.single_observation_space)
        if POLICY_GROUP not in groups:
            raise ValueError(f"{self._name}: the env has no {POLICY_GROUP!r} observation group (groups: {sorted(groups)})")
        self.observation_dim = _flat_dim(groups[POLICY_GROUP])
        self.critic_observation_dim = _flat_dim(groups[CRITIC_GROUP]) if CRITIC_GROUP in groups else None
        num_actions = getattr(env, "num_actions", None)
        self.action_dim = int(num_actions) if num_actions is not None else _flat_dim(unwrapped.single_action_space)
        self.max_episode_steps = int(unwrapped.max_episode_length)

        cfg = getattr(unwrapped, "cfg", None)
        self.is_finite_horizon = bool(getattr(cfg, "is_finite_horizon", False))
        self.provides_final_observation = bool(getattr(cfg, "compute_final_obs", False))
        if not self.provides_final_observation:
            warnings.warn(
                f"{self._name}: the env does not publish pre-reset observations (cfg.compute_final_obs is not set); "
                "time-outs bootstrap with the value of the last observation before the reset, as rsl_rl does",
                stacklevel=2,
            )
        self.step_count = 0
        self.last_log: Mapping = {}
        self._last: dict[str, torch.Tensor] | None = None

    @property
    def _name(self) -> str:
        return f"IsaacLabEnv({self.task!r})"

    # --------------------------------------------------------------------------------------- the seam
    def reset(self) -> TensorDict:
        """Reset every env (Isaac Lab's full ``reset``); returns ``observation`` (and ``critic_observation``)."""
        if self._rsl_rl_interface:
            reset = getattr(self._env, "reset", None)
            result = reset() if callable(reset) else None
            observations = result[0] if isinstance(result, tuple) else result
            if observations is None:  # wrappers without ``reset`` reset the env when they are built
                observations = self._env.get_observations()
        else:
            observations, _ = self._env.reset()
        self._last = self._observations(observations)
        return TensorDict(self._last, batch_size=[self.num_envs], device=self.device)

    def step(self, action: torch.Tensor) -> TensorDict:
        validate_action(self, action)
        if self._last is None:
            raise RuntimeError(f"{self._name}.step called before reset() or load_state_dict()")
        action = action.to(self.device)
        if self.clip_actions is not None:
            action = action.clamp(-self.clip_actions, self.clip_actions)
        if self._rsl_rl_interface:
            observations, reward, dones, extras = self._env.step(action)
            done = self._flags(dones)
            time_outs = extras.get("time_outs") if isinstance(extras, Mapping) else None
            truncated = done & self._flags(time_outs) if time_outs is not None else torch.zeros_like(done)
            terminated = done & ~truncated
        else:
            observations, reward, terminated, truncated, extras = self._env.step(action)
            terminated, truncated = self._flags(terminated), self._flags(truncated)
            if self.is_finite_horizon:
                terminated, truncated = terminated | truncated, torch.zeros_like(truncated)
        extras = extras if isinstance(extras, Mapping) else {}
        reward = reward.reshape(self.num_envs).to(device=self.device, dtype=torch.float32, copy=True)
        current = self._observations(observations)
        final = self._final_observations(extras, terminated | truncated, current)
        self._last = current
        self.step_count += 1
        return autoreset_output(
            final_observation=final["observation"],
            reset_observation=current["observation"],
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_critic_observation=final.get("critic_observation"),
            reset_critic_observation=current.get("critic_observation"),
            episode_info=self._episode_info(extras),
        )

    def state_dict(self) -> dict:
        """Step counters only: a GPU simulation cannot be snapshotted (resume restarts every episode)."""
        return {"task": self.task, "num_envs": self.num_envs, "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        """Restore the step counter and reset every env: episodes restart from fresh initial states."""
        if state["task"] != self.task or state["num_envs"] != self.num_envs:
            raise ValueError(
                f"{self._name}.load_state_dict: state of {state['num_envs']} {state['task']!r} envs, "
                f"expected {self.num_envs}"
            )
        self.reset()
        self.step_count = int(state["step_count"])

    def close(self) -> None:
        """Close the env; the simulation app stays up until the process exits (closing Kit ends the process)."""
        self._env.close()

    # ------------------------------------------------------------------------------------ conversions
    def _flags(self, flags: torch.Tensor) -> torch.Tensor:
        return flags.reshape(self.num_envs).to(device=self.device, dtype=torch.bool, copy=True)

    def _observations(self, observations) -> dict[str, torch.Tensor]:
        """``observation`` (and ``critic_observation``): flattened float32 copies of the Isaac Lab groups."""
        if not isinstance(observations, (Mapping, TensorDictBase)):
            raise TypeError(
                f"{self._name}: expected observations as a dict/TensorDict of groups ({POLICY_GROUP!r}, ...), got "
                f"{type(observations).__name__}; Isaac Lab >= 2.3 with rsl-rl-lib >= 3 returns TensorDicts"
            )
        out = {"observation": self._group(observations, POLICY_GROUP, self.observation_dim)}
        if self.critic_observation_dim is not None:
            out["critic_observation"] = self._group(observations, CRITIC_GROUP, self.critic_observation_dim)
        return out

    def _group(self, observations, group: str, width: int) -> torch.Tensor:
        if group not in observations.keys():
            raise ValueError(f"{self._name}: observation group {group!r} missing from the env's observations")
        flat = _flatten(observations[group], self.num_envs).to(device=self.device, dtype=torch.float32, copy=True)
        if flat.shape[-1] != width:
            raise ValueError(f"{self._name}: observation group {group!r} has width {flat.shape[-1]}, expected {width}")
        return flat

    def _final_observations(
        self, extras: Mapping, done: torch.Tensor, current: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Pre-reset observations where ``done`` (``extras["final_obs"]``, else the previous observation)."""
        final_obs = extras.get("final_obs")
        if isinstance(final_obs, (Mapping, TensorDictBase)):
            source = self._observations(final_obs)
        else:
            source = self._last
        return {key: _where_rows(done, source[key], value) for key, value in current.items()}

    def _episode_info(self, extras: Mapping) -> TensorDict | None:
        """Per-episode means from ``extras["log"]`` broadcast to the batch (see the module docstring)."""
        log = extras.get("log")
        if not isinstance(log, Mapping):
            return None
        self.last_log = log
        values = {}
        for key, value in log.items():
            if not isinstance(key, str) or not key.startswith(EPISODE_LOG_PREFIXES):
                continue
            scalar = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if scalar.numel() == 1:
                values[key] = scalar.reshape(()).clone().expand(self.num_envs)
        return TensorDict(values, batch_size=[self.num_envs], device=self.device) if values else None


# ------------------------------------------------------------------------------------------- helpers
def _subspaces(space) -> Mapping:
    """The groups of a ``gymnasium.spaces.Dict`` (or a plain mapping)."""
    return getattr(space, "spaces", space)


def _flat_dim(space) -> int:
    import gymnasium

    return int(gymnasium.spaces.flatdim(space))


def _flatten(value, num_envs: int) -> torch.Tensor:
    """A group as [num_envs, width]: tensors flattened per env, dicts of terms concatenated in order."""
    if isinstance(value, (Mapping, TensorDictBase)):
        return torch.cat([_flatten(term, num_envs) for term in value.values()], dim=-1)
    return torch.as_tensor(value).reshape(num_envs, -1)


def _make_isaaclab_env(task: str, num_envs: int, *, seed: int, device: str | torch.device, headless: bool):
    """Create ``task`` the way Isaac Lab's RSL-RL train entry point does, wrapped in ``RslRlVecEnvWrapper``."""
    if importlib.util.find_spec("isaaclab") is None:
        raise ImportError(INSTALL_HINT.format(task=task))
    import isaaclab.app

    device = str(device)
    if hasattr(isaaclab.app, "launch_simulation"):  # Isaac Lab 3.x: task configs load before the runtime starts
        env_cfg = _parse_env_cfg(task, num_envs, seed=seed, device=device)
        # every config goes through the launch scan (it resolves the automatic physics/renderer choices in
        # place); a Kit app that already runs is reused by the launcher
        _SIMULATION.append(_launch_simulation(isaaclab.app, env_cfg, device=device, headless=headless))
    else:  # Isaac Lab 2.x: the app must run before any task module is imported, once per process
        if not _SIMULATION:
            _SIMULATION.append(isaaclab.app.AppLauncher(headless=headless, device=device))
        env_cfg = _parse_env_cfg(task, num_envs, seed=seed, device=device)

    import gymnasium
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    return RslRlVecEnvWrapper(gymnasium.make(task, cfg=env_cfg))


def _parse_env_cfg(task: str, num_envs: int, *, seed: int, device: str):
    import isaaclab_tasks  # noqa: F401  (registers the tasks with gymnasium)
    from isaaclab_tasks.utils import parse_env_cfg

    env_cfg = parse_env_cfg(task, device=device, num_envs=num_envs)
    env_cfg.seed = seed
    if hasattr(env_cfg, "compute_final_obs"):  # Isaac Lab >= 3.x (PR #6219): publish extras["final_obs"]
        env_cfg.compute_final_obs = True
    return env_cfg


def _launch_simulation(app_module, env_cfg, *, device: str, headless: bool) -> contextlib.ExitStack:
    """Enter ``isaaclab.app.launch_simulation`` with its default launcher arguments, headless on ``device``.

    The context is never exited here: exiting closes Kit, which ends the process; Kit closes itself at exit.
    """
    parser = argparse.ArgumentParser(add_help=False)
    app_module.add_launcher_args(parser)
    launcher_args = parser.parse_args([])
    launcher_args.device = device
    launcher_args.headless = headless
    if headless:
        launcher_args.visualizer = "none"
    stack = contextlib.ExitStack()
    stack.enter_context(app_module.launch_simulation(env_cfg, launcher_args))
    return stack
