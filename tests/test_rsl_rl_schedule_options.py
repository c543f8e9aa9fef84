"""The options that give genpo's trainer rsl_rl's choices one at a time: one minibatch split per update,
observation statistics folded in after the update and unclipped, a directly learned std, the closed-form
KL (tests/test_kl_estimators.py) and the time-out value of the current state (tests/test_contracts.py).
Each does what its name says, and a run with all of them resumes exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import GAUSSIAN_CONFIG
from tensordict import TensorDict
from test_trainer import assert_rows_identical, assert_state_dicts_equal

from genpo.components.actors.gaussian import GaussianActor
from genpo.components.normalizers.observation import EmpiricalNormalizer
from genpo.training.run_logger import read_metrics
from genpo.training.trainer import PPOSettings

RSL_RL_CHOICES = (
    "genpo.trainer.reshuffle_each_epoch = False",
    "genpo.trainer.observation_statistics = 'after_update'",
    "normalizer.empirical.clip = None",
    "actor.gaussian.std_parameterization = 'direct'",
    "loss.ppo.kl_estimator = @kl_estimator.diagonal_gaussian()",
    "advantage.gae.time_out_value = 'current_state'",
)


def minibatches_of_one_update(trainer) -> list[torch.Tensor]:
    """The stored log-likelihoods of every minibatch of the first update, in the order the loss saw them
    (a fingerprint of which samples each minibatch holds)."""
    seen, forward = [], trainer.loss.forward
    trainer.loss.forward = lambda minibatch: seen.append(minibatch["action_log_prob"].clone()) or forward(minibatch)
    trainer.train(1, quiet=True)
    return seen


@pytest.mark.parametrize("reshuffle", [True, False])
def test_reshuffle_each_epoch_draws_a_new_split_or_walks_the_same_one(tmp_path, make_tiny_experiment, reshuffle):
    """2 epochs x 2 minibatches: without reshuffling the second epoch repeats the first's minibatches in order."""
    trainer, _ = make_tiny_experiment(tmp_path / "run", GAUSSIAN_CONFIG, [f"genpo.trainer.reshuffle_each_epoch = {reshuffle}"])
    first_epoch, second_epoch = (minibatches := minibatches_of_one_update(trainer))[:2], minibatches[2:]
    assert len(minibatches) == 4
    same = all(torch.equal(a, b) for a, b in zip(first_epoch, second_epoch, strict=True))
    assert same != reshuffle
    assert not torch.equal(first_epoch[0], first_epoch[1])


