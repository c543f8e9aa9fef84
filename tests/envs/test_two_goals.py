import pytest
import torch

from genpo import registry
from genpo.envs.two_goals import GOAL_X, LOWER, UPPER, WALL_X, TwoGoalsEnv, scripted_action


def run_episodes(policy, num_envs: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    """Roll out the first episode of every env; return its return, length, end position and episode_info."""
    env = TwoGoalsEnv(num_envs, seed=seed)
    observation = env.reset()["observation"]
    returns = torch.zeros(num_envs)
    lengths = torch.zeros(num_envs, dtype=torch.int64)
    result = {"goal_reached": torch.zeros(num_envs), "mode": torch.zeros(num_envs), "end": torch.zeros(num_envs, 2)}
    running = torch.ones(num_envs, dtype=torch.bool)
    for _ in range(env.max_episode_steps):
        output = env.step(policy(observation))
        observation = output["observation"]
        returns += output["reward"] * running
        lengths += running
        ended = running & (output["terminated"] | output["truncated"])
        for key in ("goal_reached", "mode"):
            result[key][ended] = output["episode_info", key][ended]
        result["end"][ended] = output["final_observation"][ended]
        running &= ~ended
    assert not running.any()
    return result | {"return": returns, "length": lengths}


def test_registered_under_two_goals():
    assert registry.get("env", "two_goals") is TwoGoalsEnv


@pytest.mark.parametrize("mode", [UPPER, LOWER])
def test_scripted_policy_reaches_the_chosen_goal(mode):
    episodes = run_episodes(lambda observation: scripted_action(observation, mode))
    assert (episodes["goal_reached"] == 1).all()
    assert (episodes["mode"] == mode).all()
    assert (episodes["length"] < 20).all()
    assert (episodes["end"][:, 0] > WALL_X).all() and (episodes["end"][:, 1] * mode > 0).all()


def test_both_goals_are_worth_the_same():
    upper = run_episodes(lambda observation: scripted_action(observation, UPPER))["return"]
    lower = run_episodes(lambda observation: scripted_action(observation, LOWER))["return"]
    assert upper.mean().item() == pytest.approx(lower.mean().item(), abs=0.01)
    assert upper.min() > 2.0 and lower.min() > 2.0


def test_averaging_the_two_modes_hits_the_wall():
    straight = run_episodes(lambda observation: torch.tensor([[1.0, 0.0]]).expand(observation.shape[0], 2))
    scripted = run_episodes(lambda observation: scripted_action(observation, UPPER))
    assert (straight["goal_reached"] == 0).all() and (straight["mode"] == 0).all()
    assert (straight["length"] == 50).all()  # truncated, never terminated
    assert (straight["end"][:, 0] < WALL_X).all()
    assert straight["return"].max() < scripted["return"].min() - 1.0


def test_mixed_modes_are_reported_per_env():
    modes = torch.tensor([UPPER, LOWER]).repeat(64)
    episodes = run_episodes(lambda observation: scripted_action(observation, modes), num_envs=128)
    assert torch.equal(episodes["mode"], modes.float())


def place(env: TwoGoalsEnv, positions: list[list[float]]) -> None:
    env.reset()
    state = env.state_dict()
    state["state"]["position"] = torch.tensor(positions)
    env.load_state_dict(state)


def test_wall_blocks_outside_the_gaps_only():
    env = TwoGoalsEnv(4)
    place(env, [[0.95, 0.0], [0.95, 0.5], [0.95, -0.5], [1.05, 0.0]])
    output = env.step(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]))
    torch.testing.assert_close(output["observation"][:, 0], torch.tensor([0.95, 1.05, 1.05, 1.05]))


def test_goal_terminates_with_bonus_and_resets_near_the_origin():
    env = TwoGoalsEnv(2)
    place(env, [[GOAL_X - 0.2, 0.5], [GOAL_X - 0.2, -0.5]])
    output = env.step(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert output["terminated"].tolist() == [True, False]
    assert output["reward"][0] == pytest.approx(0.1 + 1.0, abs=1e-5) and output["reward"][1] == 0
    assert output["observation"][0].abs().max() <= 0.05
    assert torch.equal(output["observation"][1], output["final_observation"][1])


def test_rejects_non_finite_actions():
    env = TwoGoalsEnv(2)
    env.reset()
    with pytest.raises(ValueError, match=r"TwoGoalsEnv\.step: .*non-finite"):
        env.step(torch.tensor([[0.0, float("inf")], [0.0, 0.0]]))
