"""The PPO loss: ratio == 1 on fresh data, hand-checked surrogate and value loss, the compression term."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import GAUSSIAN_CONFIG, GENPO_CONFIG, first_minibatch
from tensordict import TensorDict
from torch import nn

from genpo.components.actors.base import Actor
from genpo.components.losses.compression import NormCompression, SquaredCompression
from genpo.components.losses.ppo import PPOLoss


class StoredLogProbActor(Actor):
    """An actor whose current log-likelihood is whatever the batch stores under ``new_log_prob``."""

    def __init__(self):
        super().__init__(1, 1)
        self.unused = nn.Linear(1, 1)

    @property
    def noise_dim(self) -> int:
        return 1

    def sample(self, tensordict, noise=None):
        raise NotImplementedError

    def inverse(self, tensordict):
        raise NotImplementedError

    def log_prob(self, tensordict):
        return tensordict["new_log_prob"]


class StoredValueCritic(nn.Module):
    """A critic whose current value is the batch's ``value`` entry."""

    in_keys = ["value"]

    def compute(self, value):
        return value


def constructed_batch(ratios, advantages, *, values=None, old_values=None, targets=None):
    n = len(ratios)
    old_log_prob = torch.linspace(-2.0, 1.0, n, dtype=torch.float64)

    def column(numbers, default):
        return (default if numbers is None else torch.tensor(numbers, dtype=torch.float64)).unsqueeze(-1)

    values = column(values, torch.zeros(n, dtype=torch.float64)).squeeze(-1)
    return TensorDict(
        action_log_prob=old_log_prob,
        new_log_prob=old_log_prob + torch.tensor(ratios, dtype=torch.float64).log(),
        advantage=column(advantages, None),
        value=column(None, values),
        state_value=column(old_values, values),
        value_target=column(targets, values),
        batch_size=[n],
    )




# ------------------------------------------------------------------------------ ratio on fresh data
@pytest.mark.parametrize(
    "config, tolerance",
    [(GENPO_CONFIG, 1e-4), (GAUSSIAN_CONFIG, 1e-5)],
    ids=["genpo", "gaussian"],
)
def test_first_minibatch_has_ratio_one_and_nothing_clipped(tmp_path, make_tiny_experiment, config, tolerance):
    trainer, _ = make_tiny_experiment(tmp_path / "run", config)
    minibatch = first_minibatch(trainer)
    losses = trainer.loss(minibatch)
    assert losses["ratio_max_deviation"].item() < tolerance
    assert losses["clip_fraction"].item() == 0.0
    assert abs(losses["kl_k1"].item()) < tolerance
    assert 0.0 <= losses["kl_k3"].item() < tolerance**2


@pytest.mark.parametrize("config", [GENPO_CONFIG, GAUSSIAN_CONFIG], ids=["genpo", "gaussian"])
def test_trainer_update_starts_at_ratio_one_then_moves(tmp_path, make_tiny_experiment, config):
    """Inside the real loop: minibatch 0 sees ratio 1; later minibatches see the updated policy."""
    trainer, _ = make_tiny_experiment(tmp_path / "run", config)
    seen = []
    forward = trainer.loss.forward

    def recording_forward(tensordict):
        out = forward(tensordict)
        seen.append(out["ratio_max_deviation"].item())
        return out

    trainer.loss.forward = recording_forward
    trainer.train(1, quiet=True)
    settings = trainer.settings
    assert len(seen) == settings.epochs * settings.minibatches
    assert seen[0] < 1e-4
    assert seen[-1] > 1e-3  # the check above is not vacuous: optimiser steps do change the ratio


# ------------------------------------------------------------------------------ hand computations
def test_clipped_surrogate_matches_hand_computation():
    ratios = [0.5, 0.9, 1.0, 1.1, 1.5, 1.5, 0.5]
    advantages = [1.0, -1.0, 2.0, 1.0, 1.0, -1.0, -1.0]
    loss = PPOLoss(StoredLogProbActor(), StoredValueCritic(), clip_epsilon=0.2)
    out = loss(constructed_batch(ratios, advantages))
    # per sample min(r A, clip(r, 0.8, 1.2) A):
    #   0.5 (unclipped wins), -0.9, 2.0, 1.1, 1.2 (clipped), -1.5 (unclipped), -0.8 (clipped)
    expected = -(0.5 - 0.9 + 2.0 + 1.1 + 1.2 - 1.5 - 0.8) / 7
    assert out["loss_objective"].item() == pytest.approx(expected, abs=1e-12)
    assert out["clip_fraction"].item() == pytest.approx(4 / 7)
    assert out["ratio_max_deviation"].item() == pytest.approx(0.5)
    log_ratios = [math.log(r) for r in ratios]
    assert out["kl_k1"].item() == pytest.approx(-sum(log_ratios) / 7)
    assert out["kl_k3"].item() == pytest.approx(sum(r - 1 - lr for r, lr in zip(ratios, log_ratios, strict=True)) / 7)


