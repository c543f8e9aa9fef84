"""Wrappers (action clipping, random episode offsets) are their wrapped env wherever they do not change
it, including what BatchedEnv gives class defaults for."""

from __future__ import annotations

import torch

from genpo.builders import build_env
from genpo.envs.clipped_actions import ClippedActions
from genpo.envs.random_episode_offsets import RandomEpisodeOffsets


class StepCounterSpy:
    """Records set_episode_steps calls, then forwards them."""

    def __init__(self, env):
        self.calls = []
        original = env.set_episode_steps

        def record(steps):
            self.calls.append(steps.clone())
            original(steps)

        env.set_episode_steps = record


def test_every_wrapper_order_forwards_state_flags_dims_and_step_counters():
    for outer, inner in ((ClippedActions, RandomEpisodeOffsets), (RandomEpisodeOffsets, ClippedActions)):
        env = build_env("pendulum", 3, seed=1, max_episode_steps=10)
        env.restores_state = False  # as IsaacLab on GPU
        env.critic_observation_dim = 5
        spy = StepCounterSpy(env)
        first = inner(env, 0.5) if inner is ClippedActions else inner(env, 7)
        wrapped = outer(first, 0.5) if outer is ClippedActions else outer(first, 7)
        assert wrapped.restores_state is False and wrapped.critic_observation_dim == 5, outer
        assert (wrapped.num_envs, wrapped.action_dim, wrapped.max_episode_steps) == (3, env.action_dim, 10)
        wrapped.reset()
        assert len(spy.calls) == 1 and spy.calls[0].shape == (3,), (outer, inner)
        wrapped.set_episode_steps(torch.tensor([1, 2, 3]))
        assert torch.equal(spy.calls[-1], torch.tensor([1, 2, 3]))
        wrapped.close()
