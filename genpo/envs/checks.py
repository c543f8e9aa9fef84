"""``check_batched_env``: does an env keep the :class:`~genpo.envs.base.BatchedEnv` contract?

In the spirit of torchrl's ``check_env_specs``, for genpo's env seam. Run it on a new env before training
on it: PPO silently learns the wrong values from an env whose time-outs lose their final observation, or
whose truncation and termination are mixed up. Every registered env is checked by the test suite.

    from genpo.envs.checks import check_batched_env
    report = check_batched_env(MyEnv(8, seed=0), same_seed_env=MyEnv(8, seed=0))

Checked, each failure an :class:`EnvCheckError` naming the env and what is wrong:

- shapes, dtypes and device of ``reset`` and ``step`` (``observation``, ``critic_observation``,
  ``reward``, ``terminated``, ``truncated``, ``final_observation``, ``episode_info``), finite values;
- ``terminated`` and ``truncated`` never both set; ``final_observation`` equals ``observation`` where no
  episode ended;
- time limits and auto-reset: an episode whose step counter is set one short of ``max_episode_steps``
  ends at the next step, as a time-out unless it terminated; the next episodes start from reset
  observations (not all equal to the final ones, unless the env's observations never change) and run
  afresh (no immediate time-out);
- the final observation of a time-out (where ``env.restores_state``): the same step taken from the same
  state, once one step short of the time limit and once far from it, gives the same
  ``final_observation``, reward and ``terminated``; only ``truncated`` differs (set exactly where the
  episode did not terminate). An env that returned the reset observation, or lost a termination to the
  time-out, fails here;
- seeding: with ``same_seed_env`` (built like ``env`` with the same seed), both give identical
  observations, rewards and flags under the same actions;
- exact resume (where ``env.restores_state``): after ``load_state_dict(state_dict())`` the env repeats
  exactly the steps it took from that state, auto-resets included (episodes are set to time out during
  them).
"""

from __future__ import annotations

import copy

import attrs
import torch
from tensordict import TensorDictBase

from genpo.envs.base import BatchedEnv


class EnvCheckError(AssertionError):
    """A batched env breaks the seam's contract (the message names the env and the broken rule)."""


@attrs.frozen
class EnvCheckReport:
    """What the check saw: env steps taken (per env), and how many episodes ended by each cause."""

    steps: int
    terminations: int
    time_outs: int


def check_batched_env(
    env: BatchedEnv, *, same_seed_env: BatchedEnv | None = None, steps: int = 16, seed: int = 0
) -> EnvCheckReport:
    """Check ``env`` against the seam (see the module docstring); ``steps`` random-action steps are
    taken (actions uniform in [-1, 1], drawn from ``seed``) besides the time-limit and resume probes.
    Resets ``env`` (and ``same_seed_env``) first. Returns what was observed."""
    name = type(env).__name__
    generator = torch.Generator().manual_seed(seed)

    def random_action() -> torch.Tensor:
        return (2.0 * torch.rand(env.num_envs, env.action_dim, generator=generator) - 1.0).to(env.device)

    _check_attributes(env, name)
    observed = env.reset()
    _check_observations(env, name, observed, "reset")
    if same_seed_env is not None:
        _check_same_seed(env, same_seed_env, name, observed, random_action)
        observed = env.reset()
    terminations = time_outs = 0
    observations_change = False
    for _ in range(steps):
        result = env.step(random_action())
        _check_step(env, name, result)
        terminations += int(result["terminated"].sum())
        time_outs += int(result["truncated"].sum())
        observations_change |= not torch.equal(result["final_observation"], observed["observation"])
        observed = result
    time_outs += _check_time_limit(env, name, random_action, observations_change)
    if env.restores_state:
        _check_resume(env, name, random_action)
    return EnvCheckReport(steps=steps, terminations=terminations, time_outs=time_outs)


def _fail(name: str, message: str) -> None:
    raise EnvCheckError(f"{name}: {message}")


def _check_attributes(env: BatchedEnv, name: str) -> None:
    for attribute in ("num_envs", "observation_dim", "action_dim", "max_episode_steps"):
        value = getattr(env, attribute, None)
        if not isinstance(value, int) or value < 1:
            _fail(name, f"{attribute} must be a positive int, got {value!r}")
    critic = env.critic_observation_dim
    if critic is not None and (not isinstance(critic, int) or critic < 1):
        _fail(name, f"critic_observation_dim must be None or a positive int, got {critic!r}")
    if not isinstance(env.device, torch.device):
        _fail(name, f"device must be a torch.device, got {env.device!r}")


def _check_tensor(env: BatchedEnv, name: str, td: TensorDictBase, key: str, shape: tuple, dtype_kind: str, where: str) -> None:
    if key not in td.keys():
        _fail(name, f"{where} lacks {key!r}")
    value = td[key]
    if tuple(value.shape) != shape:
        _fail(name, f"{where}: {key} has shape {tuple(value.shape)}, expected {shape}")
    if dtype_kind == "float" and not value.dtype.is_floating_point:
        _fail(name, f"{where}: {key} has dtype {value.dtype}, expected a float dtype")
    if dtype_kind == "bool" and value.dtype != torch.bool:
        _fail(name, f"{where}: {key} has dtype {value.dtype}, expected torch.bool")
    if value.device.type != env.device.type:
        _fail(name, f"{where}: {key} is on {value.device}, the env on {env.device}")
    if dtype_kind == "float" and not bool(torch.isfinite(value).all()):
        _fail(name, f"{where}: {key} has non-finite values")