def test_wider_clip_changes_the_surrogate():
    ratios, advantages = [1.5, 0.5], [1.0, -1.0]
    narrow = PPOLoss(StoredLogProbActor(), StoredValueCritic(), clip_epsilon=0.2)(constructed_batch(ratios, advantages))
    wide = PPOLoss(StoredLogProbActor(), StoredValueCritic(), clip_epsilon=0.6)(constructed_batch(ratios, advantages))
    assert narrow["loss_objective"].item() == pytest.approx(-(1.2 - 0.8) / 2)
    assert wide["loss_objective"].item() == pytest.approx(-(1.5 - 0.5) / 2)
    assert (narrow["clip_fraction"].item(), wide["clip_fraction"].item()) == (1.0, 0.0)


@pytest.mark.parametrize("value_clip, expected", [(0.2, (0.09 + 0.09 + 1.96 + 4.0) / 4), (None, (1.96 + 4.0) / 4)])
def test_clipped_value_loss_matches_hand_computation(value_clip, expected):
    batch = constructed_batch(
        [1.0] * 4,
        [0.0] * 4,
        values=[1.0, 0.0, 0.6, 2.0],
        old_values=[0.5, 0.5, 0.5, 0.5],
        targets=[1.0, 0.0, 2.0, 0.0],
    )
    # clipped values: 0.7, 0.3, 0.6, 0.7 -> squared errors 0.09, 0.09, 1.96, 0.49; unclipped 0, 0, 1.96, 4
    loss = PPOLoss(StoredLogProbActor(), StoredValueCritic(), value_clip=value_clip, value_coefficient=0.5)
    assert loss(batch)["loss_critic"].item() == pytest.approx(0.5 * expected, abs=1e-12)


# ------------------------------------------------------------------------------ the other schemes' ratios
class StoredTermsActor(StoredLogProbActor):
    """Current log-likelihood terms from the batch's ``new_terms``; ``log_prob`` is their sum (a chain's)."""

    log_prob_term_reduction = "sum"

    def __init__(self, action_dim=1):
        super().__init__()
        self.action_dim = action_dim

    @property
    def noise_dim(self) -> int:
        return 5

    def log_prob_terms(self, tensordict):
        return tensordict["new_terms"]

    def log_prob(self, tensordict):
        return tensordict["new_terms"].sum(-1)


def terms_batch(ratios, advantages):
    """Stored terms and current ones whose per-term ratios are ``ratios`` [n, K]."""
    ratios = torch.tensor(ratios, dtype=torch.float64)
    old_terms = torch.linspace(-1.0, 0.5, ratios.numel(), dtype=torch.float64).reshape(ratios.shape)
    n = ratios.shape[0]
    return TensorDict(
        action_log_prob=old_terms.sum(-1),
        action_log_prob_terms=old_terms,
        new_terms=old_terms + ratios.log(),
        advantage=torch.tensor(advantages, dtype=torch.float64).unsqueeze(-1),
        value=torch.zeros(n, 1, dtype=torch.float64),
        state_value=torch.zeros(n, 1, dtype=torch.float64),
        value_target=torch.zeros(n, 1, dtype=torch.float64),
        batch_size=[n],
    )


def test_per_term_ratio_clips_each_term_and_discounts_the_far_ones():
    """DPPO's denoising-MDP loss by hand: per step min(r A_k, clip(r, 1 +- e_k) A_k), A_k = A gamma^(K-1-k)."""
    ratios = [[1.5, 0.95, 1.05], [0.5, 1.2, 1.0]]
    advantages = [1.0, -2.0]
    loss = PPOLoss(StoredTermsActor(), StoredValueCritic(), clip_epsilon=0.1, ratio="per_term", term_discount=0.5)
    out = loss(terms_batch(ratios, advantages))
    weights = [0.25, 0.5, 1.0]
    expected = 0.0
    for row, advantage in zip(ratios, advantages, strict=True):
        for r, w in zip(row, weights, strict=True):
            a = advantage * w
            expected += min(r * a, min(max(r, 0.9), 1.1) * a)
    assert out["loss_objective"].item() == pytest.approx(-expected / 6, abs=1e-12)
    assert out["clip_fraction"].item() == pytest.approx(3 / 6)  # 1.5, 0.5 and 1.2 lie outside 1 +- 0.1
    joint = sum(math.log(r) for row in ratios for r in row) / 2  # the KL is of the whole log-likelihood
    assert out["kl_k1"].item() == pytest.approx(-joint, abs=1e-12)


