"""Base-noise schedules: the scale follows the schedule, the likelihood stays exact under the scaled base,
the sampled action's spread shrinks as the schedule says, and a resumed run continues exactly."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import GAUSSIAN_CONFIG, GENPO_CONFIG, SMALL_FLOW_NETWORKS
from tensordict import TensorDict
from test_trainer import assert_rows_identical, assert_state_dicts_equal
from torch import nn

from genpo.builders import build_actor
from genpo.components.exploration.noise_schedules import LinearNoiseScale
from genpo.training.run_logger import read_metrics

OBSERVATION_DIM = 3
SCHEDULE = [
    "genpo.trainer.exploration_schedule = @exploration_schedule.linear_noise_scale()",
    "exploration_schedule.linear_noise_scale.start_iteration = 1",
    "exploration_schedule.linear_noise_scale.end_iteration = 3",
    "exploration_schedule.linear_noise_scale.final_scale = 0.4",
]


def genpo_actor(*, linear: bool = False) -> nn.Module:
    torch.manual_seed(0)
    actor = build_actor(OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=SMALL_FLOW_NETWORKS).double()
    if linear:  # every velocity weight zero: the flow is affine in its noise
        with torch.no_grad():
            for module in actor.flow.velocity_network.modules():
                if isinstance(module, nn.Linear):
                    module.weight.zero_()
    return actor


def states(count: int) -> TensorDict:
    observation = torch.randn(count, OBSERVATION_DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return TensorDict(observation=observation, batch_size=[count])


def test_the_scale_is_constant_then_linear_then_constant():
    schedule = LinearNoiseScale(initial_scale=1.0, final_scale=0.2, start_iteration=10, end_iteration=30)
    scales = [schedule.scale_at(iteration) for iteration in (0, 10, 15, 20, 30, 100)]
    assert scales == pytest.approx([1.0, 1.0, 0.8, 0.6, 0.2, 0.2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"end_iteration": 10, "final_scale": 0.0}, "final_scale must be > 0"),
        ({"end_iteration": 10, "initial_scale": -1.0}, "initial_scale must be > 0"),
        ({"end_iteration": 5, "start_iteration": 5}, "start_iteration < end_iteration"),
    ],
)
def test_bad_schedules_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearNoiseScale(**kwargs)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.1])
def test_the_likelihood_is_the_exact_density_under_the_scaled_base(scale):
    """A flow affine in its noise maps eps ~ N(0, I) to N(c, scale^2 B B^T): log_prob is that density."""
    actor = genpo_actor(linear=True)
    actor.noise_scale = scale
    batch = states(1).expand(64).clone()
    with torch.no_grad():
        sampled = actor.sample(batch.clone())
        zero = actor.sample(batch[:1].clone(), torch.zeros(1, actor.noise_dim, dtype=torch.float64))["dummy_action"][0]

    def dummy_of(noise):
        return actor.sample(batch[:1].clone(), noise[None])["dummy_action"][0]

    jacobian = torch.autograd.functional.jacobian(dummy_of, torch.zeros(actor.noise_dim, dtype=torch.float64))
    density = torch.distributions.MultivariateNormal(zero, covariance_matrix=jacobian @ jacobian.T)
    expected = density.log_prob(sampled["dummy_action"])
    torch.testing.assert_close(actor.log_prob(sampled), expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sampled["action_log_prob"], expected, rtol=1e-9, atol=1e-9)


def test_ratio_is_one_on_fresh_samples_and_inverse_returns_the_standard_noise():
    """A nonlinear flow at scale 0.3: the stored log-likelihood is recomputed exactly, and the noise that
    inverse() recovers reproduces the sample."""
    actor = genpo_actor()
    actor.noise_scale = 0.3
    batch = states(128)
    noise = torch.randn(128, actor.noise_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sampled = actor.sample(batch.clone(), noise)
        torch.testing.assert_close(actor.log_prob(sampled), sampled["action_log_prob"], rtol=0, atol=1e-9)
        torch.testing.assert_close(actor.inverse(sampled), noise, rtol=0, atol=1e-9)


def test_the_action_spread_shrinks_as_the_schedule_says():
    """Affine flow: the action's deviation from the mode is exactly proportional to the scale."""
    actor = genpo_actor(linear=True)
    schedule = LinearNoiseScale(initial_scale=1.0, final_scale=0.25, end_iteration=3)
    batch = states(1).expand(2000).clone()
    noise = torch.randn(2000, actor.noise_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    spreads = []
    for iteration in range(4):
        schedule.apply(actor, iteration)
        with torch.no_grad():
            spreads.append(actor.sample(batch.clone(), noise)["action"].std(0))
    for iteration, spread in enumerate(spreads):
        torch.testing.assert_close(spread, schedule.scale_at(iteration) * spreads[0], rtol=1e-9, atol=0)
    assert [schedule.scale_at(iteration) for iteration in range(4)] == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_a_run_logs_the_schedule_and_resumes_exactly(tmp_path, train_straight_and_resumed):
    """The rollout of iteration k samples at scale_at(k); stopping after 2 iterations and resuming
    gives the uninterrupted run's metrics and networks."""
    uninterrupted, resumed = train_straight_and_resumed(tmp_path, GENPO_CONFIG, SCHEDULE)
    rows_a = read_metrics(tmp_path / "a" / "metrics.csv")
    assert [row["noise_scale"] for row in rows_a] == pytest.approx([1.0, 1.0, 0.7, 0.4])
    assert_rows_identical(rows_a, read_metrics(tmp_path / "b" / "metrics.csv"))
    assert_state_dicts_equal(resumed.actor.state_dict(), uninterrupted.actor.state_dict())
    assert math.isclose(resumed.actor.noise_scale, 0.4)


def test_an_actor_without_a_noise_scale_is_refused_when_the_run_is_built(tmp_path, make_tiny_experiment):
    with pytest.raises(ValueError, match="GaussianActor has no base-noise scale"):
        make_tiny_experiment(tmp_path / "run", GAUSSIAN_CONFIG, SCHEDULE)
