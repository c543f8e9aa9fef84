"""Contract tests generated from the registry: every registered class of these kinds gets them by existing.

- ``env``: :func:`genpo.envs.checks.check_batched_env` (built as ``cls(num_envs, seed=seed)``), a wrong
  action shape refused naming the env, and a copy of the env whose time-outs lose their final
  observation caught by the check;
- ``advantage`` (built as ``cls(gamma=..., normalize=...)``): the targets where episodes end and at the
  rollout's end, ``advantage = value_target - state_value``, no trace across an episode's end,
  normalisation;
- ``entropy_estimator`` (built as ``cls()``) on Gaussian policies of known entropy; ``kl_estimator`` on
  known KLs;
- ``readout`` (built as ``cls()``): shapes, equal halves read out as that half, both halves matter;
- ``lr_controller`` (built as ``cls(learning_rate=...)``), ``normalizer`` (``cls(observation_dim)``),
  ``reward_scaler`` (``cls(num_envs)``), with their other defaults: documented behaviour
  and exact resume through ``state_dict``; ``loss``: its output contract at ratio 1.

A kind's own tests file holds what is specific to one class (e.g. GAE's lambda-returns below are the
``gae`` case of the hand-computed rollout).
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.networks.critic import ValueMLP
from genpo.envs.checks import EnvCheckError, check_batched_env
from genpo.envs.wrapper import EnvWrapper


def names(kind: str) -> list[str]:
    return registry.names(kind)


# ------------------------------------------------------------------------------ envs
NUM_ENVS = 4


def make_env(name: str, seed: int = 0):
    return registry.get("env", name)(NUM_ENVS, seed=seed)


@pytest.mark.parametrize("name", names("env"))
def test_env_keeps_the_seam(name):
    report = check_batched_env(make_env(name), same_seed_env=make_env(name), steps=16)
    assert report.time_outs >= NUM_ENVS  # the time-limit probe ended every episode


@pytest.mark.parametrize("name", names("env"))
def test_env_refuses_an_action_of_the_wrong_shape(name):
    env = make_env(name)
    env.reset()
    with pytest.raises(ValueError, match=rf"^{type(env).__name__}\.step: action has shape \({NUM_ENVS}, {env.action_dim + 1}\)"):
        env.step(torch.zeros(NUM_ENVS, env.action_dim + 1))


class ResetAsFinalObservation(EnvWrapper):
    """The classic silent PPO bug: a time-out reports the reset observation as the episode's last."""

    def step(self, action):
        result = self.env.step(action)
        timed_out = result["truncated"].unsqueeze(-1)
        result["final_observation"] = torch.where(timed_out, result["observation"], result["final_observation"])
        return result


@pytest.mark.parametrize("name", names("env"))
def test_env_check_catches_a_time_out_that_loses_its_final_observation(name):
    env = make_env(name)
    if not env.restores_state:
        pytest.skip(f"{name} cannot restore its state: the final-observation probe needs it")
    if bool((env.reset()["observation"] == env.step(torch.full((NUM_ENVS, env.action_dim), 0.5))["observation"]).all()):
        pytest.skip(f"{name}'s observation does not change: a reset observation cannot be told from a final one")
    with pytest.raises(EnvCheckError, match="time-out"):
        check_batched_env(ResetAsFinalObservation(make_env(name)), steps=2)


# ------------------------------------------------------------------------------ advantage estimators
# One env, five steps: a time-out after step 1 (V(final observation) = 4), a termination after step 3,
# and the rollout's end after step 4 (V(next) = 2). gamma = lambda = 0.5, every reward 1.
GAMMA = 0.5
REWARD = [1.0, 1.0, 1.0, 1.0, 1.0]
VALUE = [1.0, 0.0, 0.0, 0.0, 0.0]
NEXT_VALUE = [0.0, 4.0, 0.0, 0.0, 2.0]
TERMINATED = [False, False, False, True, False]
TRUNCATED = [False, True, False, False, False]
# deltas r + gamma V' (1 - terminated) - V: [0, 3, 1, 1, 2]; traces cut at done, gamma lambda = 0.25:
GAE_ADVANTAGE = [0.0 + 0.25 * 3.0, 3.0, 1.0 + 0.25 * 1.0, 1.0, 2.0]


