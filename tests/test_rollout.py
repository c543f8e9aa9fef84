"""The rollout collector: what it stores under ``next`` where episodes end by time-out and by termination.

A counting env makes every stored value predictable: each env's observation is a counter that starts at
100 and rises by 1 per step; env 0 terminates when it reaches 102, env 1 runs until its time limit of 4
steps. Where an episode ends, the env's next observation is already the reset one (100), so a collector
that bootstrapped from it instead of from the episode's final observation would store 100 under
``("next", "observation")`` and V(100) as the next value.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from genpo.components.base import TensorDictComponent
from genpo.components.normalizers.observation import IdentityNormalizer
from genpo.components.normalizers.reward import NoRewardScaling
from genpo.envs._batched import TensorStateEnv
from genpo.training.rollout import RolloutCollector

START = 100.0
TERMINAL = torch.tensor([102.0, float("inf")])  # env 0 terminates on reaching 102, env 1 never does
MAX_EPISODE_STEPS = 4


class CountingEnv(TensorStateEnv):
    observation_dim = 1
    action_dim = 1

    def __init__(self):
        super().__init__(2, seed=0, device="cpu", max_episode_steps=MAX_EPISODE_STEPS)

    def _initial_state(self) -> TensorDict:
        return TensorDict(count=torch.full((2,), START), batch_size=[2])

    def _observe(self, state: TensorDict) -> torch.Tensor:
        return state["count"].unsqueeze(-1).float()

    def _transition(self, state, action):
        count = state["count"] + 1.0
        return TensorDict(count=count, batch_size=[2]), count.float(), count >= TERMINAL, None


class ZeroActor(nn.Module):
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict["action"] = torch.zeros(*tensordict.batch_size, 1)
        tensordict["action_log_prob"] = torch.zeros(tensordict.batch_size)
        return tensordict


class AffineCritic(TensorDictComponent):
    """V(o) = 2 o + 1, so a stored value names the observation it was computed on."""

    in_keys = ["observation"]
    out_keys = ["state_value"]

    def compute(self, observation: torch.Tensor) -> torch.Tensor:
        return 2.0 * observation + 1.0


def collect(steps: int) -> TensorDict:
    env = CountingEnv()
    collector = RolloutCollector(
        env, ZeroActor(), AffineCritic(), IdentityNormalizer(1), None, NoRewardScaling(2), steps_per_env=steps
    )
    rollout, _ = collector.collect(iteration=1)
    return rollout


def test_next_observation_is_the_final_one_where_an_episode_ends():
    rollout = collect(6)
    observation = rollout["observation"][..., 0]
    next_observation = rollout["next", "observation"][..., 0]
    # env 0: 100 -> 101 -> 102 (terminated) | 100 -> 101 -> 102 (terminated); env 1: 100..104 (time-out) | 100 -> 101
    assert observation[:, 0].tolist() == [100, 101, 100, 101, 100, 101]
    assert next_observation[:, 0].tolist() == [101, 102, 101, 102, 101, 102]
    assert observation[:, 1].tolist() == [100, 101, 102, 103, 100, 101]
    assert next_observation[:, 1].tolist() == [101, 102, 103, 104, 101, 102]


def test_time_out_and_termination_flags():
    rollout = collect(6)
    terminated = rollout["next", "terminated"][..., 0]
    truncated = rollout["next", "truncated"][..., 0]
    done = rollout["next", "done"][..., 0]
    assert terminated[:, 0].tolist() == [False, True, False, True, False, True]
    assert not truncated[:, 0].any()
    assert truncated[:, 1].tolist() == [False, False, False, True, False, False]
    assert not terminated[:, 1].any()
    assert torch.equal(done, terminated | truncated)
    assert rollout["next", "reward"][:, 1, 0].tolist() == [101, 102, 103, 104, 101, 102]


def test_next_state_value_is_the_value_of_the_final_observation():
    """A time-out bootstraps with V(final observation) = 2 * 104 + 1, not V(reset observation) = 201."""
    rollout = collect(6)
    next_value = rollout["next", "state_value"][..., 0]
    assert next_value[3, 1].item() == 2 * 104 + 1
    assert torch.equal(next_value, 2 * rollout["next", "observation"][..., 0] + 1)
    assert torch.equal(rollout["state_value"][..., 0], 2 * rollout["observation"][..., 0] + 1)
