"""The Isaac Lab adapter against fakes with Isaac Lab's interfaces, on CPU (Isaac Lab itself needs a GPU).

Two fakes mirror the two objects ``IsaacLabEnv`` accepts, as documented by Isaac Lab 3.x:

- ``FakeIsaacLabEnv``: a raw ``ManagerBasedRLEnv``/``DirectRLEnv`` (``gym.make`` result): dict observations
  with ``policy``/``critic`` groups, ``step`` -> ``(obs, rewards, terminated, truncated, extras)``, same-step
  auto-reset, reward/termination/observation buffers reused in place, ``extras["log"]`` scalars set on resets
  and, with ``cfg.compute_final_obs``, the pre-reset observation groups in ``extras["final_obs"]``;
- ``FakeRslRlVecEnvWrapper``: ``isaaclab_rl.rsl_rl.RslRlVecEnvWrapper`` around it: TensorDict observations,
  ``step`` -> ``(obs, rewards, dones, extras)`` with ``dones`` as long and ``extras["time_outs"]`` only for
  infinite-horizon tasks.

Each env's observation encodes its step clock (reset to 0 at each new episode), so tests can tell the
pre-reset observation of a finished episode from the first observation of the next one.
"""

from __future__ import annotations

import math
import subprocess
import sys
import types

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict

from genpo.builders import build_env, build_trainer, parse_config
from genpo.envs.isaaclab import IsaacLabEnv

NUM_ENVS = 4
POLICY_DIM, CRITIC_DIM, ACTION_DIM = 6, 9, 3
MAX_EPISODE_LENGTH = 10


class FakeIsaacLabEnv:
    """A raw Isaac Lab RL env (``ManagerBasedRLEnv`` contract) with scripted terminations and time-outs.

    Env ``i``'s state is its clock and a position ``x`` that integrates the mean action. An episode times out
    after ``max_episode_length`` steps, terminates when ``|x| > 3`` and wherever ``terminate_at[step]`` /
    ``truncate_at[step]`` lists it (global step counter, from 1).
    """

    def __init__(
        self,
        num_envs=NUM_ENVS,
        *,
        critic=True,
        compute_final_obs=True,
        is_finite_horizon=False,
        max_episode_length=MAX_EPISODE_LENGTH,
        terminate_at=None,
        truncate_at=None,
    ):
        self.num_envs = num_envs
        self.device = "cpu"
        self.unwrapped = self
        self.cfg = types.SimpleNamespace(compute_final_obs=compute_final_obs, is_finite_horizon=is_finite_horizon)
        groups = {"policy": gym.spaces.Box(-math.inf, math.inf, shape=(POLICY_DIM,))}
        if critic:
            groups["critic"] = gym.spaces.Dict(  # a non-concatenated group: a dict of terms
                {
                    "base": gym.spaces.Box(-math.inf, math.inf, shape=(POLICY_DIM,)),
                    "privileged": gym.spaces.Box(-math.inf, math.inf, shape=(CRITIC_DIM - POLICY_DIM,)),
                }
            )
        self.single_observation_space = gym.spaces.Dict(groups)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,))
        self.max_episode_length = max_episode_length
        self.terminate_at = terminate_at or {}
        self.truncate_at = truncate_at or {}
        self.has_critic = critic
        self.clock = torch.zeros(num_envs)
        self.x = torch.zeros(num_envs)
        self.episode_return = torch.zeros(num_envs)
        # buffers Isaac Lab reuses in place from step to step
        self.reward_buf = torch.zeros(num_envs)
        self.reset_terminated = torch.zeros(num_envs, dtype=torch.bool)
        self.reset_time_outs = torch.zeros(num_envs, dtype=torch.bool)
        self.obs_buf = {"policy": torch.zeros(num_envs, POLICY_DIM)}
        if critic:
            self.obs_buf["critic"] = {
                "base": torch.zeros(num_envs, POLICY_DIM),
                "privileged": torch.zeros(num_envs, CRITIC_DIM - POLICY_DIM),
            }
        self.extras = {}
        self.step_count = 0
        self.reset_calls = 0
        self.actions = []
        self.closed = False

    def _observe(self, out=None):
        """Observation groups; written into ``out`` (the persistent buffers) when given."""
        policy = torch.stack([self.clock, self.x, *([self.clock * 0.5] * (POLICY_DIM - 2))], dim=-1)
        privileged = torch.stack([self.x**2, -self.clock, torch.ones_like(self.x)], dim=-1)
        if out is None:
            observation = {"policy": policy.clone()}
            if self.has_critic:
                observation["critic"] = {"base": policy.clone(), "privileged": privileged}
            return observation
        out["policy"].copy_(policy)
        if self.has_critic:
            out["critic"]["base"].copy_(policy)
            out["critic"]["privileged"].copy_(privileged)
        return out

    def reset(self, seed=None, options=None):
        self.reset_calls += 1
        self.clock.zero_()
        self.x.zero_()
        self.episode_return.zero_()
        return self._observe(self.obs_buf), self.extras

    def step(self, actions):
        self.actions.append(actions)
        self.step_count += 1
        self.clock += 1
        self.x += actions.mean(-1)
        self.reward_buf.copy_(1.0 - self.x.abs())
        self.episode_return += self.reward_buf
        self.reset_terminated.copy_(self.x.abs() > 3.0)
        self.reset_terminated[self.terminate_at.get(self.step_count, [])] = True
        self.reset_time_outs.copy_(self.clock >= self.max_episode_length)
        self.reset_time_outs[self.truncate_at.get(self.step_count, [])] = True
        done = self.reset_terminated | self.reset_time_outs
        if done.any():
            if self.cfg.compute_final_obs:
                self.extras["final_obs"] = self._observe()
            self.extras["log"] = {
                "Episode_Reward/alive": self.episode_return[done].mean() / self.max_episode_length,
                "Episode_Termination/time_out": int(self.reset_time_outs.sum()),
                "Curriculum/level": 2.0,
            }
            self.clock[done] = 0.0
            self.x[done] = 0.0
            self.episode_return[done] = 0.0
        return self._observe(self.obs_buf), self.reward_buf, self.reset_terminated, self.reset_time_outs, self.extras

    def close(self):
        self.closed = True