def _check_observations(env: BatchedEnv, name: str, td: TensorDictBase, where: str, prefix: str = "") -> None:
    if tuple(td.batch_size) != (env.num_envs,):
        _fail(name, f"{where} returned batch size {tuple(td.batch_size)}, expected ({env.num_envs},)")
    _check_tensor(env, name, td, prefix + "observation", (env.num_envs, env.observation_dim), "float", where)
    if env.critic_observation_dim is not None:
        shape = (env.num_envs, env.critic_observation_dim)
        _check_tensor(env, name, td, prefix + "critic_observation", shape, "float", where)


def _check_step(env: BatchedEnv, name: str, result: TensorDictBase) -> None:
    batch = (env.num_envs,)
    _check_observations(env, name, result, "step")
    _check_observations(env, name, result, "step", prefix="final_")
    _check_tensor(env, name, result, "reward", batch, "float", "step")
    _check_tensor(env, name, result, "terminated", batch, "bool", "step")
    _check_tensor(env, name, result, "truncated", batch, "bool", "step")
    terminated, truncated = result["terminated"], result["truncated"]
    if bool((terminated & truncated).any()):
        _fail(name, "step set both terminated and truncated for an env: a step that terminates is never a time-out")
    done = terminated | truncated
    keys = ["observation"] + (["critic_observation"] if env.critic_observation_dim is not None else [])
    for key in keys:
        same = (result[key] == result["final_" + key]).flatten(1).all(-1)
        if bool((~same & ~done).any()):
            rows = (~same & ~done).nonzero().flatten()[:4].tolist()
            _fail(name, f"final_{key} differs from {key} where no episode ended (envs {rows})")
    if "episode_info" in result.keys():
        info = result["episode_info"]
        if not isinstance(info, TensorDictBase) or tuple(info.batch_size) != batch:
            _fail(name, f"step: episode_info must be a TensorDict with batch size {batch}")


def _check_time_limit(env: BatchedEnv, name: str, random_action, observations_change: bool) -> int:
    """Episodes set one step short of the limit end at the next step (as time-outs where they do not
    terminate); the episodes that follow start afresh, from a reset observation (unless the env's
    observations never change, as in an aliased-state task). Returns the time-outs seen."""
    limit = env.max_episode_steps
    try:
        env.set_episode_steps(torch.full((env.num_envs,), limit - 1, dtype=torch.int64))
    except NotImplementedError:
        return 0
    _check_final_observation_of_time_out(env, name, random_action)
    env.set_episode_steps(torch.full((env.num_envs,), limit - 1, dtype=torch.int64))
    result = env.step(random_action())
    _check_step(env, name, result)
    terminated, truncated = result["terminated"], result["truncated"]
    if not bool((terminated | truncated).all()):
        rows = (~(terminated | truncated)).nonzero().flatten()[:4].tolist()
        _fail(name, f"episodes at step {limit - 1} of max_episode_steps {limit} did not end at the next step (envs {rows})")
    if observations_change and torch.equal(result["observation"], result["final_observation"]):
        _fail(name, "every episode ended, yet every next observation equals the final one: the env did not reset them")
    if limit > 1:
        following = env.step(random_action())
        _check_step(env, name, following)
        if bool(following["truncated"].any()):
            _fail(name, "an episode timed out on its first step after a time-out: the step counter was not reset")
    return int(truncated.sum())


def _check_final_observation_of_time_out(env: BatchedEnv, name: str, random_action) -> None:
    if not env.restores_state or env.max_episode_steps < 2:
        return
    action = random_action()
    state = copy.deepcopy(env.state_dict())
    env.set_episode_steps(torch.zeros(env.num_envs, dtype=torch.int64))
    free = env.step(action)
    env.load_state_dict(state)
    env.set_episode_steps(torch.full((env.num_envs,), env.max_episode_steps - 1, dtype=torch.int64))
    limited = env.step(action.clone())
    _check_step(env, name, limited)
    for key in ("final_observation", "final_critic_observation", "reward", "terminated"):
        if key in free.keys() and not torch.equal(free[key], limited[key]):
            _fail(
                name,
                f"a step ending in a time-out gives another {key} than the same step from the same state "
                "far from the time limit (a time-out must keep the episode's final observation)",
            )
    if not torch.equal(limited["truncated"], ~free["terminated"]):
        _fail(name, "a step at the time limit must be truncated exactly where it does not terminate")


def _check_same_seed(env: BatchedEnv, twin: BatchedEnv, name: str, observed: TensorDictBase, random_action) -> None:
    _assert_identical(name, observed, twin.reset(), "reset of two envs built with the same seed")
    for step in range(4):
        action = random_action()
        _assert_identical(name, env.step(action), twin.step(action.clone()), f"step {step} of two envs built with the same seed")


def _check_resume(env: BatchedEnv, name: str, random_action) -> None:
    """Four steps repeated after a restore; where the env can set its step counters, the episodes time
    out during them, so the restored state must also reproduce the auto-resets (their RNG draws)."""
    try:
        env.set_episode_steps(torch.full((env.num_envs,), max(env.max_episode_steps - 2, 0), dtype=torch.int64))
    except NotImplementedError:
        pass
    state = copy.deepcopy(env.state_dict())
    actions = [random_action() for _ in range(4)]
    first = [env.step(action) for action in actions]
    env.load_state_dict(state)
    for step, (action, expected) in enumerate(zip(actions, first, strict=True)):
        _assert_identical(name, expected, env.step(action), f"step {step} after load_state_dict(state_dict())")


def _assert_identical(name: str, expected: TensorDictBase, actual: TensorDictBase, what: str) -> None:
    for key in expected.keys(include_nested=True, leaves_only=True):
        if key not in actual.keys(include_nested=True, leaves_only=True) or not torch.equal(expected[key], actual[key]):
            _fail(name, f"{what}: {key} differs")
