"""Actors: the stored likelihood is the recomputed one, the density is normalised, entropy and KL are right.

The GenPO actor is checked once per registered coupling (``registry.names("coupling")``), next to the
Gaussian reference; a coupling's closed-form entropy follows its ``state_independent_log_det``
declaration. The contract suite over every registered actor is tests/test_schemes.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from genpo import registry
from genpo.builders import build_actor
from genpo.components.actors.base import LOG_2PI, standard_normal_log_prob
from genpo.components.actors.genpo_flow import GenPOActor

OBSERVATION_DIM = 3
COUPLINGS = registry.names("coupling")


def declares_constant_log_det(coupling: str) -> bool:
    return registry.get("coupling", coupling).state_independent_log_det


CONSTANT_LOG_DET = [name for name in COUPLINGS if declares_constant_log_det(name)]
GAUSSIANS = ["gaussian", "gaussian_state_std"]
ACTORS = [*COUPLINGS, *GAUSSIANS]
CLOSED_FORM_ENTROPY = [*CONSTANT_LOG_DET, *GAUSSIANS]
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]
SMALL_NETWORKS = [
    "velocity_network.mlp.hidden_sizes = (16, 16)",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
    "time_embedding.sinusoidal.out_dim = 4",
    "actor.gaussian.hidden_sizes = (16, 16)",
    "actor.gaussian.init_std = 0.5",
]


def make_actor(kind: str, action_dim: int = 2, *, p: float = 0.9, num_steps: int = 5):
    """A small actor built through gin: ``kind`` is a GenPO coupling name, ``gaussian`` or
    ``gaussian_state_std`` (its log-std network's output layer randomised, so the std differs by state)."""
    if kind in GAUSSIANS:
        state_std = [f"actor.gaussian.state_dependent_std = {kind == 'gaussian_state_std'}"]
        actor = build_actor(
            OBSERVATION_DIM, action_dim, config_files=["policies/gaussian.gin"], bindings=[*SMALL_NETWORKS, *state_std]
        )
        if actor.state_dependent_std:
            torch.nn.init.normal_(actor.log_std_network[-1].weight, std=0.3)
        return actor
    coupling = [f"flow.dummy_action.coupling = @coupling.{kind}()", f"coupling.{kind}.p = {p}"]
    steps = [f"flow.dummy_action.num_steps = {num_steps}"]
    return build_actor(
        OBSERVATION_DIM, action_dim, config_files=["policies/genpo.gin"], bindings=[*SMALL_NETWORKS, *coupling, *steps]
    )


def amplification(actor) -> float:
    """p^(-2N), the growth of the flow inverse's rounding error; 1 for an actor without a flow."""
    if isinstance(actor, GenPOActor):
        return actor.flow.coupling.p ** (-2 * actor.flow.num_steps)
    return 1.0


def observations(*batch_shape: int, dtype=torch.float32, device="cpu") -> TensorDict:
    observation = torch.randn(*batch_shape, OBSERVATION_DIM, dtype=dtype, device=device)
    return TensorDict(observation=observation, batch_size=batch_shape, device=device)


def sample_key(actor) -> str:
    """The key the actor's likelihood is defined on (the dummy action for GenPO)."""
    return (*actor.sample_keys, "action")[0]


def log_prob_tolerance(actor, dtype: torch.dtype) -> float:
    """100 eps x p^(-2N) per noise dimension.

    log pi_old uses the sampled z, log pi_new the inverted one; their difference is sum_i z_i dz_i with
    dz <= 7 eps p^(-2N) measured (see tests/test_couplings.py), plus rounding of the log-prob itself.
    Measured worst over 20 seeds x 256 samples (d 1..8, p 0.7..0.9, N 5..8, all couplings, float32):
    4e-6 x p^(-2N) at d = 8, 25x below this tolerance; float64 is 2^29 times tighter.
    """
    return 100 * torch.finfo(dtype).eps * amplification(actor) * actor.noise_dim


@pytest.mark.parametrize("device", DEVICES)
@DTYPES
@pytest.mark.parametrize("kind", ACTORS)
@settings(max_examples=25, deadline=None)
@given(
    action_dim=st.integers(1, 6),
    p=st.floats(0.7, 0.99),
    num_steps=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_stored_log_prob_equals_recomputed(kind, dtype, device, action_dim, p, num_steps, seed):
    """The PPO ratio on fresh data is 1: log pi at sampling == log pi recomputed from the stored sample."""
    torch.manual_seed(seed)
    actor = make_actor(kind, action_dim, p=p, num_steps=num_steps).to(dtype=dtype, device=device)
    with torch.no_grad():
        batch = actor(observations(64, dtype=dtype, device=device))
        log_ratio = actor.log_prob(batch) - batch["action_log_prob"]
    assert log_ratio.abs().max().item() <= log_prob_tolerance(actor, dtype)


@DTYPES
@pytest.mark.parametrize("kind", ACTORS)
def test_inverse_recovers_noise(kind, dtype):
    torch.manual_seed(0)
    actor = make_actor(kind).to(dtype)
    noise = torch.randn(2, 3, actor.noise_dim, dtype=dtype)
    with torch.no_grad():
        recovered = actor.inverse(actor.sample(observations(2, 3, dtype=dtype), noise=noise))
    assert (recovered - noise).abs().max().item() <= 100 * torch.finfo(dtype).eps * amplification(actor)


@pytest.mark.parametrize("kind", ACTORS)
def test_zero_noise_sample_is_deterministic(kind):
    torch.manual_seed(0)
    actor = make_actor(kind)
    batch = observations(8)
    zeros = torch.zeros(8, actor.noise_dim)
    first, second = (actor.sample(batch.clone(), noise=zeros)["action"] for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(actor(batch.clone())["action"], actor(batch.clone())["action"])


@pytest.mark.parametrize("kind", ACTORS)
def test_density_integrates_to_one(kind):
    """exp(log_prob) sums to 1 over a fine grid of the sample space (2-D dummy action for d = 1)."""
    torch.manual_seed(0)
    actor = make_actor(kind, action_dim=1).double()
    observation = torch.randn(OBSERVATION_DIM, dtype=torch.float64)
    key = sample_key(actor)
    with torch.no_grad():
        samples = actor(TensorDict(observation=observation.expand(20000, -1), batch_size=[20000]))[key]
        axes = [torch.linspace(low - 2, high + 2, 200, dtype=torch.float64) for low, high in zip(*samples.aminmax(dim=0))]
        grid = torch.cartesian_prod(*axes).reshape(-1, len(axes))
        cell_volume = math.prod((axis[1] - axis[0]).item() for axis in axes)
        on_grid = TensorDict({"observation": observation.expand(len(grid), -1), key: grid}, batch_size=[len(grid)])
        integral = actor.log_prob(on_grid).exp().sum().item() * cell_volume
    assert integral == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("kind", ACTORS)
def test_log_prob_gradient_reaches_every_parameter(kind):
    torch.manual_seed(0)
    actor = make_actor(kind)
    with torch.no_grad():
        batch = actor(observations(16))
    actor.log_prob(batch).sum().backward()
    for name, parameter in actor.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_log_det_dependence_of_the_library_couplings():
    assert {"genpo", "leapfrog"} <= set(CONSTANT_LOG_DET) and "affine" not in CONSTANT_LOG_DET


@pytest.mark.parametrize("kind", COUPLINGS)
def test_analytic_log_det_gradient(kind):
    """Constant couplings' log-det has no path to the weights (zero gradient); the affine one has."""
    log_det_depends_on_weights = not declares_constant_log_det(kind)
    torch.manual_seed(0)
    actor = make_actor(kind)
    with torch.no_grad():
        batch = actor(observations(16))
    _, log_det = actor.flow.inverse(batch["observation"], batch["dummy_action"])
    assert log_det.requires_grad == log_det_depends_on_weights
    if log_det_depends_on_weights:
        gradients = torch.autograd.grad(log_det.sum(), list(actor.flow.velocity_network.parameters()))
        assert sum(gradient.abs().sum() for gradient in gradients) > 0


@DTYPES
@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
@pytest.mark.parametrize("kind", ACTORS)
def test_any_batch_shape_and_dtype(kind, batch_shape, dtype):
    actor = make_actor(kind, action_dim=3).to(dtype)
    batch = actor(observations(*batch_shape, dtype=dtype))
    assert batch["action"].shape == (*batch_shape, 3)
    assert batch[sample_key(actor)].shape[:-1] == batch_shape
    assert batch["action_log_prob"].shape == actor.log_prob(batch).shape == batch_shape
    assert batch["action"].dtype == batch["action_log_prob"].dtype == dtype


@pytest.mark.parametrize("kind", ["genpo", "leapfrog"])
def test_genpo_entropy_formula(kind):
    action_dim, p, num_steps = 3, 0.8, 4
    actor = make_actor(kind, action_dim, p=p, num_steps=num_steps)
    expected = action_dim * (1 + LOG_2PI) + 2 * action_dim * num_steps * math.log(p)
    torch.testing.assert_close(actor.entropy(observations(5)), torch.full((5,), expected))


def test_affine_entropy_has_no_closed_form():
    assert make_actor("affine").entropy(observations(5)) is None


@pytest.mark.parametrize("kind", COUPLINGS)
def test_closed_form_entropy_exactly_when_the_coupling_declares_a_constant_log_det(kind):
    """``d (1 + log 2 pi) + N constant_log_det(d)`` for a declared-constant coupling; None otherwise."""
    actor = make_actor(kind, 3, p=0.8, num_steps=4)
    entropy = actor.entropy(observations(5))
    if not declares_constant_log_det(kind):
        assert entropy is None
        return
    expected = 3 * (1 + LOG_2PI) + 4 * actor.flow.coupling.constant_log_det(3)
    torch.testing.assert_close(entropy, torch.full((5,), expected))


@pytest.mark.parametrize("kind", CLOSED_FORM_ENTROPY)
def test_entropy_matches_monte_carlo(kind):
    """The closed-form entropy equals -mean log_prob of fresh samples within 4 standard errors."""
    torch.manual_seed(0)
    actor = make_actor(kind, action_dim=3, p=0.8)
    with torch.no_grad():
        batch = actor(observations(4).expand(2000, 4).clone())
        negative_log_prob = -actor.log_prob(batch).flatten()
        entropy = actor.entropy(batch).flatten()
    standard_error = negative_log_prob.std().item() / math.sqrt(negative_log_prob.numel())
    assert negative_log_prob.mean().item() == pytest.approx(entropy.mean().item(), abs=4 * standard_error)


def test_state_dependent_std_starts_at_init_std_everywhere_and_can_differ_between_states():
    actor = build_actor(
        OBSERVATION_DIM,
        2,
        config_files=["policies/gaussian.gin"],
        bindings=[*SMALL_NETWORKS, "actor.gaussian.state_dependent_std = True"],
    )
    observation = observations(6)["observation"]
    torch.testing.assert_close(actor.log_std_at(observation), torch.full((6, 2), math.log(0.5)))
    assert actor.log_std is None and "log_std" not in dict(actor.named_parameters())
    randomised = make_actor("gaussian_state_std")
    log_std = randomised.log_std_at(observation)
    assert log_std.std(0).min() > 0.01  # the spread differs between states, per dimension
    state = observations(1)
    with torch.no_grad():
        actions = randomised(state.expand(4000).clone())["action"]
    expected_std = randomised.log_std_at(state["observation"]).exp()
    torch.testing.assert_close(actions.std(0, keepdim=True), expected_std, rtol=0.08, atol=0.0)


def test_genpo_noise_scale_binding_starts_the_flow_on_the_scaled_base():
    """``actor.genpo.noise_scale = s`` is the same map as scale 1 fed ``s * eps``: the same weights give
    the same dummy action, the likelihood carries the scaling's log-det, and the ratio on fresh samples is 1."""
    torch.manual_seed(0)
    unscaled = build_actor(OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=SMALL_NETWORKS).double()
    scaled = build_actor(
        OBSERVATION_DIM, 2, config_files=["policies/genpo.gin"], bindings=[*SMALL_NETWORKS, "actor.genpo.noise_scale = 0.7"]
    ).double()
    scaled.load_state_dict(unscaled.state_dict())
    assert scaled.noise_scale == 0.7 and unscaled.noise_scale == 1.0
    batch = observations(64, dtype=torch.float64)
    noise = torch.randn(64, scaled.noise_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sampled = scaled.sample(batch.clone(), noise)
        reference = unscaled.sample(batch.clone(), 0.7 * noise)
        torch.testing.assert_close(sampled["dummy_action"], reference["dummy_action"], rtol=0, atol=1e-12)
        torch.testing.assert_close(scaled.inverse(sampled), noise, rtol=0, atol=1e-9)
        torch.testing.assert_close(scaled.log_prob(sampled), sampled["action_log_prob"], rtol=0, atol=1e-9)
        # log N(eps) - log|det| - 2d log 0.7, where the unscaled actor's stored value is at noise 0.7 eps
        shift = reference["action_log_prob"] - scaled.log_prob(sampled)
        expected = standard_normal_log_prob(0.7 * noise) - standard_normal_log_prob(noise) + scaled.noise_dim * math.log(0.7)
        torch.testing.assert_close(shift, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [0.0, -0.5, math.inf, math.nan])
def test_genpo_noise_scale_out_of_range_is_refused(scale):
    with pytest.raises(ValueError, match=r"actor.genpo: noise_scale must be finite and > 0"):
        GenPOActor(OBSERVATION_DIM, 2, noise_scale=scale)