def test_statistics_after_the_update_are_the_rollouts_and_unchanged_during_it(tmp_path, make_tiny_experiment):
    """The first rollout is normalised with the initial statistics (mean 0, variance 1), the update sees the
    same ones, and afterwards they are the moments of that rollout's raw observations."""
    trainer, _ = make_tiny_experiment(
        tmp_path / "run", GAUSSIAN_CONFIG, ["genpo.trainer.observation_statistics = 'after_update'"]
    )
    normalizer = trainer.observation_normalizer
    counts_during_update, batches = [], []
    update = trainer.update

    def recording_update(batch):
        counts_during_update.append(normalizer.moments.count.item())
        batches.append(batch)
        return update(batch)

    trainer.update = recording_update
    trainer.train(1, quiet=True)
    assert counts_during_update == [0.0]
    raw = batches[0]["observation"].double() * (1.0 + normalizer.epsilon)  # normalised with mean 0, std 1
    assert normalizer.moments.count.item() == raw.shape[0]
    torch.testing.assert_close(normalizer.moments.mean, raw.mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(normalizer.moments.variance, raw.var(0, unbiased=False), rtol=1e-5, atol=1e-6)


def test_the_default_folds_each_step_before_the_actor_sees_it(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", GAUSSIAN_CONFIG)
    counts = []
    update = trainer.update
    trainer.update = lambda batch: counts.append(trainer.observation_normalizer.moments.count.item()) or update(batch)
    trainer.train(1, quiet=True)
    assert counts == [16 * 8]


def test_a_run_with_every_rsl_rl_choice_resumes_exactly(tmp_path, train_straight_and_resumed):
    uninterrupted, resumed = train_straight_and_resumed(tmp_path, GAUSSIAN_CONFIG, RSL_RL_CHOICES)
    assert resumed.actor.std is not None and resumed.actor.log_std is None
    assert_rows_identical(read_metrics(tmp_path / "a" / "metrics.csv"), read_metrics(tmp_path / "b" / "metrics.csv"))
    assert_state_dicts_equal(resumed.actor.state_dict(), uninterrupted.actor.state_dict())
    assert_state_dicts_equal(
        resumed.observation_normalizer.state_dict(), uninterrupted.observation_normalizer.state_dict()
    )


def test_an_unknown_observation_statistics_value_is_refused():
    with pytest.raises(ValueError, match="observation_statistics"):
        PPOSettings(observation_statistics="after_rollout")


# ------------------------------------------------------------------------------ the std's parameterisation
@pytest.mark.parametrize("parameterization", ["log", "direct"])
def test_one_adam_step_moves_the_std_by_the_lr_in_the_units_it_is_learned_in(parameterization):
    """Adam's first step moves each parameter by lr: a directly learned std by lr itself, a log std by a
    factor exp(lr). Widening from std 0.2 (descending minus the entropy) tells them apart."""
    actor = GaussianActor(3, 2, hidden_sizes=(8,), init_std=0.2, std_parameterization=parameterization)
    optimizer = torch.optim.Adam(actor.parameters(), lr=0.01)
    observation = TensorDict(observation=torch.zeros(1, 3), batch_size=[1])
    (-actor.entropy(observation).sum()).backward()
    optimizer.step()
    std = actor.log_std_at(observation["observation"]).exp().detach()
    expected = 0.2 + 0.01 if parameterization == "direct" else 0.2 * torch.tensor(0.01).exp().item()
    torch.testing.assert_close(std, torch.full((2,), expected), rtol=1e-5, atol=0)


def test_a_direct_std_gives_the_same_policy_as_a_log_std():
    """The parameterisation changes what the optimiser moves, not the distribution: same samples and
    likelihoods from the same weights."""
    torch.manual_seed(0)
    log_actor = GaussianActor(3, 2, hidden_sizes=(8,), init_std=0.5)
    direct_actor = GaussianActor(3, 2, hidden_sizes=(8,), init_std=0.5, std_parameterization="direct")
    direct_actor.mean.load_state_dict(log_actor.mean.state_dict())
    observation, noise = torch.randn(5, 3), torch.randn(5, 2)
    samples = [actor.sample(TensorDict(observation=observation, batch_size=[5]), noise) for actor in (log_actor, direct_actor)]
    torch.testing.assert_close(samples[0]["action"], samples[1]["action"])
    torch.testing.assert_close(direct_actor.log_prob(samples[0]), samples[0]["action_log_prob"])


def test_std_parameterization_refuses_unknown_values_and_a_state_dependent_direct_std():
    with pytest.raises(ValueError, match="std_parameterization must be 'log' or 'direct', got 'softplus'"):
        GaussianActor(3, 2, std_parameterization="softplus")
    with pytest.raises(ValueError, match="a state-dependent std is learned as log std"):
        GaussianActor(3, 2, state_dependent_std=True, std_parameterization="direct")


# ------------------------------------------------------------------------------ the normaliser's clip
def test_an_unclipped_normaliser_passes_outliers_through():
    clipped, unclipped = EmpiricalNormalizer(1), EmpiricalNormalizer(1, clip=None)
    outlier = torch.tensor([[50.0]])
    assert clipped.compute(outlier).item() == pytest.approx(10.0)
    assert unclipped.compute(outlier).item() == pytest.approx(50.0 / 1.01)
    with pytest.raises(ValueError, match="EmpiricalNormalizer: clip must be > 0 or None"):
        EmpiricalNormalizer(1, clip=0.0)
