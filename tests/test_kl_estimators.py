"""The KL estimators that can drive the lr: each estimates the KL its name says, on cases with a known answer."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SMALL_FLOW_NETWORKS
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from torch import nn

from genpo.builders import build_actor
from genpo.builders.config import parse_config
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.estimators.diagonal_gaussian_kl import DiagonalGaussianKL
from genpo.components.estimators.gaussian_action_kl import GaussianActionKL, exact_moment_noise, gaussian_kl
from genpo.components.estimators.kl import K1KL, K3KL

OBSERVATION_DIM = 3
NO_STATE = TensorDict(batch_size=[])


def k1(old, new):
    return K1KL()(None, NO_STATE, old, new)


def k3(old, new):
    return K3KL()(None, NO_STATE, old, new)


def states(count: int, seed: int = 0) -> TensorDict:
    generator = torch.Generator().manual_seed(seed)
    observation = torch.randn(count, OBSERVATION_DIM, generator=generator, dtype=torch.float64)
    return TensorDict(observation=observation, batch_size=[count])


# ------------------------------------------------------------------------ k1, k3: the likelihood's density
def test_k1_k3_on_known_values():
    old = torch.tensor([1.0, 2.0, 3.0])
    assert k1(old, torch.zeros(3)).item() == pytest.approx(2.0)
    assert k3(old, old + math.log(2.0)).item() == pytest.approx(1.0 - math.log(2.0))  # r = 2: (r - 1) - log r
    assert k3(old, old).item() == 0.0


@settings(max_examples=50, deadline=None)
@given(log_probs=st.lists(st.tuples(st.floats(-20.0, 20.0), st.floats(-20.0, 20.0)), min_size=1, max_size=30))
def test_k3_is_never_negative(log_probs):
    old, new = torch.tensor(log_probs, dtype=torch.float64).unbind(-1)
    assert k3(old, new).item() >= 0.0


@pytest.mark.parametrize("estimate", [k1, k3], ids=["k1", "k3"])
def test_k1_k3_match_gaussian_kl(estimate):
    """On samples from pi_old = N(0, 1), both estimate KL(pi_old || pi_new) for pi_new = N(0.3, 1.2)."""
    torch.manual_seed(0)
    old, new = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(0.3, 1.2)
    samples = old.sample((200_000,)).double()
    old_log_prob, new_log_prob = old.log_prob(samples), new.log_prob(samples)
    chunks = torch.stack([estimate(o, n) for o, n in zip(old_log_prob.chunk(100), new_log_prob.chunk(100))])
    standard_error = chunks.std().item() / math.sqrt(len(chunks))  # batch-means standard error
    expected = torch.distributions.kl_divergence(old, new).item()
    assert estimate(old_log_prob, new_log_prob).item() == pytest.approx(expected, abs=4 * standard_error)


# ---------------------------------------------------------------- gaussian_action: the env action's KL
def test_exact_moment_noise_has_mean_zero_and_identity_covariance():
    noise = exact_moment_noise(5, 20, 7, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(noise.mean(1), torch.zeros(5, 7, dtype=torch.float64), atol=1e-12, rtol=0)
    covariance = noise.transpose(1, 2) @ (noise - noise.mean(1, keepdim=True)) / 19
    torch.testing.assert_close(covariance, torch.eye(7, dtype=torch.float64).expand(5, 7, 7), atol=1e-12, rtol=0)


def test_gaussian_kl_of_exact_moment_samples_is_the_closed_form():
    """Affine images of exact-moment noise have the Gaussians' moments, so the KL is exact (full covariances)."""
    generator = torch.Generator().manual_seed(1)
    mean_p, mean_q = torch.randn(4, generator=generator, dtype=torch.float64), torch.randn(4, generator=generator, dtype=torch.float64)
    factor_p = torch.randn(4, 4, generator=generator, dtype=torch.float64) + 3 * torch.eye(4, dtype=torch.float64)
    factor_q = torch.randn(4, 4, generator=generator, dtype=torch.float64) + 3 * torch.eye(4, dtype=torch.float64)
    noise = exact_moment_noise(1, 12, 4, mean_p)[0]
    estimate = gaussian_kl(mean_p + noise @ factor_p.T, mean_q + noise @ factor_q.T).item()
    p = torch.distributions.MultivariateNormal(mean_p, scale_tril=torch.linalg.cholesky(factor_p @ factor_p.T))
    q = torch.distributions.MultivariateNormal(mean_q, scale_tril=torch.linalg.cholesky(factor_q @ factor_q.T))
    assert estimate == pytest.approx(torch.distributions.kl_divergence(p, q).item(), rel=1e-9)


