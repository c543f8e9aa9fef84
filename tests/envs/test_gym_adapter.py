import io

import pytest
import torch

from genpo.envs.gym_adapter import GymnasiumBatchedEnv


def constant_actions(num_steps: int, num_envs: int, high: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(num_steps, num_envs, 1, generator=generator) * 2 - 1) * high


def test_pendulum_keys_shapes_and_truncation_at_the_time_limit():
    env = GymnasiumBatchedEnv("Pendulum-v1", 3, seed=0)
    assert (env.observation_dim, env.action_dim, env.max_episode_steps) == (3, 1, 200)
    assert env.reset()["observation"].shape == (3, 3)
    for step, action in enumerate(constant_actions(200, 3, high=2.0)):
        output = env.step(action)
        assert set(output.keys()) == {"observation", "final_observation", "reward", "terminated", "truncated"}
        assert output["observation"].dtype == output["reward"].dtype == torch.float32
        assert output["terminated"].dtype == output["truncated"].dtype == torch.bool
        assert output.batch_size == torch.Size([3])
        assert not output["terminated"].any()
        assert bool(output["truncated"].all()) is (step == 199)
        assert torch.equal(output["final_observation"], output["observation"]) is (step != 199)
    env.close()


def test_mujoco_termination_carries_the_final_observation():
    env = GymnasiumBatchedEnv("InvertedPendulum-v5", 4, seed=0)
    env.reset()
    for _ in range(50):
        output = env.step(torch.full((4, 1), 3.0))  # full push: the pole falls within a few steps
        if output["terminated"].any():
            break
    ended = output["terminated"]
    assert ended.any() and not output["truncated"].any()
    assert (output["final_observation"][ended, 1].abs() > 0.2).all()  # the pole angle that ended it
    assert (output["observation"][ended].abs() <= 0.01).all()  # a fresh start (reset noise 0.01)
    running = ~ended
    assert torch.equal(output["final_observation"][running], output["observation"][running])
    env.close()


def rollout(env: GymnasiumBatchedEnv, actions: torch.Tensor) -> list[torch.Tensor]:
    return [torch.cat([output["observation"], output["final_observation"]]) for output in map(env.step, actions)]


def test_seed_makes_runs_reproducible():
    actions = constant_actions(40, 2, high=3.0)
    first, second, other = (GymnasiumBatchedEnv("InvertedPendulum-v5", 2, seed=seed) for seed in (1, 1, 2))
    starts = [env.reset()["observation"] for env in (first, second, other)]
    assert torch.equal(starts[0], starts[1]) and not torch.equal(starts[0], starts[2])
    for ours, theirs in zip(rollout(first, actions), rollout(second, actions), strict=True):
        assert torch.equal(ours, theirs)


def test_mujoco_state_dict_round_trip_continues_exactly():
    actions = constant_actions(60, 3, high=3.0)  # several terminations and resets
    env = GymnasiumBatchedEnv("InvertedPendulum-v5", 3, seed=0)
    env.reset()
    rollout(env, actions[:10])
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = rollout(env, actions[10:])
    assert any(not torch.equal(*observations.chunk(2)) for observations in expected)  # resets happened

    buffer.seek(0)
    resumed = GymnasiumBatchedEnv("InvertedPendulum-v5", 3, seed=123)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for ours, theirs in zip(rollout(resumed, actions[10:]), expected, strict=True):
        assert torch.equal(ours, theirs)


def test_non_mujoco_envs_are_not_snapshotted_and_their_state_names_the_env():
    env = GymnasiumBatchedEnv("Pendulum-v1", 2)
    env.reset()
    assert not env.restores_state and GymnasiumBatchedEnv("InvertedPendulum-v5", 1).restores_state
    state = env.state_dict()
    assert state == {"env_id": "Pendulum-v1", "num_envs": 2, "envs": None}
    GymnasiumBatchedEnv("Pendulum-v1", 2).load_state_dict(state)
    with pytest.raises(ValueError, match="state of 2 'Pendulum-v1' envs, expected 3"):
        GymnasiumBatchedEnv("Pendulum-v1", 3).load_state_dict(state)


def test_rejects_non_box_spaces_and_bad_actions():
    with pytest.raises(TypeError, match=r"'CartPole-v1'.*action space must be a 1-D gymnasium.spaces.Box"):
        GymnasiumBatchedEnv("CartPole-v1", 2)
    env = GymnasiumBatchedEnv("Pendulum-v1", 2)
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match="expected"):
        env.step(torch.zeros(3, 1))