class FakeRslRlVecEnvWrapper:
    """``isaaclab_rl.rsl_rl.RslRlVecEnvWrapper`` around a raw env: the rsl_rl ``VecEnv`` interface."""

    def __init__(self, env):
        self.env = env
        self.unwrapped = env.unwrapped
        self.num_envs = env.num_envs
        self.device = env.device
        self.num_actions = ACTION_DIM
        self.max_episode_length = env.max_episode_length
        self.env.reset()  # like the real wrapper: the rsl_rl runner never calls reset

    def get_observations(self):
        return TensorDict(self.unwrapped.obs_buf, batch_size=[self.num_envs])

    def reset(self):
        observations, extras = self.env.reset()
        return TensorDict(observations, batch_size=[self.num_envs]), extras

    def step(self, actions):
        observations, reward, terminated, truncated, extras = self.env.step(actions)
        dones = (terminated | truncated).to(dtype=torch.long)
        if not self.unwrapped.cfg.is_finite_horizon:
            extras["time_outs"] = truncated
        return TensorDict(observations, batch_size=[self.num_envs]), reward, dones, extras

    def close(self):
        self.env.close()


def make_adapter(interface: str, **fake_kwargs) -> tuple[IsaacLabEnv, FakeIsaacLabEnv]:
    fake = FakeIsaacLabEnv(**fake_kwargs)
    env = FakeRslRlVecEnvWrapper(fake) if interface == "rsl_rl" else fake
    return IsaacLabEnv("Isaac-Fake-v0", fake.num_envs, env=env), fake


INTERFACES = ["rsl_rl", "raw"]


def zeros() -> torch.Tensor:
    return torch.zeros(NUM_ENVS, ACTION_DIM)


