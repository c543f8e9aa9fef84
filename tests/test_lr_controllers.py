"""Learning-rate controllers (KL-adaptive, fixed, linear decay) and the GAE advantage component."""

from __future__ import annotations

import io
import re

import pytest
import torch
from tensordict import TensorDict

from genpo.components.advantages.gae import GAEAdvantage
from genpo.components.optim.lr_controllers import FixedLR, KLAdaptiveLR, LinearDecayLR

TARGET = 0.01


# ------------------------------------------------------------------------------ KL-adaptive rule
@pytest.mark.parametrize(
    "kl, expected",
    [
        (0.03, 1e-3 / 1.5),  # kl > 2 target: lower
        (0.0201, 1e-3 / 1.5),
        (0.02, 1e-3),  # exactly 2 target: unchanged
        (0.01, 1e-3),  # on target: unchanged
        (0.005, 1e-3),  # exactly target / 2: unchanged
        (0.0049, 1.5e-3),  # kl < target / 2: raise
        (-0.01, 1.5e-3),  # a negative k1 estimate counts as small
    ],
)
def test_kl_adaptive_rule(kl, expected):
    controller = KLAdaptiveLR(learning_rate=1e-3, target_kl=TARGET)
    assert controller.step(kl, iteration=0) == pytest.approx(expected, rel=1e-12)
    assert controller.learning_rate == pytest.approx(expected, rel=1e-12)


def test_kl_adaptive_floor_and_cap():
    controller = KLAdaptiveLR(learning_rate=1.2e-5, target_kl=TARGET)
    assert controller.step(1.0, 0) == 1e-5
    assert controller.step(1.0, 0) == 1e-5
    controller = KLAdaptiveLR(learning_rate=8e-3, target_kl=TARGET)
    assert controller.step(0.0, 0) == 1e-2
    assert controller.step(0.0, 0) == 1e-2


def test_kl_adaptive_compounds_over_steps():
    controller = KLAdaptiveLR(learning_rate=1e-3, target_kl=TARGET)
    for _ in range(3):
        controller.step(0.05, 0)
    assert controller.learning_rate == pytest.approx(1e-3 / 1.5**3)
    controller.step(0.001, 0)
    assert controller.learning_rate == pytest.approx(1e-3 / 1.5**2)


def test_fixed_lr_ignores_kl_and_iteration():
    controller = FixedLR(3e-4)
    assert [controller.step(kl, it) for kl, it in ((0.0, 0), (10.0, 5), (-1.0, 10_000))] == [3e-4] * 3


@pytest.mark.parametrize("iteration, expected", [(0, 1e-3), (5, 5.5e-4), (10, 1e-4), (11, 1e-4), (1000, 1e-4)])
def test_linear_decay(iteration, expected):
    controller = LinearDecayLR(learning_rate=1e-3, final_learning_rate=1e-4, decay_iterations=10)
    assert controller.step(0.5, iteration) == pytest.approx(expected, rel=1e-12)


def test_linear_decay_depends_on_iteration_not_on_call_count():
    controller = LinearDecayLR(learning_rate=1e-3, final_learning_rate=0.0, decay_iterations=4)
    assert [controller.step(0.0, 2) for _ in range(3)] == [pytest.approx(5e-4)] * 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: KLAdaptiveLR(learning_rate=1e-3),
        lambda: FixedLR(2e-4),
        lambda: LinearDecayLR(learning_rate=1e-3, final_learning_rate=1e-4, decay_iterations=10),
    ],
    ids=["kl_adaptive", "fixed", "linear_decay"],
)
def test_state_dict_round_trip_keeps_the_learning_rate(make):
    controller = make()
    controller.step(1.0, 7)  # move it away from its initial value (fixed stays put)
    moved = controller.learning_rate
    buffer = io.BytesIO()
    torch.save(controller.state_dict(), buffer)
    buffer.seek(0)
    fresh = make()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.learning_rate == moved