def gaussian_actor_kl(old: GaussianActor, new: GaussianActor, batch: TensorDict) -> float:
    """The mean over states of the closed-form KL between two Gaussian actors' action distributions."""
    with torch.no_grad():
        old_mean, new_mean = old.mean(batch["observation"]), new.mean(batch["observation"])
        p = torch.distributions.Normal(old_mean, old.log_std.exp())
        q = torch.distributions.Normal(new_mean, new.log_std.exp())
    return torch.distributions.kl_divergence(p, q).sum(-1).mean().item()


def test_gaussian_action_kl_of_a_gaussian_actor_is_exact():
    """Mean and spread both moved: the estimate equals the closed form, state by state averaged."""
    torch.manual_seed(0)
    actor = GaussianActor(OBSERVATION_DIM, 3, hidden_sizes=(8,)).double()
    estimator = GaussianActionKL(num_samples=8, num_states=64)
    old = GaussianActor(OBSERVATION_DIM, 3, hidden_sizes=(8,)).double()
    old.load_state_dict(actor.state_dict())
    estimator.start_update(actor)
    with torch.no_grad():
        actor.log_std.add_(torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64))
        for parameter in actor.mean.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    batch = states(64)
    expected = gaussian_actor_kl(old, actor, batch)
    assert expected > 0.01
    assert estimator(actor, batch, None, None).item() == pytest.approx(expected, rel=1e-9)