def test_dppo_clip_schedule_rises_exponentially_from_the_first_term():
    loss = PPOLoss(StoredTermsActor(), StoredValueCritic(), clip_epsilon=0.1, ratio="per_term",
                   first_term_clip_epsilon=0.01, clip_schedule_rate=3.0)
    schedule = loss.term_clip(5, torch.zeros((), dtype=torch.float64))
    expected = [0.01 + 0.09 * math.expm1(3 * k / 4) / math.expm1(3) for k in range(5)]
    torch.testing.assert_close(schedule, torch.tensor(expected, dtype=torch.float64))
    assert schedule[0].item() == pytest.approx(0.01) and schedule[-1].item() == pytest.approx(0.1)
    assert bool((schedule.diff() > 0).all())
    flat = PPOLoss(StoredTermsActor(), StoredValueCritic(), clip_epsilon=0.1, ratio="per_term", first_term_clip_epsilon=0.1)
    torch.testing.assert_close(flat.term_clip(5, schedule), torch.full((5,), 0.1, dtype=torch.float64))


def test_aspo_clips_positive_advantages_and_pulls_negative_ones_back():
    """FPO++'s ASPO: PPO's clipped term for A >= 0; r A - |A| (r - 1)^2 / (2 e) for A < 0, whose gradient
    past the trust region points back into it (PPO's is zero below 1 - e)."""
    ratios, advantages, epsilon = [[1.5], [0.5], [1.5]], [1.0, -1.0, -1.0], 0.2
    batch = terms_batch(ratios, advantages)
    loss = PPOLoss(StoredTermsActor(), StoredValueCritic(), clip_epsilon=epsilon, ratio="per_term", trust_region="aspo")
    out = loss(batch)
    spo = [r * a - abs(a) * (r - 1) ** 2 / (2 * epsilon) for (r,), a in ((ratios[1], -1.0), (ratios[2], -1.0))]
    expected = -(1.2 + sum(spo)) / 3
    assert out["loss_objective"].item() == pytest.approx(expected, abs=1e-12)
    batch["new_terms"].requires_grad_(True)
    loss(batch)["loss_objective"].backward()
    gradient = batch["new_terms"].grad.squeeze(-1)  # d loss / d log r; descent moves log r against it
    assert gradient[0].item() == 0.0  # A > 0 beyond 1 + e: clipped, no gradient (as PPO)
    # A < 0, r = 0.5 < 1 - e: d(-psi/3)/d log r = -(A - |A| (r - 1) / e) r / 3 = -0.25: descent raises r
    assert gradient[1].item() == pytest.approx(-0.25, abs=1e-12)
    # A < 0, r = 1.5 > 1 + e: -(A - |A| (r - 1) / e) r / 3 = 1.75, pulling r down harder than PPO's -A r / 3 = 0.5
    assert gradient[2].item() == pytest.approx(1.75, abs=1e-12)
    ppo = PPOLoss(StoredTermsActor(), StoredValueCritic(), clip_epsilon=epsilon, ratio="per_term")
    batch["new_terms"].grad = None
    ppo(batch)["loss_objective"].backward()
    assert batch["new_terms"].grad.squeeze(-1)[1].item() == 0.0  # PPO: A < 0, r below 1 - e, clipped


@pytest.mark.parametrize("normalization, divisor", [("action_dim", 3), ("noise_dim", 5)])
def test_log_prob_normalization_divides_the_log_ratio(normalization, divisor):
    """DPPO (per action dim) and ReinFlow (per noise dim) take the ratio of a normalised log-density."""
    batch = terms_batch([[1.5, 1.2]], [1.0])
    loss = PPOLoss(StoredTermsActor(action_dim=3), StoredValueCritic(), clip_epsilon=10.0, log_prob_normalization=normalization)
    expected_ratio = math.exp(math.log(1.5 * 1.2) / divisor)
    assert loss(batch)["loss_objective"].item() == pytest.approx(-expected_ratio, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ratio": "per_term", "actor": StoredLogProbActor()}, "ratio 'per_term' needs an actor whose log-likelihood splits"),
        ({"first_term_clip_epsilon": 0.01}, "first_term_clip_epsilon and term_discount act on per-term ratios"),
        ({"term_discount": 0.99}, "first_term_clip_epsilon and term_discount act on per-term ratios"),
        ({"trust_region": "aspo", "clip_epsilon": 0.0}, "trust_region 'aspo' needs clip_epsilon > 0"),
        ({"ratio": "per_sample"}, "ratio must be one of"),
        ({"log_prob_normalization": "chain"}, "log_prob_normalization must be one of"),
    ],
)
def test_bad_ratio_settings_raise(kwargs, message):
    actor = kwargs.pop("actor", StoredTermsActor())
    with pytest.raises(ValueError, match=f"PPOLoss: {message}"):
        PPOLoss(actor, StoredValueCritic(), **kwargs)


