"""rsl_rl's PPO on genpo envs and configs (genpo.baselines.rsl_rl): config translation, the VecEnv
adapter's episode bookkeeping, runs through the CLI and the sweep runner."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import GAUSSIAN_CONFIG, GENPO_CONFIG, TINY_BINDINGS
from tensordict import TensorDict

from genpo.builders import new_experiment
from genpo.cli import main
from genpo.envs.base import BatchedEnv
from genpo.sweep import parse_spec, plan, train_command

rsl_rl = pytest.importorskip("genpo.baselines.rsl_rl")
pytest.importorskip("rsl_rl")


def test_runner_config_carries_every_setting_of_the_gaussian_config(tmp_path):
    bindings = [
        *TINY_BINDINGS,
        "actor.gaussian.hidden_sizes = (24, 12)",
        "actor.gaussian.activation = 'tanh'",
        "actor.gaussian.init_std = 0.5",
        "critic.mlp.hidden_sizes = (20,)",
        "critic.mlp.activation = 'relu'",
        "loss.ppo.clip_epsilon = 0.3",
        "loss.ppo.value_clip = None",
        "loss.ppo.entropy_coefficient = 0.004",
        "advantage.gae.gamma = 0.97",
        "lr_controller.kl_adaptive.target_kl = 0.02",
        "genpo.trainer.max_grad_norm = 0.5",
    ]
    trainer, _ = new_experiment(tmp_path, [GAUSSIAN_CONFIG], bindings)
    config = rsl_rl.runner_config(trainer)
    algorithm = config["algorithm"]
    assert config["num_steps_per_env"] == 8
    assert (algorithm["num_learning_epochs"], algorithm["num_mini_batches"]) == (2, 2)
    assert (algorithm["clip_param"], algorithm["use_clipped_value_loss"]) == (0.3, False)
    assert (algorithm["gamma"], algorithm["lam"]) == (0.97, 0.95)
    assert (algorithm["entropy_coef"], algorithm["max_grad_norm"]) == (0.004, 0.5)
    assert (algorithm["schedule"], algorithm["desired_kl"], algorithm["learning_rate"]) == ("adaptive", 0.02, 1e-3)
    assert (config["actor"]["hidden_dims"], config["actor"]["activation"]) == ([24, 12], "tanh")
    assert config["actor"]["distribution_cfg"]["init_std"] == pytest.approx(0.5)
    assert (config["critic"]["hidden_dims"], config["critic"]["activation"]) == ([20], "relu")
    assert config["actor"]["obs_normalization"] and config["critic"]["obs_normalization"]


def test_fixed_lr_and_identity_normaliser_translate(tmp_path):
    bindings = [
        *TINY_BINDINGS,
        "genpo.trainer.lr_controller = @lr_controller.fixed()",
        "lr_controller.fixed.learning_rate = 3e-4",
        "genpo.trainer.observation_normalizer = @normalizer.identity",
    ]
    config = rsl_rl.runner_config(new_experiment(tmp_path, [GAUSSIAN_CONFIG], bindings)[0])
    assert (config["algorithm"]["schedule"], config["algorithm"]["learning_rate"]) == ("fixed", 3e-4)
    assert "desired_kl" not in config["algorithm"]
    assert not config["actor"]["obs_normalization"]


def test_a_genpo_config_is_refused_naming_the_actor(tmp_path):
    trainer, _ = new_experiment(tmp_path, [GENPO_CONFIG], TINY_BINDINGS)
    with pytest.raises(ValueError, match="actor is .*not the Gaussian actor"):
        rsl_rl.runner_config(trainer)


class ScriptedEnv(BatchedEnv):
    """Two envs; env 0 ends an episode every 2 steps (terminated), env 1 every 3 (truncated);
    the reward of step t is t in env 0 and 10 in env 1; ``episode_info["env"]`` is the env's index."""

    num_envs, observation_dim, action_dim, max_episode_steps = 2, 1, 1, 3
    device = torch.device("cpu")

    def __init__(self):
        self.t = 0

    def reset(self) -> TensorDict:
        return TensorDict({"observation": torch.zeros(2, 1)}, batch_size=[2])

    def step(self, action: torch.Tensor) -> TensorDict:
        self.t += 1
        terminated = torch.tensor([self.t % 2 == 0, False])
        truncated = torch.tensor([False, self.t % 3 == 0])
        reward = torch.tensor([float(self.t), 10.0])
        observation = torch.zeros(2, 1)
        info = TensorDict({"env": torch.tensor([0, 1])}, batch_size=[2])
        return TensorDict(
            {
                "observation": observation,
                "final_observation": observation,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "episode_info": info,
            },
            batch_size=[2],
        )

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]


def test_vec_env_records_each_finished_episode_and_flags_time_outs():
    env = rsl_rl.vec_env(ScriptedEnv())
    time_outs = []
    for _ in range(6):
        _, _, dones, extras = env.step(torch.zeros(2, 1))
        time_outs.append(extras["time_outs"].tolist())
    episodes = env.pop_episodes()
    # env 0: (1 + 2), (3 + 4), (5 + 6) at t = 2, 4, 6; env 1: 30 at t = 3 and t = 6
    assert sorted(episodes["return"].tolist()) == [3.0, 7.0, 11.0, 30.0, 30.0]
    assert sorted(episodes["length"].tolist()) == [2, 2, 2, 3, 3]
    assert sorted(episodes["info/env"].tolist()) == [0, 0, 0, 1, 1]
    assert time_outs[2] == [False, True] and time_outs[1] == [False, False]
    assert env.pop_episodes()["return"].numel() == 0


def _train(run_dir, seed=0):
    argv = ["train", GAUSSIAN_CONFIG, "--trainer", "rsl_rl", "--out", str(run_dir), "--seed", str(seed), "--quiet"]
    argv += [arg for binding in TINY_BINDINGS for arg in ("--gin", binding)]
    assert main(argv) == 0
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_cli_run_writes_genpo_metrics_and_a_seed_fixes_it(tmp_path):
    first, again = _train(tmp_path / "a"), _train(tmp_path / "b")
    other = _train(tmp_path / "c", seed=1)
    assert [row["env_steps"] for row in first] == ["128", "256"]
    assert math.isfinite(float(first[-1]["return_mean"]))
    assert (tmp_path / "a" / rsl_rl.RSL_RL_CONFIG_FILE).is_file() and (tmp_path / "a" / "summary.json").is_file()
    assert [row["return_mean"] for row in first] == [row["return_mean"] for row in again]
    assert [row["return_mean"] for row in first] != [row["return_mean"] for row in other]


def test_cli_refuses_resume_for_rsl_rl(tmp_path):
    with pytest.raises(SystemExit, match="--resume is not supported"):
        main(["train", "--trainer", "rsl_rl", "--resume", str(tmp_path)])


def test_sweep_variant_with_the_rsl_rl_trainer(tmp_path):
    text = f"""
out = "{tmp_path}"
iterations = 2
[[variants]]
name = "rsl"
config = "{GAUSSIAN_CONFIG}"
trainer = "rsl_rl"
"""
    command = train_command(plan(parse_spec(text))[0])
    assert command[command.index("--trainer") + 1] == "rsl_rl"
    with pytest.raises(ValueError, match="trainer must be one of"):
        parse_spec(text.replace('"rsl_rl"', '"sb3"'))