def test_kl_adaptive_restored_state_continues_identically():
    original = KLAdaptiveLR(learning_rate=1e-3)
    for kl in (0.5, 0.5, 0.0):
        original.step(kl, 0)
    restored = KLAdaptiveLR(learning_rate=1e-3)
    restored.load_state_dict(original.state_dict())
    kls = (0.3, 0.0, 0.0, 0.012)
    assert [restored.step(kl, 0) for kl in kls] == [original.step(kl, 0) for kl in kls]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FixedLR(0.0), "FixedLR: learning_rate must be > 0"),
        (lambda: KLAdaptiveLR(learning_rate=-1e-3), "KLAdaptiveLR: learning_rate must be > 0"),
        (lambda: KLAdaptiveLR(target_kl=0.0), "target_kl must be > 0"),
        (lambda: KLAdaptiveLR(factor=1.0), "factor must be > 1"),
        (lambda: KLAdaptiveLR(min_learning_rate=1e-2, max_learning_rate=1e-3), "min_learning_rate <= max_learning_rate"),
        (lambda: KLAdaptiveLR(min_learning_rate=0.0), "0 < min_learning_rate"),
        (lambda: LinearDecayLR(decay_iterations=0), "decay_iterations must be >= 1"),
        (lambda: LinearDecayLR(final_learning_rate=-1e-4), "final_learning_rate must be >= 0"),
    ],
)
def test_bad_parameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------------ GAE
GAMMA, LAMBDA = 0.9, 0.8


def gae_rollout(*, truncated_env0: bool, terminated_env1: bool) -> TensorDict:
    """T = 3 steps of B = 2 envs; at t = 1 env 0 may time out and env 1 may terminate.

    Next values at t = 1 hold V(final observation) = 5 for both envs (the episode's last state).
    """
    values = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.25]])
    next_values = torch.tensor([[0.5, -1.0], [5.0, 5.0], [2.0, 1.5]])
    rewards = torch.tensor([[1.0, 0.5], [-0.5, 2.0], [0.25, -1.0]])
    terminated = torch.zeros(3, 2, dtype=torch.bool)
    truncated = torch.zeros(3, 2, dtype=torch.bool)
    truncated[1, 0] = truncated_env0
    terminated[1, 1] = terminated_env1
    done = terminated | truncated
    return TensorDict(
        {
            "state_value": values.unsqueeze(-1),
            "next": {
                "state_value": next_values.unsqueeze(-1),
                "reward": rewards.unsqueeze(-1),
                "terminated": terminated.unsqueeze(-1),
                "truncated": truncated.unsqueeze(-1),
                "done": done.unsqueeze(-1),
            },
        },
        batch_size=[3, 2],
    )


def hand_gae(rollout: TensorDict) -> torch.Tensor:
    """delta_t = r_t + gamma V'_t (1 - terminated_t) - V_t;  A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}."""
    values = rollout["state_value"].squeeze(-1).double()
    next_values = rollout["next", "state_value"].squeeze(-1).double()
    rewards = rollout["next", "reward"].squeeze(-1).double()
    terminated = rollout["next", "terminated"].squeeze(-1).double()
    done = rollout["next", "done"].squeeze(-1).double()
    advantages = torch.zeros_like(values)
    following = torch.zeros(values.shape[1], dtype=torch.float64)
    for t in reversed(range(values.shape[0])):
        delta = rewards[t] + GAMMA * next_values[t] * (1 - terminated[t]) - values[t]
        following = delta + GAMMA * LAMBDA * (1 - done[t]) * following
        advantages[t] = following
    return advantages


def test_gae_bootstraps_time_outs_but_not_terminations():
    rollout = gae_rollout(truncated_env0=True, terminated_env1=True)
    GAEAdvantage(gamma=GAMMA, lmbda=LAMBDA, normalize=False)(rollout)
    advantage = rollout["advantage"].squeeze(-1)
    expected = hand_gae(rollout)
    torch.testing.assert_close(advantage.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rollout["value_target"].squeeze(-1), advantage + rollout["state_value"].squeeze(-1))
    # The two cases by hand at t = 1 (the trace is cut by done in both):
    #   time-out:    A = r + gamma * V(final) - V = -0.5 + 0.9 * 5 - 0.5 = 3.5
    #   termination: A = r - V = 2.0 - (-1.0) = 3.0
    assert advantage[1].tolist() == pytest.approx([3.5, 3.0], abs=1e-6)
    # t = 0 continues into t = 1 (not done at t = 0): A_0 = delta_0 + gamma lambda A_1
    assert advantage[0, 0].item() == pytest.approx(1.0 + 0.9 * 0.5 - 1.0 + 0.72 * 3.5, abs=1e-6)


