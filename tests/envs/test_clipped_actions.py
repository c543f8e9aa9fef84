"""Action clipping in the env seam: the env gets clamped actions, the trainers keep the unclipped sample."""

from __future__ import annotations

import gin
import pytest
import torch
from conftest import GAUSSIAN_CONFIG, TINY_BINDINGS

from genpo.builders import build_env, new_experiment, parse_config
from genpo.envs.clipped_actions import ClippedActions


def record_actions(env) -> list[torch.Tensor]:
    """Make ``env.step`` (the wrapped env's) record the actions it receives."""
    received, step = [], env.step

    def recording_step(action):
        received.append(action.clone())
        return step(action)

    env.step = recording_step
    return received


def test_the_env_receives_clamped_actions_and_behaves_as_with_them():
    clipped = build_env("halfcheetah", 4, seed=3, clip_actions=1.0)
    plain = build_env("halfcheetah", 4, seed=3)
    assert isinstance(clipped, ClippedActions) and clipped.action_dim == plain.action_dim == 6
    clipped.reset(), plain.reset()
    actions = 3.0 * torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    assert (actions.abs() > 1).any()
    for _ in range(5):
        a, b = clipped.step(actions), plain.step(actions.clamp(-1, 1))
        assert torch.equal(a["reward"], b["reward"]) and torch.equal(a["observation"], b["observation"])


def test_state_round_trip_through_the_wrapper_continues_exactly():
    env = build_env("hopper", 3, seed=1, clip_actions=0.5)
    env.reset()
    actions = torch.randn(3, env.action_dim, generator=torch.Generator().manual_seed(1))
    env.step(actions)
    state = env.state_dict()
    expected = env.step(actions)
    restored = build_env("hopper", 3, seed=9, clip_actions=0.5)
    restored.load_state_dict(state)
    assert torch.equal(restored.step(actions)["observation"], expected["observation"])


@pytest.mark.parametrize("bound", [0.0, -1.0, True])
def test_a_bad_bound_is_one_error(bound):
    with pytest.raises(ValueError, match="clip_actions: bound must be > 0"):
        build_env("pendulum", 2, clip_actions=bound)


def test_genpo_trainer_stores_the_unclipped_sample_and_its_likelihood(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=["genpo.build_env.clip_actions = 0.1"])
    received = record_actions(trainer.env.env)
    trainer.actor.eval()
    rollout, _ = trainer.collector.collect(1)
    sent = torch.stack(received)
    assert sent.abs().max() <= 0.1
    assert rollout["action"].abs().max() > 0.1, "the stored action is the policy's unclipped sample"
    assert torch.equal(sent, rollout["action"].clamp(-0.1, 0.1))
    with torch.no_grad():
        recomputed = trainer.actor.log_prob(rollout.reshape(-1))
    torch.testing.assert_close(recomputed, rollout["action_log_prob"].reshape(-1), atol=1e-4, rtol=0)


def test_rsl_rl_runner_actions_reach_the_env_clamped(tmp_path):
    from genpo.baselines import rsl_rl

    gin.clear_config()
    trainer, _ = rsl_rl.new_experiment(tmp_path / "run", [GAUSSIAN_CONFIG], [*TINY_BINDINGS, "genpo.build_env.clip_actions = 0.2"])
    received = record_actions(trainer.env.env.env)  # VecEnv adapter -> ClippedActions -> Pendulum
    trainer.run_iteration()
    sent = torch.stack(received)
    assert sent.abs().max() <= 0.2
    assert torch.isclose(sent.abs().max(), torch.tensor(0.2)), "the Gaussian's samples (std 1) do exceed 0.2"


@pytest.mark.parametrize(
    ("config", "bound"),
    [("tasks/halfcheetah.gin", 1.0), ("tasks/hopper_gaussian.gin", 1.0), ("tasks/ant.gin", 1.0), ("tasks/pendulum.gin", None)],
)
def test_locomotion_tasks_clip_at_one_for_training_and_evaluation(config, bound):
    parse_config([config], ["genpo.build_env.num_envs = 2"])
    for scope in ("", "eval"):
        with gin.config_scope(scope):
            env = build_env()
        assert (env.bound if isinstance(env, ClippedActions) else None) == bound, scope