# ------------------------------------------------------------------------------- (a) the key mapping
@pytest.mark.parametrize("interface", INTERFACES)
def test_dims_keys_shapes_dtypes_and_devices(interface):
    env, _ = make_adapter(interface)
    assert (env.num_envs, env.observation_dim, env.critic_observation_dim) == (NUM_ENVS, POLICY_DIM, CRITIC_DIM)
    assert (env.action_dim, env.max_episode_steps, env.device) == (ACTION_DIM, MAX_EPISODE_LENGTH, torch.device("cpu"))
    start = env.reset()
    assert set(start.keys()) == {"observation", "critic_observation"}
    output = env.step(zeros())
    assert set(output.keys()) == {
        "observation",
        "critic_observation",
        "final_observation",
        "final_critic_observation",
        "reward",
        "terminated",
        "truncated",
    }
    assert output.batch_size == torch.Size([NUM_ENVS])
    assert output["observation"].shape == output["final_observation"].shape == (NUM_ENVS, POLICY_DIM)
    assert output["critic_observation"].shape == output["final_critic_observation"].shape == (NUM_ENVS, CRITIC_DIM)
    assert output["reward"].shape == output["terminated"].shape == output["truncated"].shape == (NUM_ENVS,)
    assert output["observation"].dtype == output["critic_observation"].dtype == output["reward"].dtype == torch.float32
    assert output["terminated"].dtype == output["truncated"].dtype == torch.bool
    assert all(value.device == env.device for value in output.values())


@pytest.mark.parametrize("interface", INTERFACES)
def test_critic_group_is_flattened_in_term_order(interface):
    env, fake = make_adapter(interface)
    env.reset()
    fake.x.fill_(0.5)  # any state; observations are read from the env's buffers
    output = env.step(torch.full((NUM_ENVS, ACTION_DIM), 0.25))
    base, privileged = output["critic_observation"].split([POLICY_DIM, CRITIC_DIM - POLICY_DIM], dim=-1)
    assert torch.equal(base, output["observation"])
    assert torch.equal(privileged[:, 0], fake.x**2) and torch.equal(privileged[:, 1], -fake.clock)


@pytest.mark.parametrize("interface", INTERFACES)
def test_time_outs_are_truncations_and_terminations_carry_the_final_observation(interface):
    env, fake = make_adapter(interface, truncate_at={3: [0]}, terminate_at={3: [1]})
    env.reset()
    for _ in range(2):
        output = env.step(zeros())
        assert not (output["terminated"] | output["truncated"]).any()
    output = env.step(zeros())
    assert output["truncated"].tolist() == [True, False, False, False]
    assert output["terminated"].tolist() == [False, True, False, False]
    # finished envs: the pre-reset observation (clock 3) as final, the new episode's (clock 0) as observation
    assert output["final_observation"][:2, 0].tolist() == [3.0, 3.0]
    assert output["observation"][:2, 0].tolist() == [0.0, 0.0]
    assert output["final_critic_observation"][:2, POLICY_DIM + 1].tolist() == [-3.0, -3.0]
    assert output["critic_observation"][:2, POLICY_DIM + 1].tolist() == [0.0, 0.0]
    running = slice(2, None)
    assert torch.equal(output["final_observation"][running], output["observation"][running])
    assert output["observation"][running, 0].tolist() == [3.0, 3.0]


@pytest.mark.parametrize("interface", INTERFACES)
def test_the_time_limit_truncates(interface):
    env, _ = make_adapter(interface)
    env.reset()
    for step in range(1, MAX_EPISODE_LENGTH + 1):
        output = env.step(zeros())
        assert bool(output["truncated"].all()) is (step == MAX_EPISODE_LENGTH)
        assert not output["terminated"].any()


@pytest.mark.parametrize("interface", INTERFACES)
def test_finite_horizon_time_limits_are_terminal(interface):
    env, _ = make_adapter(interface, is_finite_horizon=True, truncate_at={1: [2]})
    env.reset()
    output = env.step(zeros())
    assert output["terminated"].tolist() == [False, False, True, False]
    assert not output["truncated"].any()


@pytest.mark.parametrize("interface", INTERFACES)
def test_without_final_obs_the_last_observation_approximates_it(interface):
    env, fake = make_adapter(interface, compute_final_obs=False, truncate_at={3: [0]})
    assert not env.provides_final_observation
    env.reset()
    env.step(zeros())
    env.step(zeros())
    output = env.step(zeros())
    assert "final_obs" not in fake.extras
    assert output["truncated"][0]
    assert output["final_observation"][0, 0] == 2.0  # the observation the last action was taken in
    assert output["observation"][0, 0] == 0.0
    assert output["final_critic_observation"][0, POLICY_DIM + 1] == -2.0