def episode_rollout(reward=REWARD, value=VALUE, next_value=NEXT_VALUE) -> TensorDict:
    def column(values, dtype=torch.float32):
        return torch.tensor(values, dtype=dtype).reshape(-1, 1, 1)

    terminated, truncated = column(TERMINATED, torch.bool), column(TRUNCATED, torch.bool)
    return TensorDict(
        {
            "state_value": column(value),
            "next": {
                "state_value": column(next_value),
                "reward": column(reward),
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
        },
        batch_size=[5, 1],
    )


def make_advantage(name: str, normalize: bool = False):
    return registry.get("advantage", name)(gamma=GAMMA, normalize=normalize)


@pytest.mark.parametrize("name", names("advantage"))
def test_advantage_targets_where_episodes_end(name):
    """A termination's target is its reward; a time-out's and the rollout end's bootstrap with
    gamma V(next), whatever the estimator does inside an episode."""
    target = make_advantage(name)(episode_rollout())["value_target"].flatten()
    assert target[3].item() == pytest.approx(1.0)
    assert target[1].item() == pytest.approx(1.0 + GAMMA * 4.0)
    assert target[4].item() == pytest.approx(1.0 + GAMMA * 2.0)


@pytest.mark.parametrize("name", names("advantage"))
def test_advantage_is_target_minus_value(name):
    rollout = make_advantage(name)(episode_rollout())
    torch.testing.assert_close(rollout["advantage"], rollout["value_target"] - rollout["state_value"])
    assert rollout["advantage"].shape == (5, 1, 1)


@pytest.mark.parametrize("name", names("advantage"))
def test_advantage_trace_stops_at_episode_ends(name):
    """What happens after an episode ended (rewards, values) never reaches that episode's steps."""
    base = make_advantage(name)(episode_rollout())["advantage"].flatten()
    changed = make_advantage(name)(
        episode_rollout(reward=[1.0, 1.0, 7.0, 5.0, -3.0], value=[1.0, 0.0, 9.0, 0.0, 6.0], next_value=[0.0, 4.0, 0.0, 0.0, 8.0])
    )["advantage"].flatten()
    torch.testing.assert_close(changed[:2], base[:2])  # the first episode ends (time-out) at step 1


@pytest.mark.parametrize("name", names("advantage"))
def test_advantage_normalisation(name):
    advantage = make_advantage(name, normalize=True)(episode_rollout())["advantage"]
    assert advantage.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert advantage.std().item() == pytest.approx(1.0, abs=1e-6)


def test_gae_hand_computed_returns():
    rollout = registry.get("advantage", "gae")(gamma=GAMMA, lmbda=0.5, normalize=False)(episode_rollout())
    assert rollout["advantage"].flatten().tolist() == pytest.approx(GAE_ADVANTAGE)
    assert rollout["value_target"].flatten().tolist() == pytest.approx([a + v for a, v in zip(GAE_ADVANTAGE, VALUE)])


def test_gae_time_out_value_of_the_current_state():
    """rsl_rl's shortcut: a time-out bootstraps with V(s_t) of its own step (3 here) instead of the final
    observation's value (4); a termination and the rollout's end are bootstrapped as before."""
    value = [1.0, 3.0, 0.0, 0.0, 0.0]
    final = registry.get("advantage", "gae")(gamma=GAMMA, normalize=False)(episode_rollout(value=value))
    current = registry.get("advantage", "gae")(gamma=GAMMA, normalize=False, time_out_value="current_state")(
        episode_rollout(value=value)
    )
    assert final["value_target"].flatten()[1].item() == pytest.approx(1.0 + GAMMA * 4.0)
    assert current["value_target"].flatten()[1].item() == pytest.approx(1.0 + GAMMA * 3.0)
    torch.testing.assert_close(current["value_target"][2:], final["value_target"][2:])


def test_gae_refuses_an_unknown_time_out_value():
    with pytest.raises(ValueError, match="GAEAdvantage: time_out_value must be 'final_observation' or 'current_state'"):
        registry.get("advantage", "gae")(time_out_value="next_state")


# ------------------------------------------------------------------------------ entropy and KL estimators
def gaussian_policy(std: list[float], samples: int = 4096, seed: int = 0) -> tuple[GaussianActor, TensorDict, float]:
    """A 2-D Gaussian policy whose mean depends on the state and whose std is ``std``, a minibatch of
    samples from it, and its exact entropy."""
    torch.manual_seed(seed)
    actor = GaussianActor(3, len(std), hidden_sizes=(8,))
    with torch.no_grad():
        actor.log_std.copy_(torch.tensor(std).log())
    batch = actor(TensorDict(observation=torch.randn(samples, 3), batch_size=[samples]))
    entropy = sum(math.log(s) for s in std) + 0.5 * len(std) * (1.0 + math.log(2 * math.pi))
    return actor, batch, entropy


def estimate_entropy(name: str, std: list[float]):
    actor, batch, exact = gaussian_policy(std)
    with torch.no_grad():
        estimate = registry.get("entropy_estimator", name)()(actor, batch, actor.log_prob(batch))
    return estimate, exact


@pytest.mark.parametrize("name", names("entropy_estimator"))
@pytest.mark.parametrize("std", [[1.0, 1.0], [0.3, 2.0]], ids=["unit", "anisotropic"])
def test_entropy_estimator_on_a_gaussian_of_known_entropy(name, std):
    """Within sampling error of the exact entropy (None: an estimator that switches the term off)."""
    estimate, exact = estimate_entropy(name, std)
    if estimate is None:
        return
    assert estimate.shape == ()
    assert estimate.item() == pytest.approx(exact, abs=0.15)


@pytest.mark.parametrize("name", names("entropy_estimator"))
def test_entropy_estimator_sees_a_wider_policy(name):
    """Scaling every action dim by 4 adds 2 log 4 to a 2-D entropy."""
    narrow, _ = estimate_entropy(name, [0.5, 0.5])
    wide, _ = estimate_entropy(name, [2.0, 2.0])
    if narrow is None:
        assert wide is None
        return
    assert (wide - narrow).item() == pytest.approx(2 * math.log(4.0), abs=0.15)


def estimate_kl(name: str, shift: float, scale: float) -> tuple[float, float]:
    """The estimator's KL(pi_old || pi_theta) between a 2-D Gaussian policy and a copy whose mean is
    shifted by ``shift`` and whose std is scaled by ``scale`` in every dim, on 20000 samples of pi_old;
    and the exact value, 2 (log scale + (1 + shift^2) / (2 scale^2) - 1/2)."""
    old, batch, _ = gaussian_policy([1.0, 1.0], samples=20_000, seed=1)
    new = copy.deepcopy(old)
    with torch.no_grad():
        new.mean[-1].bias.add_(shift)
        new.log_std.add_(math.log(scale))
        log_prob = new.log_prob(batch)
    estimator = registry.get("kl_estimator", name)()
    estimator.start_update(old)
    estimate = estimator(new, batch, batch["action_log_prob"], log_prob)
    exact = 2 * (math.log(scale) + (1 + shift**2) / (2 * scale**2) - 0.5)
    return estimate.item(), exact


@pytest.mark.parametrize("name", names("kl_estimator"))
def test_kl_estimator_is_zero_between_equal_policies(name):
    assert estimate_kl(name, 0.0, 1.0)[0] == pytest.approx(0.0, abs=1e-6)  # recomputed log-probs: rounding only


@pytest.mark.parametrize("name", names("kl_estimator"))
@pytest.mark.parametrize("shift, scale", [(0.5, 1.0), (0.0, 1.5), (0.3, 0.7)])
def test_kl_estimator_on_gaussians_of_known_kl(name, shift, scale):
    estimate, exact = estimate_kl(name, shift, scale)
    assert estimate == pytest.approx(exact, abs=0.02)


# ------------------------------------------------------------------------------ lr controllers
KLS = [0.1, 0.0001, 0.012, 0.05, 0.0, 0.003]


@pytest.mark.parametrize("name", names("lr_controller"))
def test_lr_controller_reports_the_rate_it_returns(name):
    controller = registry.get("lr_controller", name)(learning_rate=1e-3)
    for iteration, kl in enumerate(KLS):
        rate = controller.step(kl, iteration)
        assert rate > 0 and rate == controller.learning_rate


@pytest.mark.parametrize("name", names("lr_controller"))
def test_lr_controller_reacts_to_the_kl_only_when_it_says_so(name):
    cls = registry.get("lr_controller", name)
    first, second = cls(learning_rate=1e-3), cls(learning_rate=1e-3)
    first_rates = [first.step(kl, iteration) for iteration, kl in enumerate(KLS)]
    second_rates = [second.step(kl / 1000, iteration) for iteration, kl in enumerate(KLS)]
    assert (first_rates != second_rates) == cls.uses_kl


@pytest.mark.parametrize("name", names("lr_controller"))
def test_lr_controller_resumes_exactly(name):
    cls = registry.get("lr_controller", name)
    original = cls(learning_rate=1e-3)
    for iteration, kl in enumerate(KLS[:3]):
        original.step(kl, iteration * 400)
    restored = cls(learning_rate=2e-3)
    restored.load_state_dict(original.state_dict())
    assert [original.step(kl, 1200 + i) for i, kl in enumerate(KLS)] == [restored.step(kl, 1200 + i) for i, kl in enumerate(KLS)]


# ------------------------------------------------------------------------------ normalisers, reward scalers
def observation_batches(count: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return [torch.randn(32, 3, generator=generator) * torch.tensor([1.0, 5.0, 0.1]) + 3.0 for _ in range(count)]


@pytest.mark.parametrize("name", names("normalizer"))
def test_normalizer_forward_is_compute_on_its_keys(name):
    normalizer = registry.get("normalizer", name)(3)
    batch = observation_batches(1)[0]
    normalizer.update(batch)
    out = normalizer(TensorDict({normalizer.in_keys[0]: batch.clone()}, batch_size=[32]))
    torch.testing.assert_close(out[normalizer.out_keys[0]], normalizer.compute(batch))
    assert normalizer.compute(batch).shape == batch.shape


@pytest.mark.parametrize("name", names("normalizer"))
def test_normalizer_keeps_the_order_of_values(name):
    """Normalising is monotone per feature: a larger observation stays larger."""
    normalizer = registry.get("normalizer", name)(3)
    batch = observation_batches(1)[0]
    normalizer.update(batch)
    order = batch.argsort(0)
    normalized = normalizer.compute(batch)
    assert bool((normalized.gather(0, order).diff(dim=0) >= 0).all())


@pytest.mark.parametrize("name", names("normalizer"))
def test_normalizer_resumes_exactly(name):
    cls = registry.get("normalizer", name)
    original, restored = cls(3), cls(3)
    first, *rest = observation_batches()
    original.update(first)
    restored.load_state_dict(original.state_dict())
    for batch in rest:
        original.update(batch)
        restored.update(batch)
        assert torch.equal(original.compute(batch), restored.compute(batch))


@pytest.mark.parametrize("name", names("reward_scaler"))
def test_reward_scaler_keeps_shape_and_sign(name):
    """Scaling never shifts: a reward keeps its sign (and zero stays zero)."""
    scaler = registry.get("reward_scaler", name)(4)
    reward = torch.tensor([-3.0, 0.0, 2.0, 50.0])
    scaled = scaler(reward, torch.tensor([False, True, False, False]))
    assert scaled.shape == reward.shape and scaled.dtype == reward.dtype
    assert torch.equal(scaled.sign(), reward.sign())


@pytest.mark.parametrize("name", names("reward_scaler"))
def test_reward_scaler_resumes_exactly(name):
    cls = registry.get("reward_scaler", name)
    generator = torch.Generator().manual_seed(3)
    steps = [(torch.randn(4, generator=generator) * 10, torch.rand(4, generator=generator) < 0.2) for _ in range(8)]
    original, restored = cls(4), cls(4)
    for reward, done in steps[:4]:
        original(reward, done)
    restored.load_state_dict(original.state_dict())
    for reward, done in steps[4:]:
        assert torch.equal(original(reward, done), restored(reward, done))


# ------------------------------------------------------------------------------ readouts
@pytest.mark.parametrize("name", names("readout"))
def test_readout_maps_the_dummy_action_to_an_action(name):
    """[*B, 2d] -> [*B, d]; equal halves read out as that half; the action depends on both halves."""
    readout = registry.get("readout", name)()
    x, y = torch.randn(2, 5, 3, 4).unbind(0)
    action = readout.compute(torch.cat([x, y], dim=-1))
    assert action.shape == (5, 3, 4)
    torch.testing.assert_close(readout.compute(torch.cat([x, x], dim=-1)), x)
    assert not torch.allclose(readout.compute(torch.cat([x, y + 1.0], dim=-1)), action)
    assert not torch.allclose(readout.compute(torch.cat([x + 1.0, y], dim=-1)), action)


# ------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("name", names("loss"))
def test_loss_at_ratio_one(name):
    """On fresh samples (the policy that drew them) the KL estimates and the clip fraction are 0, every
    ``loss_*`` term is a finite scalar with a gradient, and the diagnostics are detached."""
    actor, batch, _ = gaussian_policy([0.5, 1.0], samples=64)
    critic = ValueMLP(3, hidden_sizes=(8,))
    batch["state_value"] = critic.compute(batch["observation"]).detach()
    batch["advantage"] = torch.randn(64, 1)
    batch["value_target"] = torch.randn(64, 1)
    batch = batch.detach()
    losses = registry.get("loss", name)(actor, critic)(batch)
    terms = [key for key in losses.keys() if key.startswith("loss_")]
    assert terms and all(losses[key].shape == () and losses[key].requires_grad for key in terms)
    assert all(not losses[key].requires_grad for key in losses.keys() if key not in terms)
    assert losses["kl_k1"].item() == pytest.approx(0.0, abs=1e-6) and losses["kl_k3"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["clip_fraction"].item() == 0.0


# ------------------------------------------------------------------------------ a new component is covered
def test_a_new_component_gets_the_contract_tests(tmp_path):
    """A throwaway env, advantage estimator and entropy estimator, registered by a plugin before
    collection, each get at least three tests here, which pass, without any edit to this file."""
    (tmp_path / "throwaway_components.py").write_text(
        textwrap.dedent(
            """
            import torch
            from genpo.components.advantages.gae import GAEAdvantage
            from genpo.components.estimators.entropy import AnalyticEntropy
            from genpo.envs.pendulum import PendulumEnv
            from genpo.registry import register

            register("env", "throwaway_env")(type("ThrowawayEnv", (PendulumEnv,), {}))
            register("advantage", "throwaway_advantage")(type("ThrowawayAdvantage", (GAEAdvantage,), {}))
            register("entropy_estimator", "throwaway_entropy")(type("ThrowawayEntropy", (AnalyticEntropy,), {}))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-k", "throwaway", "-rA", "-n", "0", "-p", "throwaway_components"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).parents[1]}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("throwaway_env", "throwaway_advantage", "throwaway_entropy"):
        passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED") and name in line]
        assert len(passed) >= 3, (name, result.stdout)
