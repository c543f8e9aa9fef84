"""The aliased-state task: the analytic optimum of its docstring holds, and no Gaussian reaches it."""

from __future__ import annotations

import math

import pytest
import torch

from genpo import registry
from genpo.envs.aliased import LEFT_CENTRE, RIGHT_CENTRE, AliasedEnv, expected_return


def mean_return(policy, num_envs: int = 4096, seed: int = 0) -> tuple[float, dict[str, float]]:
    """Mean return of one episode per env (all truncate at step 20) and its episode_info at the end."""
    env = AliasedEnv(num_envs, seed=seed)
    observation = env.reset()["observation"]
    total = torch.zeros(num_envs)
    for _ in range(env.max_episode_steps):
        output = env.step(policy(observation))
        total += output["reward"]
    assert output["truncated"].all()
    return total.mean().item(), {key: value.mean().item() for key, value in output["episode_info"].items()}


def mixture(observation: torch.Tensor) -> torch.Tensor:
    """The optimal policy: a point at either disc centre with probability 1/2."""
    right = torch.rand(observation.shape[0], 1) < 0.5
    return torch.where(right, torch.tensor(RIGHT_CENTRE), torch.tensor(LEFT_CENTRE))


def test_registered_under_aliased():
    assert registry.get("env", "aliased") is AliasedEnv


def test_optimal_mixture_earns_the_analytic_value():
    torch.manual_seed(1)  # not the env's seed: the same stream would pick the hidden side
    value, info = mean_return(mixture)
    assert expected_return(0.5, 0.5) == 10.0
    assert value == pytest.approx(10.0, abs=0.1)  # std of a return <= sqrt(20)/2, over 4096 episodes
    assert info["right_share"] == pytest.approx(0.5, abs=0.02) and info["left_share"] == pytest.approx(0.5, abs=0.02)


def test_deterministic_policy_earns_at_most_one_half():
    value, info = mean_return(lambda observation: torch.tensor([RIGHT_CENTRE]).expand(observation.shape[0], 2))
    assert value == pytest.approx(0.5, abs=0.05) and expected_return(1.0, 0.0) == 0.5
    assert info["right_share"] == 1.0 and info["left_share"] == 0.0


def disc_probabilities(mean: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> tuple[float, float]:
    actions = mean + std * noise
    inside = lambda centre: ((actions - torch.tensor(centre)).norm(dim=-1) < 0.5).double().mean().item()  # noqa: E731
    return inside(RIGHT_CENTRE), inside(LEFT_CENTRE)


def test_env_matches_the_recursion_for_a_gaussian():
    torch.manual_seed(0)
    mean, std = torch.tensor([0.3, 0.0]), torch.tensor([0.9, 0.2])
    right, left = disc_probabilities(mean, std, torch.randn(400_000, 2))
    torch.manual_seed(1)
    value, _ = mean_return(lambda observation: mean + std * torch.randn(observation.shape[0], 2), num_envs=8192)
    assert value == pytest.approx(expected_return(right, left), abs=0.1)


def test_best_gaussian_is_far_below_the_optimum():
    """Search means and diagonal stds (the y-std down to ~0: the discs' chords are centred on y = 0)."""
    torch.manual_seed(0)
    noise = torch.randn(50_000, 2)
    best = 0.0
    for mean_x in torch.linspace(-1.2, 1.2, 13):
        for std_x in torch.exp(torch.linspace(math.log(0.05), math.log(3.0), 20)):
            for std_y in (0.01, 0.2):
                right, left = disc_probabilities(torch.stack([mean_x, torch.tensor(0.0)]), torch.tensor([std_x, std_y]), noise)
                assert right + left <= 1.0  # < 1 exactly; a narrow one in a disc rounds to 1
                best = max(best, expected_return(right, left))
    assert 4.6 < best < 5.1  # the docstring's 4.85, against V* = 10


def test_discounted_optimum_is_the_geometric_sum():
    assert expected_return(0.5, 0.5, gamma=0.99) == pytest.approx((1 - 0.99**20) / (2 * 0.01))


def test_episode_offsets_shorten_the_time_limit():
    env = AliasedEnv(2, seed=0)
    env.reset()
    env.set_episode_steps(torch.tensor([19, 0]))
    assert env.step(torch.zeros(2, 2))["truncated"].tolist() == [True, False]
