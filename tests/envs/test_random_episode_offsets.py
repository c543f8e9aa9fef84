"""Episodes that start at random offsets of the time limit (rsl_rl's init_at_random_ep_len)."""

from __future__ import annotations

import gin
import pytest
import torch

from genpo.builders import build_env
from genpo.builders.config import parse_config
from genpo.envs.random_episode_offsets import RandomEpisodeOffsets

LIMIT = 20
ENVS = [("pendulum", {}), ("halfcheetah", {}), ("gym:Pendulum-v1", {})]


def first_truncations(env, steps: int) -> torch.Tensor:
    """The step (1-based) at which each env first reports a time-out (0 if none within ``steps``)."""
    first = torch.zeros(env.num_envs, dtype=torch.long)
    for t in range(1, steps + 1):
        truncated = env.step(torch.zeros(env.num_envs, env.action_dim))["truncated"].cpu()
        first = torch.where((first == 0) & truncated, t, first)
    return first


def expected_offsets(num_envs: int, seed: int) -> torch.Tensor:
    return torch.randint(0, LIMIT, (num_envs,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "options"), ENVS, ids=[name for name, _ in ENVS])
def test_time_outs_come_after_the_rest_of_a_random_offset(name, options):
    env = build_env(name, 8, seed=5, random_episode_offsets=True, max_episode_steps=LIMIT, **options)
    assert isinstance(env, RandomEpisodeOffsets)
    env.reset()
    first = first_truncations(env, LIMIT)
    assert torch.equal(first, LIMIT - expected_offsets(8, 5))
    assert len(set(first.tolist())) > 1, "time-outs are staggered"


def test_episodes_after_the_first_take_the_whole_time_limit():
    env = build_env("pendulum", 4, seed=2, random_episode_offsets=True, max_episode_steps=LIMIT)
    env.reset()
    offsets = expected_offsets(4, 2)
    truncated_at = [[] for _ in range(4)]
    for t in range(1, 3 * LIMIT + 1):
        truncated = env.step(torch.zeros(4, 1))["truncated"]
        for index in truncated.nonzero().flatten().tolist():
            truncated_at[index].append(t)
    for index, times in enumerate(truncated_at):
        assert times[:2] == [LIMIT - offsets[index].item(), 2 * LIMIT - offsets[index].item()]


def test_the_same_seed_gives_every_contender_the_same_offsets_and_off_is_the_default():
    a = build_env("pendulum", 6, seed=7, random_episode_offsets=True, max_episode_steps=LIMIT)
    b = build_env("pendulum", 6, seed=7, random_episode_offsets=True, max_episode_steps=LIMIT)
    a.reset(), b.reset()
    assert torch.equal(first_truncations(a, LIMIT), first_truncations(b, LIMIT))
    plain = build_env("pendulum", 6, seed=7, max_episode_steps=LIMIT)
    plain.reset()
    assert not isinstance(plain, RandomEpisodeOffsets)
    assert first_truncations(plain, LIMIT).tolist() == [LIMIT] * 6


@pytest.mark.parametrize(("name", "options"), ENVS[:2], ids=[name for name, _ in ENVS[:2]])
def test_state_round_trip_continues_exactly(name, options):
    env = build_env(name, 4, seed=3, random_episode_offsets=True, max_episode_steps=LIMIT, **options)
    env.reset()
    first_truncations(env, 5)
    state = env.state_dict()
    expected = first_truncations(env, 2 * LIMIT)
    env.reset()  # the offset generator moves on ...
    restored = build_env(name, 4, seed=99, random_episode_offsets=True, max_episode_steps=LIMIT, **options)
    restored.load_state_dict(state)  # ... and comes back with the state
    assert torch.equal(first_truncations(restored, 2 * LIMIT), expected)


def test_training_with_offsets_resumes_exactly_and_logs_episodes_early(tmp_path, train_straight_and_resumed):
    from genpo.training.run_logger import read_metrics

    offsets = ["genpo.build_env.random_episode_offsets = True", "genpo.build_env.max_episode_steps = 40"]
    uninterrupted, resumed = train_straight_and_resumed(tmp_path, extra=offsets)
    for key, value in uninterrupted.actor.state_dict().items():
        assert torch.equal(resumed.actor.state_dict()[key], value), key
    rows = read_metrics(tmp_path / "a" / "metrics.csv")
    # 40-step episodes, 8 steps per iteration: without offsets none would end before iteration 5
    assert rows[0]["episodes"] > 0


def layer_types(env) -> list[type]:
    """The types of ``env`` and of every env it wraps (wrappers hold theirs as ``.env``)."""
    types = []
    while env is not None:
        types.append(type(env))
        env = vars(env).get("env")
    return types


@pytest.mark.parametrize("task", ["halfcheetah", "hopper", "walker2d", "ant", "humanoid"])
def test_locomotion_tasks_train_with_offsets_and_evaluate_without(task):
    gin.clear_config()
    try:
        parse_config([f"tasks/{task}.gin"], ["genpo.build_env.num_envs = 2"])
        training = build_env(seed=0)
        with gin.config_scope("eval"):
            evaluation = build_env(num_envs=2, seed=0)
    finally:
        gin.clear_config()
    assert RandomEpisodeOffsets in layer_types(training)
    assert RandomEpisodeOffsets not in layer_types(evaluation)
    training.close()
    evaluation.close()
