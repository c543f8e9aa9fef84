"""Every pure-torch env continues exactly from its state_dict (through torch.save / load, into an env
built with another seed), across auto-resets."""

from __future__ import annotations

import io

import pytest
import torch

from genpo.builders import build_env

# (env, steps before the snapshot, steps after: enough to cross episode ends)
PURE_TORCH_ENVS = [("pendulum", 50, 250), ("two_goals", 7, 60), ("multigoal", 10, 40), ("aliased", 7, 30)]


@pytest.mark.parametrize(("name", "before", "after"), PURE_TORCH_ENVS, ids=[name for name, *_ in PURE_TORCH_ENVS])
def test_state_dict_round_trip_continues_exactly(name, before, after):
    env = build_env(name, 16, seed=5)
    generator = torch.Generator().manual_seed(0)
    actions = 2 * torch.randn(before + after, 16, env.action_dim, generator=generator)
    env.reset()
    for action in actions[:before]:
        env.step(action)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = [env.step(action) for action in actions[before:]]
    assert any(bool((step["terminated"] | step["truncated"]).any()) for step in expected), "no episode ended"
    buffer.seek(0)
    resumed = build_env(name, 16, seed=99)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for action, reference in zip(actions[before:], expected, strict=True):
        output = resumed.step(action)
        for key in ("observation", "final_observation", "reward", "terminated", "truncated"):
            assert torch.equal(output[key], reference[key]), key