# ------------------------------------------------------------------------------ compression term
def test_compression_loss_is_positive_and_trains_the_velocity_network(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", GENPO_CONFIG)
    minibatch = first_minibatch(trainer)
    losses = trainer.loss(minibatch)
    compression = losses["compression"].item()
    assert compression > 0.0
    assert losses["loss_compression"].item() == pytest.approx(0.01 * compression, rel=1e-5)
    trainer.actor.zero_grad(set_to_none=True)
    trainer.critic.zero_grad(set_to_none=True)
    losses["loss_compression"].backward()
    velocity_grads = [p.grad for p in trainer.actor.flow.velocity_network.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in velocity_grads)
    assert all(p.grad is None for p in trainer.critic.parameters())


def test_compression_gaps_match_their_definitions():
    """Squared (paper) and norm (reference code) gaps on a known difference."""
    difference = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert SquaredCompression().gap(difference).tolist() == [25.0, 1.0]
    assert NormCompression().gap(difference).tolist() == [5.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"compression_coefficient": 0.01}, "compression_coefficient > 0 needs a compression penalty"),
        ({"value_coefficient": -1.0}, "value_coefficient must be >= 0"),
        ({"entropy_coefficient": -0.01}, "entropy_coefficient must be >= 0"),
        ({"compression_coefficient": -0.01, "compression": SquaredCompression()}, "compression_coefficient must be >= 0"),
        ({"clip_epsilon": -0.2}, "clip_epsilon must be >= 0"),
    ],
)
def test_bad_loss_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=f"PPOLoss: {message}"):
        PPOLoss(StoredLogProbActor(), StoredValueCritic(), **kwargs)


def test_compression_on_gaussian_actor_is_a_clear_error(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", GAUSSIAN_CONFIG)
    observation = TensorDict(observation=torch.zeros(4, 3), batch_size=[4])
    with pytest.raises(ValueError, match="SquaredCompression needs an actor with a dummy action; GaussianActor has none"):
        SquaredCompression()(trainer.actor, observation)


def test_gaussian_config_with_compression_fails_before_training(tmp_path, make_tiny_experiment):
    bindings = ["loss.ppo.compression = @compression.squared()", "loss.ppo.compression_coefficient = 0.01"]
    with pytest.raises(ValueError, match="needs an actor with a dummy action; GaussianActor has none"):
        make_tiny_experiment(tmp_path / "run", GAUSSIAN_CONFIG, bindings)
    assert not (tmp_path / "run" / "metrics.csv").exists()


# ------------------------------------------------------------------------------ the KL that drives the lr
@pytest.mark.parametrize(
    "name, config", [("k3", GENPO_CONFIG), ("gaussian_action", GENPO_CONFIG), ("diagonal_gaussian", GAUSSIAN_CONFIG)]
)
def test_the_selected_kl_estimator_drives_the_lr(tmp_path, make_tiny_experiment, name, config):
    """Each minibatch's lr step receives the selected estimator's entry; the first sees the rollout policy
    itself (KL 0), and k1/k3 stay logged next to it."""
    trainer, _ = make_tiny_experiment(tmp_path / "run", config, [f"loss.ppo.kl_estimator = @kl_estimator.{name}()"])
    assert trainer.loss.kl_key == f"kl_{name}"
    losses, steps = [], []
    forward, step = trainer.loss.forward, trainer.lr_controller.step
    trainer.loss.forward = lambda tensordict: losses.append(forward(tensordict)) or losses[-1]
    trainer.lr_controller.step = lambda kl, iteration: steps.append(kl) or step(kl, iteration)
    trainer.train(1, quiet=True)
    assert steps == [out[f"kl_{name}"].item() for out in losses]
    assert abs(steps[0]) < 1e-6 and max(steps) > 1e-5
    assert {"kl_k1", "kl_k3"} <= set(losses[0].keys())


def test_entropy_term_rewards_entropy():
    """``loss_entropy = -c_H * H``: with a Gaussian's analytic entropy (sum of log stds + const), its
    gradient with respect to each log std is exactly -c_H, so descending it widens the policy."""
    from genpo.components.actors.gaussian import GaussianActor
    from genpo.components.estimators.entropy import AnalyticEntropy
    from genpo.components.networks.critic import ValueMLP

    actor, critic = GaussianActor(3, 2, hidden_sizes=(8,)), ValueMLP(3, hidden_sizes=(8,))
    batch = actor(TensorDict(observation=torch.randn(16, 3), batch_size=[16])).detach()
    batch.update(state_value=torch.zeros(16, 1), advantage=torch.zeros(16, 1), value_target=torch.zeros(16, 1))
    loss = PPOLoss(actor, critic, entropy_coefficient=0.1, entropy_estimator=AnalyticEntropy())
    (gradient,) = torch.autograd.grad(loss(batch)["loss_entropy"], actor.log_std)
    torch.testing.assert_close(gradient, torch.full((2,), -0.1))
