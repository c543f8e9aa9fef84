"""The adapter against a double of Isaac Lab's real ``RslRlVecEnvWrapper`` and ``ManagerBasedRLEnv``.

Every behaviour of the double is taken from isaac-sim/IsaacLab at commit 37ddf626 (VERSION 2.3.2; line
numbers below) and holds unchanged at 51b4fb54 (release line, VERSION 3.0.0). Paths:
``W`` = source/isaaclab_rl/isaaclab_rl/rsl_rl/vecenv_wrapper.py,
``E`` = source/isaaclab/isaaclab/envs/manager_based_rl_env.py,
``M`` = source/isaaclab/isaaclab/managers/{reward,termination,observation}_manager.py,
``R`` = rsl_rl v5.4.2 (leggedrobotics/rsl_rl aabd3eb5) rsl_rl/runners/on_policy_runner.py.
The 2.0-2.2 wrapper is read from the GenPO authors' Isaac Lab tree, wadx2019/genpo at commit 5b6711bd
(VERSION 2.0.2): ``W20`` = source/isaaclab_rl/isaaclab_rl/rsl_rl/vecenv_wrapper.py there. Its layout changed
in 2.3.0 (isaac-sim/IsaacLab docs/source/refs/release_notes.rst, v2.3.0: "Adds changes for rsl_rl 3.0.1").
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import gin
import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict

import genpo.envs.isaaclab as adapter
from genpo.builders import build_env, parse_config
from genpo.builders.config import query_parameter
from genpo.builders.experiment import build_trainer
from genpo.components.losses.compression import NormCompression
from genpo.components.normalizers.observation import IdentityNormalizer
from genpo.components.normalizers.reward import NoRewardScaling
from genpo.envs.isaaclab import IsaacLabEnv, candidate_ids, launcher_argv, registered_id
from genpo.envs.random_episode_offsets import RandomEpisodeOffsets

N, POLICY, CRITIC, ACTIONS, LIMIT = 4, 5, 7, 2, 6


class ManagerBasedRLEnvDouble:
    """``E``: ``step`` -> ``(obs_buf, reward_buf, reset_terminated, reset_time_outs, extras)`` (E:241)."""

    def __init__(self, *, is_finite_horizon=False, terminate_at=None):
        self.num_envs, self.device, self.max_episode_length = N, "cpu", LIMIT
        self.cfg = type("Cfg", (), {"is_finite_horizon": is_finite_horizon})()  # no compute_final_obs in 2.3.2/3.0
        self.unwrapped = self
        box = lambda width: gym.spaces.Box(-math.inf, math.inf, shape=(width,))  # noqa: E731
        self.single_observation_space = gym.spaces.Dict({"policy": box(POLICY), "critic": box(CRITIC)})
        self.single_action_space = box(ACTIONS)
        self.episode_length_buf = torch.zeros(N, dtype=torch.long)  # E:77
        self._reward_buf = torch.zeros(N)  # reward_manager.py:63, written in place (:142, :152), returned (:159)
        self._terminated_buf = torch.zeros(N, dtype=torch.bool)  # termination_manager.py:71, cleared in place (:165)
        self._truncated_buf = torch.zeros(N, dtype=torch.bool)  # termination_manager.py:70
        self.extras = {}  # manager_based_env.py:136: one dict for the env's life
        self.terminate_at = terminate_at or {}
        self.x = torch.zeros(N)
        self.steps = 0

    def _observations(self):
        # observation_manager.py:317-342: a new dict of freshly concatenated group tensors on each compute
        clock = self.episode_length_buf.float()
        policy = torch.stack([clock, self.x, *[clock] * (POLICY - 2)], -1)
        return {"policy": policy, "critic": torch.cat([policy, torch.stack([self.x, -clock], -1)], -1)}

    def reset(self, seed=None, options=None):  # gym API: every env
        self.episode_length_buf.zero_()
        self.x.zero_()
        return self._observations(), self.extras

    def step(self, action):
        self.steps += 1
        self.x += action.mean(-1)
        self.episode_length_buf += 1  # E:201
        self._truncated_buf[:] = self.episode_length_buf >= self.max_episode_length  # time_out term
        self._terminated_buf[:] = False
        self._terminated_buf[self.terminate_at.get(self.steps, [])] = True  # both flags may be set
        self.reset_terminated, self.reset_time_outs = self._terminated_buf, self._truncated_buf  # E:205-206
        self._reward_buf[:] = 1.0 - self.x.abs()
        reset_ids = (self._terminated_buf | self._truncated_buf).nonzero().flatten()  # E:216
        if len(reset_ids):  # E:221 -> _reset_idx: a new "log" dict (E:367) and the clocks zeroed (E:394)
            self.extras["log"] = {"Episode_Reward/alive": float(self.steps), "Episode_Termination/time_out": 1.0}
            self.episode_length_buf[reset_ids] = 0
            self.x[reset_ids] = 0.0
        return self._observations(), self._reward_buf, self.reset_terminated, self.reset_time_outs, self.extras  # E:238-241

    def close(self):
        pass


class RslRlVecEnvWrapperDouble:
    """``W``: no final observation, ``dones`` as long, ``time_outs`` only for infinite horizons."""

    def __init__(self, env, has_reset=True):
        self.env = env  # W:48
        self.num_envs, self.device = env.num_envs, env.device
        self.max_episode_length = env.max_episode_length
        self.num_actions = gym.spaces.flatdim(env.single_action_space)  # W:60
        self.env.reset()  # W:66: "the RSL-RL runner does not call reset"
        if has_reset:  # W:138-141; absent from the wrapper at isaac-sim/IsaacLab 0a9ddd35
            self.reset = lambda: (TensorDict(self.env.reset()[0], batch_size=[self.num_envs]), self.env.extras)

    @property
    def unwrapped(self):
        return self.env.unwrapped

    @property
    def episode_length_buf(self):  # W:118-129
        return self.unwrapped.episode_length_buf

    def get_observations(self):  # W:143-149
        return TensorDict(self.unwrapped._observations(), batch_size=[self.num_envs])

    def step(self, actions):  # W:151-164
        obs, rew, terminated, truncated, extras = self.env.step(actions)
        dones = (terminated | truncated).to(dtype=torch.long)
        if not self.unwrapped.cfg.is_finite_horizon:
            extras["time_outs"] = truncated
        return TensorDict(obs, batch_size=[self.num_envs]), rew, dones, extras

    def close(self):
        return self.env.close()


class RslRlVecEnvWrapper20Double(RslRlVecEnvWrapperDouble):
    """``W20``: ``step`` returns the ``policy`` group as a plain tensor and every group in
    ``extras["observations"]`` (W20:171-188); ``reset`` and ``get_observations`` return
    ``(policy, {"observations": groups})`` (W20:136-142, W20:165-169)."""

    def __init__(self, env):
        super().__init__(env, has_reset=False)
        self.reset = lambda: self._split(self.env.reset()[0])  # W20:165-169

    @staticmethod
    def _split(groups):
        return groups["policy"], {"observations": groups}

    def get_observations(self):  # W20:136-142
        return self._split(self.unwrapped._observations())

    def step(self, actions):  # W20:171-188
        groups, rew, terminated, truncated, extras = self.env.step(actions)
        dones = (terminated | truncated).to(dtype=torch.long)
        extras["observations"] = groups
        if not self.unwrapped.cfg.is_finite_horizon:
            extras["time_outs"] = truncated
        return groups["policy"], rew, dones, extras


def make(has_reset=True, **env_kwargs):
    raw = ManagerBasedRLEnvDouble(**env_kwargs)
    return IsaacLabEnv("ant", N, env=RslRlVecEnvWrapperDouble(raw, has_reset)), raw


def zeros():
    return torch.zeros(N, ACTIONS)


@pytest.mark.parametrize("has_reset", [True, False])
def test_keys_dtypes_devices_and_copies_of_reused_buffers(has_reset):
    env, raw = make(has_reset)
    env.reset()
    first = env.step(torch.full((N, ACTIONS), 0.5))
    snapshot = first.clone()
    env.step(torch.full((N, ACTIONS), -2.0))  # rewrites the env's reward and termination buffers in place
    assert (first == snapshot).all()
    assert {"observation", "critic_observation", "final_observation", "reward", "terminated", "truncated"} <= set(first.keys())
    assert first["reward"].dtype == first["observation"].dtype == torch.float32
    assert first["terminated"].dtype == first["truncated"].dtype == torch.bool
    assert all(value.device == env.device for value in first.values())
    assert (env.observation_dim, env.critic_observation_dim, env.action_dim) == (POLICY, CRITIC, ACTIONS)


def test_the_2_0_to_2_2_wrapper_gives_the_transitions_of_the_2_3_wrapper():
    """W20:180-181 returns the policy group as a tensor; the critic group is only in extras["observations"]."""
    terminate_at = {3: [2], LIMIT: [0]}
    current, _ = make(terminate_at=terminate_at)
    legacy_wrapper = RslRlVecEnvWrapper20Double(ManagerBasedRLEnvDouble(terminate_at=terminate_at))
    legacy = IsaacLabEnv("ant", N, env=legacy_wrapper)
    assert (current.reset() == legacy.reset()).all()
    for t in range(LIMIT + 2):
        action = torch.full((N, ACTIONS), 0.1 * (t + 1))
        expected, output = current.step(action), legacy.step(action)
        assert set(output.keys(include_nested=True)) == set(expected.keys(include_nested=True))
        assert (output == expected).all(), t
    assert "critic_observation" in output.keys() and legacy.critic_observation_dim == CRITIC
    policy, _, _, extras = legacy_wrapper.step(zeros())  # the double keeps W20's layout
    assert isinstance(policy, torch.Tensor) and set(extras["observations"]) == {"policy", "critic"}


def test_a_plain_tensor_step_without_observation_groups_fails_naming_the_env():
    wrapper = RslRlVecEnvWrapper20Double(ManagerBasedRLEnvDouble())
    step = wrapper.step
    wrapper.step = lambda actions: (*step(actions)[:3], {})  # no extras["observations"]
    env = IsaacLabEnv("ant", N, env=wrapper)
    env.reset()
    with pytest.raises(TypeError, match=r"IsaacLabEnv\('ant'\): the env's step returned observations as Tensor"):
        env.step(zeros())


def test_time_out_without_final_obs_bootstraps_from_the_last_observation():
    env, raw = make()
    env.reset()
    for _ in range(LIMIT - 1):
        output = env.step(zeros())
    assert not output["truncated"].any()
    output = env.step(zeros())
    assert output["truncated"].all() and not output["terminated"].any()
    assert "final_obs" not in raw.extras  # 2.3.2 / 3.0: the pre-reset observation is not exposed
    assert output["final_observation"][:, 0].tolist() == [LIMIT - 1.0] * N  # the observation before the last action
    assert output["observation"][:, 0].tolist() == [0.0] * N  # the new episode's first


def test_a_step_both_terminal_and_timed_out_is_a_termination():
    env, raw = make(terminate_at={LIMIT: [1]})
    env.reset()
    for _ in range(LIMIT):
        output = env.step(zeros())
    assert output["terminated"].tolist() == [False, True, False, False]
    assert output["truncated"].tolist() == [True, False, True, True]
    raw_env = IsaacLabEnv("ant", N, env=ManagerBasedRLEnvDouble(terminate_at={LIMIT: [1]}))  # the raw interface agrees
    raw_env.reset()
    for _ in range(LIMIT):
        raw_output = raw_env.step(zeros())
    assert torch.equal(raw_output["terminated"], output["terminated"])
    assert torch.equal(raw_output["truncated"], output["truncated"])


def test_finite_horizon_tasks_have_no_time_outs():
    env, _ = make(is_finite_horizon=True)
    env.reset()
    for _ in range(LIMIT):
        output = env.step(zeros())
    assert output["terminated"].all() and not output["truncated"].any()


def test_the_log_left_in_extras_is_read_only_on_steps_that_reset():
    env, raw = make(terminate_at={2: [0]})
    env.reset()
    env.step(zeros())
    with_reset = env.step(zeros())
    without_reset = env.step(zeros())
    assert "log" in raw.extras  # still there from the reset step
    assert with_reset["episode_info"]["Episode_Reward/alive"].tolist() == [2.0] * N
    assert "episode_info" not in without_reset.keys()


@pytest.mark.parametrize("has_reset", [True, False])
def test_reset_resets_every_env_without_the_wrappers_reset(has_reset):
    env, raw = make(has_reset)
    env.reset()
    env.step(zeros())
    env.step(zeros())
    start = env.reset()
    assert raw.episode_length_buf.tolist() == [0] * N and start["observation"][:, 0].tolist() == [0.0] * N


def test_random_episode_offsets_write_episode_length_buf_as_init_at_random_ep_len(monkeypatch):
    """R:59-62 sets ``episode_length_buf`` to ``randint_like(.., high=max_episode_length)`` via W:123-129."""
    monkeypatch.setattr(adapter, "_make_isaaclab_env", lambda *a, **k: RslRlVecEnvWrapperDouble(ManagerBasedRLEnvDouble()))
    env = build_env("isaaclab:ant", N, seed=5, device="cpu", random_episode_offsets=True)
    assert isinstance(env, RandomEpisodeOffsets) and env.restores_state is False and env.critic_observation_dim == CRITIC
    env.reset()
    offsets = torch.randint(0, LIMIT, (N,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(env.env._unwrapped.episode_length_buf, offsets)
    first = torch.zeros(N, dtype=torch.long)
    for t in range(1, LIMIT + 1):
        first = torch.where((first == 0) & env.step(zeros())["truncated"], t, first)
    assert torch.equal(first, LIMIT - offsets)


def test_resume_restores_counters_and_needs_a_reset():
    env, _ = make()
    env.reset()
    env.step(zeros())
    resumed, raw = make()
    resumed.load_state_dict(env.state_dict())
    assert resumed.step_count == 1
    with pytest.raises(RuntimeError, match=r"IsaacLabEnv\('ant'\).step called before reset"):
        resumed.step(zeros())


# The paper's eight tasks as each line registers them; paths under source/isaaclab_tasks/isaaclab_tasks/.
REGISTERED_2X = {  # 2.0.2: wadx2019/genpo@5b6711bd; 2.3.2: isaac-sim/IsaacLab@37ddf626 (same ids; lines there in
    # docs/isaaclab_settings.toml, release_id_at)
    "ant": "Isaac-Ant-v0",  # 2.0.2 manager_based/classic/ant/__init__.py:19
    "humanoid": "Isaac-Humanoid-v0",  # 2.0.2 manager_based/classic/humanoid/__init__.py:19
    "franka_lift": "Isaac-Lift-Cube-Franka-v0",  # 2.0.2 manager_based/manipulation/lift/config/franka/__init__.py:19
    "quadcopter": "Isaac-Quadcopter-Direct-v0",  # 2.0.2 direct/quadcopter/__init__.py:19
    "anymal_d_flat": "Isaac-Velocity-Flat-Anymal-D-v0",  # 2.0.2 .../velocity/config/anymal_d/__init__.py:15
    "go2_rough": "Isaac-Velocity-Rough-Unitree-Go2-v0",  # 2.0.2 .../velocity/config/go2/__init__.py:37
    "h1_rough": "Isaac-Velocity-Rough-H1-v0",  # 2.0.2 .../velocity/config/h1/__init__.py:15
    "shadow_hand": "Isaac-Repose-Cube-Shadow-Direct-v0",  # 2.0.2 direct/shadow_hand/__init__.py:21
}
REGISTERED_DEVELOPMENT = {  # isaac-sim/IsaacLab development line, commit:file:line of each gym.register
    "ant": "Isaac-Ant",  # 048d66a2 core/locomotion/ant/__init__.py:41
    "humanoid": "Isaac-Humanoid",  # 2340f000 core/locomotion/humanoid/__init__.py:39
    "franka_lift": "Isaac-Lift-Cube-Franka",  # 1e3c0ddb core/lift/config/franka/__init__.py:19
    "quadcopter": "Isaac-Quadcopter-Direct-v0",  # fe4b5f97 direct/quadcopter/__init__.py:19 (no renamed id found)
    "anymal_d_flat": "Isaac-Velocity-Flat-AnymalD",  # 01b097e9 core/velocity/config/anymal_d/__init__.py:15
    "go2_rough": "Isaac-Velocity-Rough-UnitreeGo2",  # 5ab3a257 core/velocity/config/go2/__init__.py:26
    "h1_rough": "Isaac-Velocity-Rough-H1",  # 048d66a2 core/velocity/config/h1/__init__.py:15
    "shadow_hand": "Isaac-Reorient-Cube-Shadow-Direct",  # 01c9f4d8 core/reorient/config/shadow_hand/__init__.py:33
}
# Neighbours the same files register, which must never be picked instead.
REGISTRY_2X = {*REGISTERED_2X.values(), "Isaac-Ant-Direct-v0", "Isaac-Velocity-Flat-Anymal-D-Play-v0"}
REGISTRY_DEVELOPMENT = {
    *REGISTERED_DEVELOPMENT.values(),
    "Isaac-Ant-Direct",
    "Isaac-Humanoid-Direct",
    "Isaac-Velocity-Flat-AnymalD-Play",
    "Isaac-Velocity-Flat-UnitreeGo2",
    "Isaac-Reorient-Cube-Shadow",
}


@pytest.mark.parametrize("task", sorted(REGISTERED_2X))
def test_each_line_resolves_the_id_its_source_registers(task):
    assert registered_id(task, 2, REGISTRY_2X) == REGISTERED_2X[task]
    assert registered_id(task, 3, REGISTRY_DEVELOPMENT) == REGISTERED_DEVELOPMENT[task]
    assert registered_id(task, 3, REGISTRY_2X) == REGISTERED_2X[task]  # a 3.x registry that keeps the -v0 ids
    # only ids some line registers are tried: -v0 on 2.x; on 3.x the development-line id, then the -v0 id
    assert candidate_ids(task, 2) == (REGISTERED_2X[task],)
    assert candidate_ids(task, 3) == tuple(dict.fromkeys((REGISTERED_DEVELOPMENT[task], REGISTERED_2X[task])))


def test_unregistered_ids_fail_naming_the_task_and_literal_ids_pass_through():
    assert candidate_ids("Isaac-Cartpole-v0", 3) == ("Isaac-Cartpole-v0",)
    with pytest.raises(ValueError, match=r"IsaacLabEnv\('ant'\): none of \['Isaac-Ant-v0'\] is registered in Isaac Lab 2"):
        registered_id("ant", 2, REGISTRY_DEVELOPMENT)
    with pytest.raises(ValueError, match=r"none of \['Isaac-Velocity-Flat-AnymalD', 'Isaac-Velocity-Flat-Anymal-D-v0'\]"):
        registered_id("anymal_d_flat", 3, {"Isaac-Velocity-Flat-Anymal-D"})


def _launcher_parser(visualizer: dict | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--device", default="cuda:0")
    if visualizer is not None:
        parser.add_argument("--visualizer", default=None, **visualizer)
    return parser


def _development_visualizers(value: str) -> list[str] | None:
    names = value.split(",")
    if not set(names) <= {"kit", "newton", "rerun", "viser", "none"}:
        raise argparse.ArgumentTypeError(value)
    return None if names == ["none"] else names


LAUNCHERS = {
    # 2.0.2 (wadx2019/genpo@5b6711bd source/isaaclab/isaaclab/app/app_launcher.py): `--headless` a store_true
    # flag (:232-237), no --visualizer; headless only from the flag, livestream or HEADLESS=1 (:444-462).
    "2.0.2": (2, _launcher_parser(None), lambda args: args.headless),
    # 3.0 release: launch_simulation hands its arguments to AppLauncher (isaac-sim/IsaacLab@08e75f68
    # source/isaaclab_tasks/isaaclab_tasks/utils/sim_launcher.py); AppLauncher at a2f7b5be
    # (source/isaaclab/isaaclab/app/app_launcher.py): --visualizer nargs="+" (add_app_launcher_args);
    # _resolve_headless_settings: the flag, livestream or HEADLESS=1, or visualizers named without kit.
    "3.0 release": (
        3,
        _launcher_parser({"nargs": "+"}),
        lambda args: args.headless or bool(args.visualizer and "kit" not in args.visualizer),
    ),
    # development line: --headless still accepted, "[DEPRECATED] ... force headless mode", --visualizer/--viz a
    # comma list of kit/newton/rerun/viser/none (isaac-sim/IsaacLab@d962bc41
    # source/isaaclab/isaaclab/app/app_launcher_args.py, add_app_launcher_args); AppLauncher's
    # _resolve_headless_settings: headless unless `kit` is among the visualizers.
    "development": (
        3,
        _launcher_parser({"type": _development_visualizers}),
        lambda args: args.headless or "kit" not in (args.visualizer or []),
    ),
}


@pytest.mark.parametrize("line", sorted(LAUNCHERS))
def test_every_line_runs_headless_unless_a_visualizer_is_named(line):
    major, parser, headless = LAUNCHERS[line]
    assert headless(parser.parse_args(launcher_argv(major, "cuda:0", None)))
    assert not headless(parser.parse_args(launcher_argv(major, "cuda:1", "kit")))
    assert parser.parse_args(launcher_argv(major, "cuda:1", "kit")).device == "cuda:1"
    if line != "development":  # without --headless these open Kit's window
        assert not headless(parser.parse_args(["--device", "cuda:0"]))


def test_launcher_arguments_never_come_from_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["genpo", "train", "gin/isaaclab/ant.gin", "--iterations", "5"])
    with adapter.program_name_only_argv():
        assert sys.argv == ["genpo"]
    assert sys.argv[1:] == ["train", "gin/isaaclab/ant.gin", "--iterations", "5"]


def test_isaaclab_configs_train_with_offsets_and_evaluate_without(monkeypatch):
    monkeypatch.setattr(adapter, "_make_isaaclab_env", lambda *a, **k: RslRlVecEnvWrapperDouble(ManagerBasedRLEnvDouble()))
    gin.clear_config()
    try:
        parse_config(["isaaclab/ant.gin"], [f"genpo.build_env.num_envs = {N}"])
        training = build_env(seed=0, device="cpu")
        with gin.config_scope("eval"):
            evaluation = build_env(seed=0, device="cpu")
    finally:
        gin.clear_config()
    assert isinstance(training, RandomEpisodeOffsets) and isinstance(evaluation, IsaacLabEnv)


REFERENCE_ANT = "isaaclab/reference_code/ant.gin"


def test_the_reference_code_ant_config_has_the_loss_terms_the_authors_code_adds(monkeypatch, tmp_path):
    """The GenPO authors' Ant run, wadx2019/genpo@5b6711bd: FlowPPO's loss is surrogate + value_loss_coef *
    value loss + entropy_coef * (mean log-likelihood) + compress_coef * compress_loss (flowppo.py:374), the
    last the unsquared torch.norm(a_l - a_r, dim=1).mean() over fresh samples of every minibatch state
    (flowppo.py:359-362), added whatever the config's use_compress says (rsl_rl_ppo_cfg.py:49; flowppo.py
    stores it at :119 and never reads it). The config: entropy_coef 0.0 (:36), compress_coef 0.01 (:48),
    mix_para 0.95 (:27), learning_rate 5e-4 (:39), empirical_normalization False (:17); 1024 envs (README.md:34).
    """
    gin.clear_config()
    try:
        parse_config([REFERENCE_ANT])
        official = {
            key: query_parameter(key)
            for key in ("genpo.build_env.num_envs", "coupling.genpo.p", "lr_controller.kl_adaptive.learning_rate")
        }
        gin.clear_config()
        parse_config([REFERENCE_ANT], [f"genpo.build_env.num_envs = {N}"])
        monkeypatch.setattr(adapter, "_make_isaaclab_env", lambda *a, **k: RslRlVecEnvWrapperDouble(ManagerBasedRLEnvDouble()))
        trainer = build_trainer(build_env(seed=0, device="cpu"), tmp_path)
    finally:
        gin.clear_config()
    assert official == {
        "genpo.build_env.num_envs": 1024,
        "coupling.genpo.p": 0.95,
        "lr_controller.kl_adaptive.learning_rate": 5e-4,
    }
    assert isinstance(trainer.observation_normalizer, IdentityNormalizer)
    assert isinstance(trainer.critic_observation_normalizer, IdentityNormalizer)
    assert isinstance(trainer.reward_scaler, NoRewardScaling)
    loss, actor = trainer.loss, trainer.actor
    assert isinstance(loss.compression, NormCompression) and loss.compression_coefficient == 0.01

    observation = torch.randn(64, POLICY)
    batch = actor.sample(TensorDict(observation=observation, batch_size=[64])).detach()
    batch.update(
        critic_observation=torch.randn(64, CRITIC),
        advantage=torch.randn(64, 1),
        value_target=torch.randn(64, 1),
        state_value=torch.randn(64, 1),
    )
    out = loss(batch)
    loss_terms = {key for key in out.keys() if key.startswith("loss_")}
    assert loss_terms == {"loss_objective", "loss_critic", "loss_compression"}  # no entropy term at 0.0
    assert torch.equal(out["loss_compression"], 0.01 * out["compression"])
    torch.manual_seed(3)
    compression = loss.compression(actor, batch)
    torch.manual_seed(3)
    fresh = actor.sample(TensorDict(observation=observation, batch_size=[64]))["dummy_action"]
    left, right = fresh.chunk(2, dim=-1)
    assert torch.allclose(compression, torch.norm(left - right, dim=1).mean())  # flowppo.py:362, not squared
    assert not torch.allclose(compression, (left - right).pow(2).sum(-1).mean())


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "genpo_isaaclab.py"


def test_the_launch_script_imports_no_torch_before_kit_and_passes_genpo_its_arguments():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('launch', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
        "from genpo.envs.isaaclab import launcher_argv\n"
        "assert module.kit_launcher_argv('cuda:1', None) == launcher_argv(2, 'cuda:1', None)\n"
        "assert module.kit_launcher_argv('cuda:0', 'kit') == launcher_argv(2, 'cuda:0', 'kit')\n"
        "sys.exit(module.main(['--kit-device', 'cuda:1', 'components']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ppo" in result.stdout  # `genpo components` ran with the arguments the script did not take
