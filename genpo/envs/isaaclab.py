"""IsaacLab tasks (``isaaclab:<task>``) behind the :class:`~genpo.envs.base.BatchedEnv` seam.

Importing this module never imports Isaac Lab: every ``isaaclab*`` import sits inside a function, so
``import genpo`` works on machines without it. Install and run commands: ``docs/isaaclab.md``; the
upstream lines each behaviour below relies on are cited in ``tests/envs/test_isaaclab_contract.py``.

Task names
----------
``task`` is one of :data:`TASK_IDS` (genpo's names of the paper's eight tasks, e.g. ``ant``) or a literal
gymnasium id. Isaac Lab 2.x registers the ``-v0`` ids (``Isaac-Ant-v0``); the 3.x development line renamed
most of them without an alias (``Isaac-Ant``, ``Isaac-Velocity-Flat-AnymalD``,
``Isaac-Reorient-Cube-Shadow-Direct``). Each id in :data:`TASK_IDS` is pinned to the file that registers it
(docs/isaaclab_settings.toml). On 2.x only the ``-v0`` id is tried; on 3.x the development-line id, then the
``-v0`` id; the first one in the registry is used.

Creating the env (as Isaac Lab's ``scripts/reinforcement_learning/rsl_rl/train.py`` does)
---------------------------------------------------------------------------------------
The task's config is loaded from the registry, its preset nodes resolved (``presets`` selects named
presets, the others take their ``default``), then the runtime starts: on 3.x ``launch_simulation(env_cfg,
args)`` (``isaaclab.app`` on the development line, ``isaaclab_tasks.utils`` in the 3.0 release), on 2.x an
``AppLauncher`` started before the task modules are imported. Launcher arguments come from Isaac Lab's own
parser fed a fixed list (``--device``; ``--headless`` unless a visualizer is named, see
:func:`launcher_argv`), and ``sys.argv`` holds only the program name while Kit starts, so genpo's command
line never reaches Isaac Lab or Kit. The env is
``gym.make(id, cfg=env_cfg)`` wrapped in ``isaaclab_rl.rsl_rl.RslRlVecEnvWrapper``. On 2.x Kit should
start before torch is imported; ``scripts/genpo_isaaclab.py`` does that and hands the app to this module
(:func:`adopt_simulation_app`).

What is mapped
--------------
- observation group ``policy`` -> ``observation``; group ``critic`` (when defined) -> ``critic_observation``.
  Groups given as dicts of terms or with extra dimensions are flattened per env in term order. The rsl_rl
  wrapper of Isaac Lab 2.3 onwards returns the groups from ``step``; the 2.0-2.2 wrapper returns the
  ``policy`` group as a plain tensor and every group in ``extras["observations"]``, which is read then.
- rewards -> ``reward`` (float32); ``terminated`` = the env's ``reset_terminated``; ``truncated`` = time-outs
  (``extras["time_outs"]``, set by the wrapper only for infinite-horizon tasks) that are not terminations.
  A step that is both is a termination on either interface (never bootstrapped).
- Outputs are copies: Isaac Lab reuses its reward and termination buffers in place.
- ``extras["log"]`` is set on the steps where envs reset and stays in ``extras`` afterwards, so it is read
  only on steps where some env finished. Its ``Episode_Reward/*`` and ``Metrics/*`` means pass through as
  ``episode_info``; the rest (counts, curriculum state) stays readable as :attr:`IsaacLabEnv.last_log`.

Final observations
------------------
Isaac Lab resets finished envs inside ``step`` and returns the new episode's first observation. 2.x and
the 3.0 release do not expose the pre-reset observation: time-outs then bootstrap from the observation the
last action was taken in (V(s_T) ~ V(s_{T-1}), as rsl_rl's PPO does on Isaac Lab). Where an env publishes
``extras["final_obs"]`` (config flag ``compute_final_obs``, set here when the config has it) its rows are
used for the envs that finished.

Resets and resume
-----------------
:meth:`IsaacLabEnv.reset` resets every env through the gym env's ``reset`` (the rsl_rl wrapper has none).
:meth:`IsaacLabEnv.set_episode_steps` writes ``episode_length_buf`` as rsl_rl's ``init_at_random_ep_len``
does. A GPU simulation cannot be snapshotted (``restores_state = False``): :meth:`IsaacLabEnv.state_dict`
holds the task, batch size and step counter; after :meth:`IsaacLabEnv.load_state_dict` the caller resets
(genpo's collector does), so a resumed run restarts every episode.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Iterable, Mapping

import torch
from tensordict import TensorDict, TensorDictBase

from genpo.envs._batched import _where_rows, autoreset_output, validate_action
from genpo.envs.base import BatchedEnv

POLICY_GROUP = "policy"
CRITIC_GROUP = "critic"
EPISODE_LOG_PREFIXES = ("Episode_Reward/", "Metrics/")
"""``extras["log"]`` keys that are means over the envs reset in a step, hence valid as ``episode_info``."""

TASK_IDS: dict[str, tuple[str, str]] = {
    # genpo name: (Isaac Lab 2.x id, 3.x development-line id); the file that registers each: docs/isaaclab_settings.toml
    "ant": ("Isaac-Ant-v0", "Isaac-Ant"),
    "humanoid": ("Isaac-Humanoid-v0", "Isaac-Humanoid"),
    "franka_lift": ("Isaac-Lift-Cube-Franka-v0", "Isaac-Lift-Cube-Franka"),
    "quadcopter": ("Isaac-Quadcopter-Direct-v0", "Isaac-Quadcopter-Direct-v0"),
    "anymal_d_flat": ("Isaac-Velocity-Flat-Anymal-D-v0", "Isaac-Velocity-Flat-AnymalD"),
    "go2_rough": ("Isaac-Velocity-Rough-Unitree-Go2-v0", "Isaac-Velocity-Rough-UnitreeGo2"),
    "h1_rough": ("Isaac-Velocity-Rough-H1-v0", "Isaac-Velocity-Rough-H1"),
    "shadow_hand": ("Isaac-Repose-Cube-Shadow-Direct-v0", "Isaac-Reorient-Cube-Shadow-Direct"),
}

INSTALL_HINT = (
    "IsaacLabEnv({task!r}) needs Isaac Lab, which is not installed in this Python environment (it needs "
    "Python 3.12 and an NVIDIA GPU): install it with `pip install -e .[isaaclab]` as docs/isaaclab.md says, "
    "or pass env=<an already created Isaac Lab env>."
)

_SIMULATION: list = []
"""Launch contexts (3.x) or the ``AppLauncher`` (2.x) started or adopted here, kept alive for the process."""


def candidate_ids(task: str, major: int) -> tuple[str, ...]:
    """The gymnasium ids ``task`` may be registered under, preferred first for Isaac Lab ``major``."""
    if task not in TASK_IDS:
        return (task,)
    release_id, development_id = TASK_IDS[task]
    return (release_id,) if major < 3 else tuple(dict.fromkeys((development_id, release_id)))


def registered_id(task: str, major: int, registry: Iterable[str]) -> str:
    """The first of :func:`candidate_ids` in ``registry``; a single-line error naming ``task`` otherwise."""
    candidates = candidate_ids(task, major)
    registered = set(registry)
    for gym_id in candidates:
        if gym_id in registered:
            return gym_id
    raise ValueError(
        f"IsaacLabEnv({task!r}): none of {list(candidates)} is registered in Isaac Lab {major}.x; "
        "name the task by its registered id: genpo.build_env.name = 'isaaclab:<gym id>'"
    )


class IsaacLabEnv(BatchedEnv):
    """An Isaac Lab task as a batch of ``num_envs`` auto-resetting episodes (see the module docstring).

    ``env``: an already created rsl_rl ``VecEnv`` (``RslRlVecEnvWrapper``) or raw Isaac Lab env; otherwise
    the task is created with ``seed``, ``device``, ``visualizer`` (``None``: headless; e.g. ``'kit'``) and
    ``presets`` (names of config presets to select). ``clip_actions`` clamps actions to
    ``[-clip_actions, clip_actions]`` (default: none).
    """

    restores_state = False

    def __init__(
        self,
        task: str,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cuda:0",
        visualizer: str | None = None,
        presets: tuple[str, ...] = (),
        env=None,
        clip_actions: float | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"IsaacLabEnv({task!r}): num_envs must be >= 1, got {num_envs!r}")
        self.task = task
        if env is None:
            env = _make_isaaclab_env(task, num_envs, seed=seed, device=str(device), visualizer=visualizer, presets=presets)
        self._env = env
        self._rsl_rl_interface = callable(getattr(env, "get_observations", None))
        self._unwrapped = getattr(env, "unwrapped", env)
        if int(self._unwrapped.num_envs) != num_envs:
            raise ValueError(f"{self._name}: the given env has {self._unwrapped.num_envs} envs, expected num_envs={num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(self._unwrapped.device)
        self.clip_actions = clip_actions

        groups = _subspaces(self._unwrapped.single_observation_space)
        if POLICY_GROUP not in groups:
            raise ValueError(f"{self._name}: the env has no {POLICY_GROUP!r} observation group (groups: {sorted(groups)})")
        self.observation_dim = _flat_dim(groups[POLICY_GROUP])
        self.critic_observation_dim = _flat_dim(groups[CRITIC_GROUP]) if CRITIC_GROUP in groups else None
        num_actions = getattr(env, "num_actions", None)
        self.action_dim = int(num_actions) if num_actions is not None else _flat_dim(self._unwrapped.single_action_space)
        self.max_episode_steps = int(self._unwrapped.max_episode_length)

        cfg = getattr(self._unwrapped, "cfg", None)
        self.is_finite_horizon = bool(getattr(cfg, "is_finite_horizon", False))
        self.provides_final_observation = bool(getattr(cfg, "compute_final_obs", False))
        self.step_count = 0
        self.last_log: Mapping = {}
        self._last: dict[str, torch.Tensor] | None = None

    @property
    def _name(self) -> str:
        return f"IsaacLabEnv({self.task!r})"

    # --------------------------------------------------------------------------------------- the seam
    def reset(self) -> TensorDict:
        """Reset every env (the gym env's ``reset``); returns ``observation`` (and ``critic_observation``)."""
        gym_env = getattr(self._env, "env", self._env) if self._rsl_rl_interface else self._env
        observations, _ = gym_env.reset()
        self._last = self._observations(observations)
        return TensorDict(self._last, batch_size=[self.num_envs], device=self.device)

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        """Write ``steps`` into the env's ``episode_length_buf`` (rsl_rl's ``init_at_random_ep_len``)."""
        buffer = self._unwrapped.episode_length_buf
        buffer.copy_(steps.reshape(self.num_envs).to(device=buffer.device, dtype=buffer.dtype))

    def step(self, action: torch.Tensor) -> TensorDict:
        validate_action(self, action)
        if self._last is None:
            raise RuntimeError(f"{self._name}.step called before reset()")
        action = action.to(self.device)
        if self.clip_actions is not None:
            action = action.clamp(-self.clip_actions, self.clip_actions)
        if self._rsl_rl_interface:
            observations, reward, dones, extras = self._env.step(action)
            observations = self._step_groups(observations, extras)
            done = self._flags(dones)
            time_outs = extras.get("time_outs") if isinstance(extras, Mapping) else None
            if time_outs is None:  # finite horizon: the time limit is terminal
                terminated, truncated = done, torch.zeros_like(done)
            else:
                truncated = done & self._flags(time_outs)
                reset_terminated = getattr(self._unwrapped, "reset_terminated", None)
                terminated = done & (self._flags(reset_terminated) if reset_terminated is not None else ~truncated)
        else:
            observations, reward, terminated, truncated, extras = self._env.step(action)
            terminated, truncated = self._flags(terminated), self._flags(truncated)
            if self.is_finite_horizon:
                terminated, truncated = terminated | truncated, torch.zeros_like(truncated)
        truncated = truncated & ~terminated
        done = terminated | truncated
        extras = extras if isinstance(extras, Mapping) else {}
        reward = reward.reshape(self.num_envs).to(device=self.device, dtype=torch.float32, copy=True)
        current = self._observations(observations)
        final = self._final_observations(extras, done, current)
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
            episode_info=self._episode_info(extras) if bool(done.any()) else None,
        )

    def state_dict(self) -> dict:
        """Task, batch size and step counter: a GPU simulation cannot be snapshotted."""
        return {"task": self.task, "num_envs": self.num_envs, "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        """Restore the step counter; the episodes cannot continue, so :meth:`reset` must come next."""
        if state["task"] != self.task or state["num_envs"] != self.num_envs:
            raise ValueError(
                f"{self._name}.load_state_dict: state of {state['num_envs']} {state['task']!r} envs, "
                f"expected {self.num_envs}"
            )
        self.step_count = int(state["step_count"])
        self._last = None

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
                f"{type(observations).__name__}"
            )
        out = {"observation": self._group(observations, POLICY_GROUP, self.observation_dim)}
        if self.critic_observation_dim is not None:
            out["critic_observation"] = self._group(observations, CRITIC_GROUP, self.critic_observation_dim)
        return out

    def _step_groups(self, observations, extras):
        """The observation groups of an rsl_rl wrapper's step: the returned groups (Isaac Lab 2.3 onwards), or
        ``extras["observations"]`` when the wrapper returns only the ``policy`` group as a tensor (2.0-2.2)."""
        if isinstance(observations, (Mapping, TensorDictBase)):
            return observations
        groups = extras.get("observations") if isinstance(extras, Mapping) else None
        if not isinstance(groups, (Mapping, TensorDictBase)):
            raise TypeError(
                f"{self._name}: the env's step returned observations as {type(observations).__name__} and no "
                'extras["observations"] dict of groups'
            )
        return groups

    def _group(self, observations, group: str, width: int) -> torch.Tensor:
        if group not in observations.keys():
            raise ValueError(f"{self._name}: observation group {group!r} missing from the env's observations")
        flat = _flatten(observations[group], self.num_envs).to(device=self.device, dtype=torch.float32, copy=True)
        if flat.shape[-1] != width:
            raise ValueError(f"{self._name}: observation group {group!r} has width {flat.shape[-1]}, expected {width}")
        return flat

    def _final_observations(self, extras: Mapping, done: torch.Tensor, current: dict[str, torch.Tensor]) -> dict:
        """Pre-reset observations where ``done`` (``extras["final_obs"]``, else the previous observation)."""
        final_obs = extras.get("final_obs")
        source = self._observations(final_obs) if isinstance(final_obs, (Mapping, TensorDictBase)) else self._last
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


def isaaclab_major(task: str = "?") -> int:
    """The installed ``isaaclab`` package's major version (ImportError with the install hint if absent)."""
    try:
        return int(importlib.metadata.version("isaaclab").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(INSTALL_HINT.format(task=task)) from None


@contextlib.contextmanager
def program_name_only_argv():
    """``sys.argv`` reduced to the program name inside the block (Kit and Isaac Lab read it), restored after."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def launcher_argv(major: int, device: str, visualizer: str | None) -> list[str]:
    """The argument list fed to Isaac Lab's launcher parser; ``--headless`` unless a visualizer is named.

    Every line needs it: ``AppLauncher`` opens Kit's window unless ``--headless`` is given (2.x, and the 3.0
    release, where ``launch_simulation`` hands the arguments to ``AppLauncher``: only a visualizer without
    ``kit`` also makes it headless); the development line still accepts it (deprecated) and forces headless.
    """
    if not visualizer:
        return ["--device", device, "--headless"]
    return ["--device", device] + (["--visualizer", visualizer] if major >= 3 else [])


def start_app_launcher(device: str, visualizer: str | None = None):
    """Start Kit through Isaac Lab 2.x's ``AppLauncher`` (before torch, if called from a launcher script)."""
    from isaaclab.app import AppLauncher

    parser = argparse.ArgumentParser(add_help=False)
    AppLauncher.add_app_launcher_args(parser)
    args = parser.parse_args(launcher_argv(2, device, visualizer))
    with program_name_only_argv():
        return AppLauncher(args)


def adopt_simulation_app(app_launcher, device: str) -> None:
    """Use an ``AppLauncher`` started before genpo was imported (``scripts/genpo_isaaclab.py``)."""
    _SIMULATION.append((app_launcher, device))


def _make_isaaclab_env(task: str, num_envs: int, *, seed: int, device: str, visualizer: str | None, presets):
    """Create ``task`` as Isaac Lab's rsl_rl ``train.py`` does, wrapped in ``RslRlVecEnvWrapper``."""
    if importlib.util.find_spec("isaaclab") is None:
        raise ImportError(INSTALL_HINT.format(task=task))
    major = isaaclab_major(task)
    if major < 3:  # the app must run before any task module is imported, once per process
        if not _SIMULATION:
            warnings.warn(
                f"IsaacLabEnv({task!r}): Kit starts after torch was imported; Isaac Lab's launcher warns this can "
                "crash its start-up; start runs with scripts/genpo_isaaclab.py",
                stacklevel=3,
            )
            adopt_simulation_app(start_app_launcher(device, visualizer), device)
        if _SIMULATION[0][1] != device:
            raise ValueError(f"IsaacLabEnv({task!r}): Kit runs on {_SIMULATION[0][1]}, the env asks for {device}")
        env_cfg, gym_id = _load_env_cfg(task, major, num_envs, seed=seed, device=device, presets=presets)
    else:  # 3.x: the config is loaded first, launch_simulation reads it to pick the runtimes
        env_cfg, gym_id = _load_env_cfg(task, major, num_envs, seed=seed, device=device, presets=presets)
        _SIMULATION.append((_launch_simulation(env_cfg, major, device=device, visualizer=visualizer), device))

    import gymnasium
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    return RslRlVecEnvWrapper(gymnasium.make(gym_id, cfg=env_cfg))


def _load_env_cfg(task: str, major: int, num_envs: int, *, seed: int, device: str, presets):
    """The task's env config with presets resolved, device, batch size and seed set; and its gym id."""
    import gymnasium

    with program_name_only_argv():
        import isaaclab_tasks  # noqa: F401  (registers the tasks with gymnasium)
        from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

    gym_id = registered_id(task, major, gymnasium.registry.keys())
    env_cfg = load_cfg_from_registry(gym_id, "env_cfg_entry_point")
    resolve_presets = _optional_attribute("isaaclab_tasks.utils.hydra", "resolve_presets")
    if resolve_presets is not None:  # 3.x: PresetCfg nodes become the selected (else default) alternative
        env_cfg = resolve_presets(env_cfg, set(presets))
    elif presets:
        raise ValueError(f"IsaacLabEnv({task!r}): presets {list(presets)} need Isaac Lab 3.x, found {major}.x")
    env_cfg.sim.device = device
    env_cfg.scene.num_envs = num_envs
    env_cfg.seed = seed
    if hasattr(env_cfg, "compute_final_obs"):  # publish extras["final_obs"] where the env supports it
        env_cfg.compute_final_obs = True
    return env_cfg, gym_id


def _optional_attribute(module: str, name: str):
    """``module.name`` when the module exists (its own import errors propagate), else None."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    return None if spec is None else getattr(importlib.import_module(module), name, None)


def _launch_simulation(env_cfg, major: int, *, device: str, visualizer: str | None) -> contextlib.ExitStack:
    """Enter Isaac Lab 3.x's ``launch_simulation(env_cfg, args)``; never exited here (Kit closes at exit)."""
    module = "isaaclab.app.sim_launcher"  # development line; the 3.0 release has it in isaaclab_tasks.utils
    if _optional_attribute(module, "launch_simulation") is None:
        module = "isaaclab_tasks.utils.sim_launcher"
    launcher = importlib.import_module(module)
    add_launcher_args = getattr(launcher, "add_launcher_args", None) or importlib.import_module("isaaclab.app").add_launcher_args
    parser = argparse.ArgumentParser(add_help=False)
    add_launcher_args(parser)
    args = parser.parse_args(launcher_argv(major, device, visualizer))
    stack = contextlib.ExitStack()
    with program_name_only_argv():
        stack.enter_context(launcher.launch_simulation(env_cfg, args))
    return stack
