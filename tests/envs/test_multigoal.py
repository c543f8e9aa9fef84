"""The multi-goal point mass matches the Soft Q-Learning definition, reports goals, and resumes exactly."""

from __future__ import annotations

import pytest
import torch

from genpo import registry
from genpo.envs.multigoal import GOAL_NAMES, GOALS, MultiGoalEnv


def test_registered_under_multigoal():
    assert registry.get("env", "multigoal") is MultiGoalEnv


def test_reward_is_action_cost_plus_nearest_goal_distance_cost():
    env = MultiGoalEnv(3, seed=0)
    env.reset()
    start = env.state_dict()["state"]["position"]
    action = torch.tensor([[0.5, 0.0], [2.0, -3.0], [0.0, 0.0]])  # the second is clipped to (1, -1)
    output = env.step(action)
    clipped = action.clamp(-1, 1)
    position = start + clipped
    nearest = torch.stack([(position - torch.tensor(goal)).pow(2).sum(-1) for goal in GOALS]).amin(0)
    assert torch.allclose(output["reward"], -(30 * clipped.pow(2).sum(-1) + nearest), atol=1e-5)
    assert torch.allclose(output["observation"], position)
    assert not output["terminated"].any()


@pytest.mark.parametrize("goal", range(4))
def test_heading_for_a_goal_ends_there_with_the_bonus_and_its_indicator(goal):
    env = MultiGoalEnv(64, seed=1)
    env.reset()
    direction = torch.tensor(GOALS[goal]) / 5.0
    ended_at = torch.zeros(64, dtype=torch.int64)
    for step in range(1, 7):
        output = env.step(direction.expand(64, 2))
        first = output["terminated"] & (ended_at == 0)
        ended_at[first] = step
        info = output["episode_info"][first]
        assert (info["goal_reached"] == 1).all() and (info[GOAL_NAMES[goal]] == 1).all()
        assert all((info[name] == 0).all() for i, name in enumerate(GOAL_NAMES) if i != goal)
        assert (output["reward"][first] > 10 - 30 - 1).all()  # bonus 10, action cost 30, distance cost < 1
        assert ((output["final_observation"][first] - torch.tensor(GOALS[goal])).norm(dim=-1) < 1.0).all()
        assert (output["observation"][first].abs() < 0.5).all()  # reset near the origin
    assert set(ended_at.tolist()) <= {4, 5}  # 5 units at speed 1 from N(0, 0.1^2), ending within 1 of the goal


def test_standing_still_is_truncated_after_30_steps():
    env = MultiGoalEnv(8, seed=0)
    env.reset()
    for _ in range(29):
        assert not env.step(torch.zeros(8, 2))["truncated"].any()
    output = env.step(torch.zeros(8, 2))
    assert output["truncated"].all() and not output["terminated"].any()
    assert (output["episode_info", "goal_reached"] == 0).all()


def test_episode_offsets_shorten_the_time_limit():
    env = MultiGoalEnv(2, seed=0)
    env.reset()
    env.set_episode_steps(torch.tensor([29, 0]))
    assert env.step(torch.zeros(2, 2))["truncated"].tolist() == [True, False]


def test_exploring_starts_spread_that_share_of_episodes_over_the_goals_square():
    env = MultiGoalEnv(4000, seed=0, exploring_starts=0.25)
    start = env.reset()["observation"]
    spread = start.abs().amax(dim=-1) > 0.6  # N(0, 0.1^2) starts lie within 0.6 with overwhelming odds
    assert 0.22 < spread.float().mean().item() < 0.26  # 25 % minus the uniform starts that fall near the origin
    assert start.abs().max().item() <= 5.0 and start[spread].abs().amax(dim=-1).mean().item() > 3.0


def test_by_default_every_episode_starts_near_the_origin():
    start = MultiGoalEnv(4000, seed=0).reset()["observation"]
    assert start.abs().max().item() < 0.6 and 0.09 < start.std().item() < 0.11  # N(0, 0.1^2)


def test_exploring_starts_fill_the_square_of_the_given_half_width():
    start = MultiGoalEnv(4000, seed=1, exploring_starts=1.0, exploring_start_half_width=2.0).reset()["observation"]
    assert start.abs().max().item() <= 2.0 and start.abs().mean().item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exploring_starts": -0.1}, "exploring_starts must be in \\[0, 1\\]"),
        ({"exploring_starts": 1.5}, "exploring_starts must be in \\[0, 1\\]"),
        ({"exploring_start_half_width": 0.0}, "exploring_start_half_width must be in \\(0, 7.0\\]"),
        ({"exploring_start_half_width": 9.0}, "exploring_start_half_width must be in \\(0, 7.0\\]"),
    ],
)
def test_exploring_start_settings_out_of_range_are_refused(options, message):
    with pytest.raises(ValueError, match=f"MultiGoalEnv: {message}"):
        MultiGoalEnv(4, seed=0, **options)
