"""rsl_rl's PPO on genpo envs and configs (genpo.baselines.rsl_rl): config translation, the VecEnv
adapter's episode bookkeeping and state, runs through the CLI (new, resumed, evaluated, refused) and
the sweep runner."""

from __future__ import annotations

import csv
import json
import math

import gin
import pytest
import torch
from conftest import GAUSSIAN_CONFIG, GENPO_CONFIG, TINY_BINDINGS
from tensordict import TensorDict

from genpo.builders import new_experiment
from genpo.cli import main
from genpo.envs.base import BatchedEnv
from genpo.experiments.runner import train_command
from genpo.experiments.spec import parse_spec, plan
from genpo.training.checkpoint import load_checkpoint

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


def test_periodic_evaluation_is_refused_by_the_rsl_rl_trainer(tmp_path):
    bindings = [*TINY_BINDINGS, "genpo.trainer.evaluation_interval = 2"]
    with pytest.raises(ValueError, match="evaluation_interval: the rsl_rl trainer has no periodic evaluation"):
        rsl_rl.new_experiment(tmp_path / "run", [GAUSSIAN_CONFIG], bindings)
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_state_dependent_std_is_refused_naming_it(tmp_path):
    bindings = [*TINY_BINDINGS, "actor.gaussian.state_dependent_std = True"]
    trainer, _ = new_experiment(tmp_path, [GAUSSIAN_CONFIG], bindings)
    with pytest.raises(ValueError, match="std is state-dependent"):
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


def test_vec_env_state_continues_the_running_episodes():
    env = rsl_rl.vec_env(ScriptedEnv())
    assert env.state_dict()["env"] is None  # not stepped yet: a resume rebuilds the env from its seed
    for _ in range(3):
        env.step(torch.zeros(2, 1))
    env.pop_episodes()
    state = env.state_dict()
    later = [env.step(torch.zeros(2, 1))[1] for _ in range(3)]
    expected = env.pop_episodes()
    restored = rsl_rl.vec_env(ScriptedEnv())
    restored.load_state_dict(state)
    assert [restored.step(torch.zeros(2, 1))[1].tolist() for _ in range(3)] == [reward.tolist() for reward in later]
    episodes = restored.pop_episodes()
    # env 0's episode from t = 3 to 4 carries the reward of t = 3 saved in the accumulator
    assert sorted(episodes["return"].tolist()) == sorted(expected["return"].tolist()) == [7.0, 11.0, 30.0]
    assert sorted(episodes["length"].tolist()) == sorted(expected["length"].tolist())


def _train(run_dir, seed=0, extra=()):
    gin.clear_config()
    argv = ["train", GAUSSIAN_CONFIG, "--trainer", "rsl_rl", "--out", str(run_dir), "--seed", str(seed), "--quiet", *extra]
    argv += [arg for binding in TINY_BINDINGS for arg in ("--gin", binding)]
    assert main(argv) == 0
    return _metrics(run_dir)


def _metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def _resume(run_dir, iterations):
    gin.clear_config()
    assert main(["train", "--resume", str(run_dir), "--iterations", str(iterations), "--quiet"]) == 0
    return _metrics(run_dir)


def test_cli_run_writes_genpo_metrics_and_a_seed_fixes_it(tmp_path):
    first, again = _train(tmp_path / "a"), _train(tmp_path / "b")
    other = _train(tmp_path / "c", seed=1)
    assert [row["env_steps"] for row in first] == ["128", "256"]
    assert math.isfinite(float(first[-1]["return_mean"]))
    assert (tmp_path / "a" / rsl_rl.RSL_RL_CONFIG_FILE).is_file() and (tmp_path / "a" / "summary.json").is_file()
    assert [row["return_mean"] for row in first] == [row["return_mean"] for row in again]
    assert [row["return_mean"] for row in first] != [row["return_mean"] for row in other]


