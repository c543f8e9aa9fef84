"""The nearest-neighbour action-entropy estimator: matches known entropies, and its gradient spreads actions."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SMALL_FLOW_NETWORKS
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from torch import nn

from genpo import registry
from genpo.builders import build_actor
from genpo.components.actors.base import LOG_2PI
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.estimators.knn_entropy import NearestNeighbourEntropy, kozachenko_leonenko

TOLERANCE = 0.15  # nats: measured bias about -0.07 (d = 2, 16 samples), plus sampling noise over 256 states
OBSERVATION_DIM = 3
SMALL_NETWORKS = [*SMALL_FLOW_NETWORKS, "actor.gaussian.hidden_sizes = (16, 16)"]


def states(count: int, seed: int = 0) -> TensorDict:
    generator = torch.Generator().manual_seed(seed)
    observation = torch.randn(count, OBSERVATION_DIM, generator=generator, dtype=torch.float64)
    return TensorDict(observation=observation, batch_size=[count])


def gaussian_entropy(covariance: torch.Tensor) -> float:
    return 0.5 * (covariance.shape[-1] * (1.0 + LOG_2PI) + torch.logdet(covariance).item())


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    action_dim=st.integers(1, 3),
    level=st.floats(-3.0, 1.0),
    spread=st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3),
)
def test_matches_the_gaussian_actors_analytic_entropy(action_dim, level, spread):
    """Any scale, axes within a factor e of each other (see the anisotropy test for more)."""
    torch.manual_seed(0)
    actor = GaussianActor(OBSERVATION_DIM, action_dim, hidden_sizes=(8,)).double()
    with torch.no_grad():
        actor.log_std.copy_(level + torch.tensor(spread[:action_dim], dtype=torch.float64))
    batch = states(256)
    estimate = NearestNeighbourEntropy(num_samples=16, num_states=256)(actor, batch).item()
    assert estimate == pytest.approx(actor.entropy(batch).mean().item(), abs=TOLERANCE)


def test_matches_a_linear_genpo_flows_gaussian_marginal():
    """With every velocity weight zeroed the GenPO flow is affine in its noise (mixings and constant shifts),
    so the action is Gaussian with covariance A A^T, A = d action / d noise."""
    torch.manual_seed(0)
    actor = build_actor(OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=SMALL_NETWORKS).double()
    with torch.no_grad():
        for module in actor.flow.velocity_network.modules():
            if isinstance(module, nn.Linear):
                module.weight.zero_()
    observation = states(1)["observation"]

    def action_of(noise):
        return actor.sample(TensorDict(observation=observation, batch_size=[1]), noise[None])["action"][0]

    jacobian = torch.autograd.functional.jacobian(action_of, torch.zeros(actor.noise_dim, dtype=torch.float64))
    expected = gaussian_entropy(jacobian @ jacobian.T)
    batch = TensorDict(observation=observation.expand(256, OBSERVATION_DIM), batch_size=[256])
    estimate = NearestNeighbourEntropy(num_samples=16, num_states=256)(actor, batch).item()
    assert estimate == pytest.approx(expected, abs=TOLERANCE)


def test_anisotropy_biases_it_upwards_by_a_stated_amount():
    """Balls are isotropic: with one axis e^2 = 7.4 times narrower (3-D, 16 samples) it overestimates by
    0.2-0.5 nat (the docstring's statement)."""
    torch.manual_seed(0)
    scales = torch.tensor([1.0, 1.0, math.exp(-2.0)])
    samples = scales * torch.randn(2000, 16, 3)
    bias = kozachenko_leonenko(samples).mean().item() - gaussian_entropy(torch.diag(scales**2))
    assert 0.2 < bias < 0.5


def test_two_separated_modes_count_both():
    """A 50/50 mixture of two far-apart narrow Gaussians has entropy H(one mode) + log 2."""
    torch.manual_seed(0)
    modes = torch.where(torch.rand(512, 32, 1) < 0.5, -10.0, 10.0)
    samples = modes + 0.3 * torch.randn(512, 32, 2)
    expected = gaussian_entropy(0.09 * torch.eye(2)) + math.log(2.0)
    assert kozachenko_leonenko(samples).mean().item() == pytest.approx(expected, abs=TOLERANCE)


def histogram_entropy(samples: torch.Tensor, bins: int = 60) -> float:
    """Plug-in differential entropy of 2-D samples from a histogram over their 0.1-99.9% range."""
    low, high = samples.quantile(0.001, dim=0), samples.quantile(0.999, dim=0)
    inside = ((samples >= low) & (samples <= high)).all(-1)
    cell = ((samples[inside] - low) / (high - low) * bins).long().clamp(max=bins - 1)
    counts = torch.bincount(cell[:, 0] * bins + cell[:, 1], minlength=bins * bins).double()
    p = counts[counts > 0] / counts.sum()
    return (-(p * p.log()).sum() + torch.log((high - low).prod() / bins**2)).item()


@pytest.mark.parametrize("name", registry.names("actor"))
def test_one_gradient_step_raises_the_sampled_actions_entropy(name):
    """Ascend the estimate once (a normalised step on every parameter), then measure the entropy of fresh
    actions at the same state with an independent histogram estimate on 100k samples."""
    torch.manual_seed(0)
    actor = build_actor(OBSERVATION_DIM, 2, config_files=[f"policies/{name}.gin"], bindings=SMALL_NETWORKS).double()
    observation = states(1)["observation"]

    def measured() -> float:
        with torch.no_grad():
            big = TensorDict(observation=observation.expand(100_000, OBSERVATION_DIM), batch_size=[100_000])
            return histogram_entropy(actor.sample(big)["action"])

    before = measured()
    batch = TensorDict(observation=observation.expand(256, OBSERVATION_DIM), batch_size=[256])
    estimate = NearestNeighbourEntropy(num_samples=16, num_states=256)(actor, batch)
    parameters = [p for p in actor.parameters() if p.requires_grad]
    gradients = torch.autograd.grad(estimate, parameters, allow_unused=True)
    used = [(p, g) for p, g in zip(parameters, gradients) if g is not None]
    assert used, f"{name}: the estimate has no gradient"
    norm = torch.sqrt(sum(g.pow(2).sum() for _, g in used))
    with torch.no_grad():
        for p, g in used:
            p.add_(0.1 * g / norm)
    after = measured()
    assert after > before + 0.02, f"{name}: entropy {before:.3f} did not rise to {after:.3f}"


def test_rejects_bad_settings_naming_them():
    with pytest.raises(ValueError, match="NearestNeighbourEntropy: num_samples"):
        NearestNeighbourEntropy(num_samples=1)
    with pytest.raises(ValueError, match="NearestNeighbourEntropy: neighbour"):
        NearestNeighbourEntropy(num_samples=4, neighbour=4)