def perturbed_copy(actor: GaussianActor, seed: int = 0) -> GaussianActor:
    """A copy of ``actor`` with its mean network and its std (or std network) moved."""
    new = GaussianActor(
        OBSERVATION_DIM,
        actor.action_dim,
        hidden_sizes=(8,),
        state_dependent_std=actor.state_dependent_std,
        std_parameterization=actor.std_parameterization,
    ).double()
    new.load_state_dict(actor.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in new.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return new


@pytest.mark.parametrize(
    "state_dependent_std, std_parameterization",
    [(False, "log"), (False, "direct"), (True, "log")],
    ids=["log_std", "direct_std", "state_dependent_std"],
)
def test_diagonal_gaussian_kl_is_the_closed_form_at_every_state(state_dependent_std, std_parameterization):
    """The estimate is torch.distributions' KL between the two policies' Normals, averaged over every state."""
    torch.manual_seed(0)
    old = GaussianActor(
        OBSERVATION_DIM, 3, hidden_sizes=(8,), state_dependent_std=state_dependent_std, std_parameterization=std_parameterization
    ).double()
    new = perturbed_copy(old)
    batch = states(200)
    estimator = DiagonalGaussianKL()
    estimator.start_update(old)
    with torch.no_grad():
        old_mean, old_log_std = old.mean_and_log_std(batch["observation"])
        new_mean, new_log_std = new.mean_and_log_std(batch["observation"])
        expected = torch.distributions.kl_divergence(
            torch.distributions.Normal(old_mean, old_log_std.exp()), torch.distributions.Normal(new_mean, new_log_std.exp())
        )
    assert expected.sum(-1).mean().item() > 0.005
    estimate = estimator(new, batch, None, None)
    assert estimate.item() == pytest.approx(expected.sum(-1).mean().item(), rel=1e-9)


def test_diagonal_gaussian_kl_equals_the_sampled_action_kl_on_every_state():
    """Two routes to the same number: the closed form, and the exact-moment samples of gaussian_action
    taking every state of the minibatch."""
    torch.manual_seed(1)
    old = GaussianActor(OBSERVATION_DIM, 2, hidden_sizes=(8,)).double()
    new = perturbed_copy(old, seed=1)
    batch = states(32)
    closed_form, sampled = DiagonalGaussianKL(), GaussianActionKL(num_states=32)
    closed_form.start_update(old)
    sampled.start_update(old)
    assert closed_form(new, batch, None, None).item() == pytest.approx(sampled(new, batch, None, None).item(), rel=1e-9)


def test_diagonal_gaussian_kl_reads_the_rollout_policy_frozen_at_start_update():
    """Training the actor after start_update does not move the old policy the estimate compares with."""
    torch.manual_seed(2)
    actor = GaussianActor(OBSERVATION_DIM, 2, hidden_sizes=(8,)).double()
    batch = states(16)
    estimator = DiagonalGaussianKL()
    estimator.start_update(actor)
    assert estimator(actor, batch, None, None).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        actor.log_std.add_(0.3)
    assert estimator(actor, batch, None, None).item() > 0.01
    assert not any(name.startswith("rollout_actor") for name, _ in estimator.named_parameters())


def test_diagonal_gaussian_kl_refuses_a_flow_actor_and_a_missing_start():
    actor = build_actor(OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=SMALL_FLOW_NETWORKS)
    with pytest.raises(ValueError, match="kl_estimator.diagonal_gaussian needs a GaussianActor, got GenPOActor") as error:
        DiagonalGaussianKL().start_update(actor)
    assert "@kl_estimator.gaussian_action()" in str(error.value)
    with pytest.raises(RuntimeError, match="start_update"):
        DiagonalGaussianKL()(GaussianActor(OBSERVATION_DIM, 2), states(4), None, None)


def linear_genpo_actor() -> nn.Module:
    """A GenPO flow affine in its noise: every velocity weight zero, so each velocity is its output bias."""
    actor = build_actor(OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=SMALL_FLOW_NETWORKS).double()
    with torch.no_grad():
        for module in actor.flow.velocity_network.modules():
            if isinstance(module, nn.Linear):
                module.weight.zero_()
    return actor


def affine_map(actor: nn.Module, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(offset, Jacobian) of the actor's ``key`` output in its base noise at one state (exact: it is affine)."""
    observation = states(1)["observation"]

    def output(noise):
        return actor.sample(TensorDict(observation=observation, batch_size=[1]), noise[None])[key][0]

    zero = torch.zeros(actor.noise_dim, dtype=torch.float64)
    return output(zero).detach(), torch.autograd.functional.jacobian(output, zero)


def test_gaussian_action_kl_of_a_linear_genpo_flow_is_its_action_marginals_kl():
    """Shifting the velocity's output bias moves both halves: the action marginal N(c, A A^T) shifts, and so
    does the doubled sample N(c2, B B^T). gaussian_action gives the action's KL, k1 on the stored doubled
    samples the doubled one."""
    torch.manual_seed(0)
    actor = linear_genpo_actor()
    old_action, action_jacobian = affine_map(actor, "action")
    old_dummy, dummy_jacobian = affine_map(actor, "dummy_action")
    batch = states(1).expand(4096).clone()
    with torch.no_grad():
        rollout = actor.sample(batch.clone())
    estimator = GaussianActionKL(num_samples=8, num_states=16)
    estimator.start_update(actor)
    output_layer = [module for module in actor.flow.velocity_network.modules() if isinstance(module, nn.Linear)][-1]
    with torch.no_grad():
        output_layer.bias.add_(torch.linspace(-0.3, 0.2, output_layer.bias.numel(), dtype=torch.float64))
    new_action, _ = affine_map(actor, "action")
    new_dummy, _ = affine_map(actor, "dummy_action")

    def closed_form(old_mean, new_mean, jacobian):
        covariance = jacobian @ jacobian.T
        shift = new_mean - old_mean
        return 0.5 * (shift @ torch.linalg.solve(covariance, shift)).item()

    action_kl, doubled_kl = closed_form(old_action, new_action, action_jacobian), closed_form(old_dummy, new_dummy, dummy_jacobian)
    assert estimator(actor, batch, None, None).item() == pytest.approx(action_kl, rel=1e-6)
    with torch.no_grad():
        log_ratios = rollout["action_log_prob"] - actor.log_prob(rollout)
    standard_error = log_ratios.std().item() / math.sqrt(log_ratios.numel())
    assert k1(rollout["action_log_prob"], actor.log_prob(rollout)).item() == pytest.approx(doubled_kl, abs=4 * standard_error)
    assert doubled_kl >= action_kl > 0.01  # the chain rule: the doubled KL adds the hidden half's


def test_gaussian_action_kl_needs_more_samples_than_noise_dims_and_a_start():
    actor = linear_genpo_actor()
    with pytest.raises(RuntimeError, match="start_update"):
        GaussianActionKL()(actor, states(4), None, None)
    with pytest.raises(ValueError, match=r"num_samples \(4\) must exceed the actor's noise width 4"):
        GaussianActionKL(num_samples=4).start_update(actor)


# ------------------------------------------------------------------------------------------- selection
def test_the_replaced_trainer_binding_fails_in_one_line_naming_the_loss_binding():
    with pytest.raises(ValueError) as error:
        parse_config(["tasks/pendulum.gin"], ["genpo.trainer.kl_for_lr = 'k3'"])
    assert "\n" not in str(error.value) and "loss.ppo.kl_estimator = @kl_estimator.k1()" in str(error.value)