def test_cli_run_writes_a_genpo_checkpoint_and_a_run_record(tmp_path):
    _train(tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert (record["trainer"], record["target_iterations"]) == ("rsl_rl", 2)
    state = load_checkpoint(tmp_path / "checkpoints" / "latest.pt", rsl_rl.CHECKPOINT_KEYS)  # weights_only=True
    assert (state["iteration"], state["env_steps"]) == (2, 256)
    assert {"actor_state_dict", "critic_state_dict", "optimizer_state_dict"} <= set(state["rsl_rl"])
    assert state["learning_rate"] == state["rsl_rl"]["optimizer_state_dict"]["param_groups"][0]["lr"]
    vec_env = state["vec_env"]
    assert vec_env["env"] is not None and vec_env["observation"].shape == (16, 3)
    assert vec_env["episode_length"].tolist() == [4] * 16  # 16 steps into 12-step episodes
    start = load_checkpoint(tmp_path / "checkpoints" / "iteration_0000000.pt")
    assert start["iteration"] == 0 and start["vec_env"]["env"] is None  # written before the first step
    config = json.loads((tmp_path / rsl_rl.RSL_RL_CONFIG_FILE).read_text())
    assert config["num_steps_per_env"] == 8


def test_a_second_run_in_the_same_folder_is_refused(tmp_path, capsys):
    rsl_rl.new_experiment(tmp_path, [GAUSSIAN_CONFIG], TINY_BINDINGS)
    before = (tmp_path / "checkpoints" / "latest.pt").read_bytes()
    gin.clear_config()
    argv = ["train", GAUSSIAN_CONFIG, "--trainer", "rsl_rl", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "checkpoints" / "latest.pt").read_bytes() == before


TIMING_COLUMNS = ("wall_time", "env_steps_per_s")


def _without_timing(rows):
    return [{key: value for key, value in row.items() if key not in TIMING_COLUMNS} for row in rows]


def _assert_same_state(path, other_path):
    state, other = load_checkpoint(path), load_checkpoint(other_path)
    for key in ("actor_state_dict", "critic_state_dict"):
        for name, value in state["rsl_rl"][key].items():
            assert torch.equal(value, other["rsl_rl"][key][name]), f"{key} {name}"
    moments = state["rsl_rl"]["optimizer_state_dict"]["state"]
    for index, entry in moments.items():
        for name, value in entry.items():
            assert torch.equal(value, other["rsl_rl"]["optimizer_state_dict"]["state"][index][name]), f"adam {index} {name}"
    assert state["learning_rate"] == other["learning_rate"]
    assert torch.equal(state["rng"]["torch"], other["rng"]["torch"])
    for key in ("observation", "episode_length", "episode_return"):
        assert torch.equal(state["vec_env"][key], other["vec_env"][key]), key


def test_cli_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    """2 + 2 iterations (stopped mid-episode: 16 steps into 12-step episodes) == 4 iterations; so does
    a run resumed from its iteration-0 checkpoint (env state not yet saved)."""
    straight = _train(tmp_path / "straight", extra=["--iterations", "4"])
    straight_state = tmp_path / "straight" / "checkpoints" / "latest.pt"
    _train(tmp_path / "resumed")
    resumed = _resume(tmp_path / "resumed", 2)
    assert [row["iteration"] for row in resumed] == ["1", "2", "3", "4"]
    assert _without_timing(resumed) == _without_timing(straight)
    assert float(straight[1]["lr"]) != 1e-3  # the adaptive lr moved before the stop, and was restored
    _assert_same_state(tmp_path / "resumed" / "checkpoints" / "latest.pt", straight_state)

    gin.clear_config()
    rsl_rl.new_experiment(tmp_path / "from_start", [GAUSSIAN_CONFIG], TINY_BINDINGS)  # killed before iteration 1
    assert _without_timing(_resume(tmp_path / "from_start", 4)) == _without_timing(straight)
    _assert_same_state(tmp_path / "from_start" / "checkpoints" / "latest.pt", straight_state)


def _evaluate(capsys, run_dir, *args):
    gin.clear_config()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--episodes", "3", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_evaluates_an_rsl_rl_run(tmp_path, capsys):
    _train(tmp_path)
    zero = _evaluate(capsys, tmp_path)
    assert (zero["checkpoint_iteration"], zero["episodes"], zero["noise"]) == (2, 3, "zero")
    assert zero["checkpoint"] == str(tmp_path / "checkpoints" / "latest.pt")
    assert zero["episode_length_mean"] == 12.0 and math.isfinite(zero["return_mean"])
    assert _evaluate(capsys, tmp_path) == zero  # the mean action: deterministic
    assert _evaluate(capsys, tmp_path, "--noise", "random")["return_mean"] != zero["return_mean"]
    fixed = _evaluate(capsys, tmp_path, "--noise", "fixed")
    assert fixed["return_mean"] != zero["return_mean"] and _evaluate(capsys, tmp_path, "--noise", "fixed") == fixed
    start = _evaluate(capsys, tmp_path, "--checkpoint", "iteration_0000000.pt")
    assert start["checkpoint_iteration"] == 0 and start["return_mean"] != zero["return_mean"]


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