@pytest.mark.parametrize("interface", INTERFACES)
def test_outputs_are_copies_of_the_reused_env_buffers(interface):
    env, _ = make_adapter(interface, terminate_at={1: [0]})
    env.reset()
    first = env.step(zeros())  # env 0 terminates; the env's termination buffer is cleared next step
    second = env.step(torch.full((NUM_ENVS, ACTION_DIM), 0.5))
    snapshot = second.clone()
    env.step(torch.full((NUM_ENVS, ACTION_DIM), -2.0))  # new rewards and observations in the env's buffers
    assert first["terminated"].tolist() == [True, False, False, False]
    assert (second == snapshot).all()


@pytest.mark.parametrize("interface", INTERFACES)
def test_actions_reach_the_env_on_its_device_and_bad_actions_fail(interface):
    env, fake = make_adapter(interface)
    env.reset()
    action = torch.randn(NUM_ENVS, ACTION_DIM)
    env.step(action)
    assert torch.equal(fake.actions[-1], action) and fake.actions[-1].device == env.device
    with pytest.raises(ValueError, match=r"IsaacLabEnv.step: action has shape \(4, 2\), expected \(4, 3\)"):
        env.step(torch.zeros(NUM_ENVS, 2))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.full((NUM_ENVS, ACTION_DIM), float("nan")))


def test_clip_actions_clamps_before_the_env():
    fake = FakeIsaacLabEnv()
    env = IsaacLabEnv("Isaac-Fake-v0", NUM_ENVS, env=fake, clip_actions=0.5)
    env.reset()
    env.step(torch.full((NUM_ENVS, ACTION_DIM), 2.0))
    assert torch.equal(fake.actions[-1], torch.full((NUM_ENVS, ACTION_DIM), 0.5))


@pytest.mark.parametrize("interface", INTERFACES)
def test_episode_means_from_the_log_pass_through_and_counters_are_dropped(interface):
    env, fake = make_adapter(interface, truncate_at={2: [0, 3]})
    env.reset()
    assert "episode_info" not in env.step(zeros()).keys()
    output = env.step(zeros())
    info = output["episode_info"]
    assert set(info.keys()) == {"Episode_Reward/alive"}
    assert info.batch_size == torch.Size([NUM_ENVS])
    assert torch.allclose(info["Episode_Reward/alive"], torch.full((NUM_ENVS,), 2.0 / MAX_EPISODE_LENGTH))
    assert env.last_log is fake.extras["log"]  # everything, counters included, stays readable


def test_env_without_a_critic_group_has_no_critic_observation():
    env, _ = make_adapter("raw", critic=False)
    assert env.critic_observation_dim is None
    assert set(env.reset().keys()) == {"observation"}
    assert "critic_observation" not in env.step(zeros()).keys()


def test_step_before_reset_and_wrong_num_envs_fail_clearly():
    with pytest.raises(ValueError, match=r"the given env has 4 envs, expected num_envs=8"):
        IsaacLabEnv("Isaac-Fake-v0", 8, env=FakeIsaacLabEnv())
    env = IsaacLabEnv("Isaac-Fake-v0", NUM_ENVS, env=FakeIsaacLabEnv())
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(zeros())


@pytest.mark.parametrize("interface", INTERFACES)
def test_state_dict_holds_counters_and_resume_restarts_episodes(interface, tmp_path):
    env, fake = make_adapter(interface)
    env.reset()
    for _ in range(3):
        env.step(zeros())
    state = env.state_dict()
    assert state == {"task": "Isaac-Fake-v0", "num_envs": NUM_ENVS, "step_count": 3}
    torch.save(state, tmp_path / "env.pt")

    resumed, resumed_fake = make_adapter(interface)
    resumed.reset()
    resumed.step(zeros())
    resets_before = resumed_fake.reset_calls
    resumed.load_state_dict(torch.load(tmp_path / "env.pt"))
    assert resumed.step_count == 3 and resumed_fake.reset_calls == resets_before  # the caller resets
    with pytest.raises(RuntimeError, match="before reset"):
        resumed.step(zeros())
    resumed.reset()
    assert resumed_fake.reset_calls == resets_before + 1
    assert resumed.step(zeros())["observation"][:, 0].tolist() == [1.0] * NUM_ENVS  # fresh episodes
    with pytest.raises(ValueError, match="state of 4 'Isaac-Other-v0' envs"):
        resumed.load_state_dict({**state, "task": "Isaac-Other-v0"})