def test_gae_cuts_the_trace_at_a_time_out():
    """The same numbers with no episode end: the t = 1 advantage now includes t = 2's."""
    ended = gae_rollout(truncated_env0=True, terminated_env1=False)
    running = gae_rollout(truncated_env0=False, terminated_env1=False)
    for rollout in (ended, running):
        GAEAdvantage(gamma=GAMMA, lmbda=LAMBDA, normalize=False)(rollout)
    a_ended, a_running = ended["advantage"][1, 0].item(), running["advantage"][1, 0].item()
    a_2 = running["advantage"][2, 0].item()
    assert a_ended == pytest.approx(3.5, abs=1e-6)
    assert a_running == pytest.approx(3.5 + GAMMA * LAMBDA * a_2, abs=1e-6)


def test_gae_normalises_over_the_whole_batch():
    torch.manual_seed(0)
    rollout = gae_rollout(truncated_env0=True, terminated_env1=True)
    rollout["state_value"] = rollout["state_value"] * torch.tensor([1.0, 10.0]).view(1, 2, 1)  # envs differ in scale
    raw = rollout.clone()
    GAEAdvantage(gamma=GAMMA, lmbda=LAMBDA, normalize=False)(raw)
    GAEAdvantage(gamma=GAMMA, lmbda=LAMBDA, normalize=True)(rollout)
    expected = (raw["advantage"] - raw["advantage"].mean()) / raw["advantage"].std()
    torch.testing.assert_close(rollout["advantage"], expected, rtol=1e-5, atol=1e-6)
    assert rollout["advantage"].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert rollout["advantage"].std().item() == pytest.approx(1.0, abs=1e-5)
    # per-env statistics are left unequal: this is one normalisation, not one per env or per step
    assert rollout["advantage"][:, 0].mean().item() != pytest.approx(0.0, abs=1e-3)
    # value targets are computed before normalisation
    torch.testing.assert_close(rollout["value_target"], raw["value_target"])


@pytest.mark.parametrize("kwargs", [{"gamma": 1.5}, {"lmbda": -0.1}])
def test_gae_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError, match="GAEAdvantage: .* must be in \\[0, 1\\]"):
        GAEAdvantage(**kwargs)


# ------------------------------------------------------------------------------ KL-driven lr needs a likelihood
KL_ADAPTIVE = "genpo.trainer.lr_controller = @lr_controller.kl_adaptive()"
REFUSAL = (
    r"actor\.fpo has no likelihood \(its log_prob is a surrogate\), so its KL estimate cannot drive "
    r"lr_controller\.kl_adaptive; bind a fixed learning rate instead: genpo\.trainer\.lr_controller = "
    r"@lr_controller\.fixed\(\) and lr_controller\.fixed\.learning_rate = <lr>"
)


def test_only_the_kl_adaptive_controller_uses_the_kl():
    from genpo import registry

    assert {name for name in registry.names("lr_controller") if registry.get("lr_controller", name).uses_kl} == {"kl_adaptive"}
    assert not registry.get("actor", "fpo").has_likelihood
    assert all(registry.get("actor", name).has_likelihood for name in registry.names("actor") if name != "fpo")


def test_kl_adaptive_lr_is_refused_for_an_actor_without_a_likelihood(tmp_path, make_tiny_experiment):
    with pytest.raises(ValueError, match=REFUSAL):
        make_tiny_experiment(tmp_path / "run", config="ablations/scheme_fpo.gin", extra=[KL_ADAPTIVE])
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
    trainer, _ = make_tiny_experiment(tmp_path / "fixed", config="ablations/scheme_fpo.gin")
    assert type(trainer.lr_controller) is FixedLR and trainer.lr_controller.learning_rate == 3e-4


def test_the_cli_refuses_it_in_one_line(tmp_path, capsys):
    from genpo.cli import main

    argv = ["train", "ablations/scheme_fpo.gin", "--out", str(tmp_path / "run"), "--gin", KL_ADAPTIVE]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(rf"genpo train: error: {REFUSAL}", line), line
