import io

import gymnasium
import numpy as np
import pytest
import torch

from genpo import registry
from genpo.envs.pendulum import PendulumEnv

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def random_actions(num_steps: int, num_envs: int, seed: int = 0) -> torch.Tensor:
    """Torques in [-3, 3], so gymnasium's clipping to [-2, 2] is exercised too."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_steps, num_envs, 1, generator=generator) * 6 - 3


def test_registered_under_pendulum():
    assert registry.get("env", "pendulum") is PendulumEnv


def test_matches_gymnasium_pendulum_for_a_whole_episode():
    num_envs = 8
    env = PendulumEnv(num_envs, seed=3)
    env.reset()
    state = env.state_dict()["state"]
    references = []
    for i in range(num_envs):
        reference = gymnasium.make("Pendulum-v1")
        reference.reset(seed=i)
        reference.unwrapped.state = np.array([state["theta"][i].item(), state["theta_dot"][i].item()])
        references.append(reference)

    for step, action in enumerate(random_actions(200, num_envs)):
        output = env.step(action)
        for i, reference in enumerate(references):
            # float64 actions: with float32 ones gymnasium itself rounds 3*u to float32 (numpy promotion),
            # and the chaotic swing amplifies that to ~1e-2 within the episode.
            observation, reward, terminated, truncated, _ = reference.step(action[i].numpy().astype(np.float64))
            np.testing.assert_allclose(output["final_observation"][i].numpy(), observation, atol=1e-5)
            assert output["reward"][i].item() == pytest.approx(reward, abs=1e-5)
            assert output["terminated"][i].item() == terminated
            assert output["truncated"][i].item() == truncated == (step == 199)


@pytest.mark.parametrize("device", DEVICES)
def test_auto_resets_by_truncation_every_200_steps(device):
    env = PendulumEnv(16, seed=0, device=device)
    first = env.reset()
    assert first["observation"].shape == (16, 3) and first["observation"].device.type == device
    actions = random_actions(400, 16).to(device)
    for step, action in enumerate(actions):
        output = env.step(action)
        assert output["observation"].dtype == output["reward"].dtype == torch.float32
        assert not output["terminated"].any()
        episode_end = step % 200 == 199
        assert bool(output["truncated"].all()) is episode_end and bool(output["truncated"].any()) is episode_end
        if episode_end:
            assert not torch.equal(output["final_observation"], output["observation"])
            assert (output["observation"][:, 2].abs() <= 1).all()  # a fresh start: thdot ~ U(-1, 1)
            cos_sin_norm = output["final_observation"][:, :2].norm(dim=-1)
            torch.testing.assert_close(cos_sin_norm, torch.ones_like(cos_sin_norm))
        else:
            assert torch.equal(output["final_observation"], output["observation"])


def test_clips_torque_like_gymnasium():
    env = PendulumEnv(1, seed=0)
    env.reset()
    state = env.state_dict()
    clipped = env.step(torch.full((1, 1), 2.0))
    env.load_state_dict(state)
    raw = env.step(torch.full((1, 1), 50.0))
    assert torch.equal(clipped["observation"], raw["observation"]) and torch.equal(clipped["reward"], raw["reward"])


@pytest.mark.parametrize("device", DEVICES)
def test_state_dict_round_trip_continues_exactly(device):
    actions = random_actions(300, 32).to(device)
    env = PendulumEnv(32, seed=5, device=device)
    env.reset()
    for action in actions[:50]:
        env.step(action)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = [env.step(action) for action in actions[50:]]  # crosses the auto-reset at step 200

    buffer.seek(0)
    resumed = PendulumEnv(32, seed=99, device=device)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for action, reference in zip(actions[50:], expected, strict=True):
        output = resumed.step(action)
        for key in ("observation", "final_observation", "reward", "truncated"):
            assert torch.equal(output[key], reference[key]), key


def test_seed_determines_initial_states():
    first = PendulumEnv(4096, seed=7).reset()["observation"]
    assert torch.equal(first, PendulumEnv(4096, seed=7).reset()["observation"])
    assert not torch.equal(first, PendulumEnv(4096, seed=8).reset()["observation"])
    theta = torch.atan2(first[:, 1], first[:, 0])
    assert theta.min() < -3.0 and theta.max() > 3.0  # th ~ U(-pi, pi)
    assert first[:, 2].abs().max() <= 1.0


@pytest.mark.parametrize(
    ("action", "message"),
    [(torch.zeros(4, 2), r"PendulumEnv\.step: action has shape"), (torch.full((4, 1), float("nan")), "non-finite")],
)
def test_rejects_bad_actions(action, message):
    env = PendulumEnv(4)
    env.reset()
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="before reset"):
        PendulumEnv(2).step(torch.zeros(2, 1))
