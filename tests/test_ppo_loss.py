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