@pytest.mark.parametrize("interface", INTERFACES)
def test_close_closes_the_env(interface):
    env, fake = make_adapter(interface)
    env.close()
    assert fake.closed


def test_build_env_creates_the_task_with_the_run_settings(monkeypatch):
    """``isaaclab:<task>`` reaches the creation path with num_envs, seed, device and gin-bound options."""
    import genpo.envs.isaaclab as adapter

    calls = []

    def make(task, num_envs, **kwargs):
        calls.append((task, num_envs, kwargs))
        return FakeRslRlVecEnvWrapper(FakeIsaacLabEnv(num_envs))

    monkeypatch.setattr(adapter, "_make_isaaclab_env", make)
    parse_config([], ["genpo.build_env.visualizer = 'kit'", "genpo.build_env.clip_actions = 2.0"])
    env = build_env(name="isaaclab:ant", num_envs=NUM_ENVS, seed=3, device="cpu")
    assert calls == [("ant", NUM_ENVS, {"seed": 3, "device": "cpu", "visualizer": "kit", "presets": ()})]
    assert isinstance(env, IsaacLabEnv) and env.task == "ant" and env.clip_actions == 2.0


# ------------------------------------------------------------------ (b) training through the adapter
TINY = [
    "GAMMA = 0.99",
    "velocity_network.mlp.hidden_sizes = (16,)",
    "critic.mlp.hidden_sizes = (16,)",
    "time_embedding.sinusoidal.out_dim = 8",
    "time_embedding.sinusoidal.hidden_sizes = (16,)",
    "genpo.trainer.steps_per_env = 16",
    "genpo.trainer.epochs = 2",
    "genpo.trainer.minibatches = 2",
]


@pytest.mark.parametrize("interface", INTERFACES)
def test_training_iterations_run_through_the_adapter_with_critic_observations(interface, tmp_path):
    parse_config(["policies/genpo.gin", "algorithms/ppo.gin"], TINY)
    fake = FakeIsaacLabEnv(8)
    env = FakeRslRlVecEnvWrapper(fake) if interface == "rsl_rl" else fake
    trainer = build_trainer(IsaacLabEnv("Isaac-Fake-v0", 8, env=env), tmp_path)

    assert CRITIC_DIM != POLICY_DIM
    assert trainer.critic.in_keys == ["critic_observation"]
    first_layer = next(module for module in trainer.critic.modules() if isinstance(module, torch.nn.Linear))
    assert first_layer.in_features == CRITIC_DIM
    assert trainer.critic_observation_normalizer is not None

    for _ in range(3):
        metrics = trainer.run_iteration()
        losses = {key: value for key, value in metrics.items() if "loss" in key}
        assert {"policy_loss", "value_loss"} <= losses.keys()
        assert all(math.isfinite(value) for value in losses.values()), losses
    assert metrics["env_steps"] == 3 * 16 * 8
    assert metrics["episodes"] > 0 and math.isfinite(metrics["return_mean"])
    assert math.isfinite(metrics["info/Episode_Reward/alive"])
    assert fake.actions[-1].shape == (8, ACTION_DIM)


# ------------------------------------------------------------------ (c), (d) import and install hint
def test_importing_genpo_never_imports_isaaclab():
    code = (
        "import sys, genpo, genpo.builders, genpo.envs, genpo.envs.isaaclab, genpo.cli\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in "
        "('isaaclab', 'isaaclab_rl', 'isaaclab_tasks', 'isaacsim', 'omni'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_building_an_isaaclab_env_without_isaaclab_names_the_install():
    import importlib.util

    if importlib.util.find_spec("isaaclab") is not None:
        pytest.skip("Isaac Lab is installed here")
    with pytest.raises(ImportError, match=r"'ant'.*pip install -e \.\[isaaclab\].*docs/isaaclab\.md"):
        build_env(name="isaaclab:ant", num_envs=4)
