"""ODE solvers (kind ``ode_solver``): order of accuracy, velocity calls, step-count check, and their use.

Parametrised over ``registry.names("ode_solver")`` with each solver's declared ``order`` and
``velocity_calls`` checked against the expected table, so a solver added later gets the same suite. The
order is measured on two linear ODEs with known solutions: ``dx/dt = lam x`` (the step's stability
polynomial) and ``dx/dt = exp(beta t)`` (the stage times); halving the step divides the error at t = 1
by about 2^order. The actors: every solver keeps FPO's ratio at 1 and the noisy chains' likelihood exact
(hand-written Gaussian chain whose mean is one solver step, and the inverse round trip).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.builders import build_actor

SOLVERS = registry.names("ode_solver")
EXPECTED = {"euler": (1, 1), "midpoint": (2, 2), "heun": (2, 2), "rk4": (4, 4)}  # name -> (order, calls per step)
SMALL_NETWORKS = ["velocity_network.mlp.hidden_sizes = (16, 16)", "time_embedding.sinusoidal.out_dim = 4"]


def solver(name: str):
    return registry.get("ode_solver", name)()


def test_the_four_solvers_are_registered_with_their_order_and_cost():
    assert set(EXPECTED) <= set(SOLVERS)
    for name, (order, calls) in EXPECTED.items():
        assert (solver(name).order, solver(name).velocity_calls) == (order, calls), name


def observed_order(name: str, velocity, start: float, exact: float, num_steps: int) -> float:
    """log2 of the error ratio at t = 1 between ``num_steps`` and ``2 num_steps`` steps, in float64."""
    x0 = torch.tensor([start], dtype=torch.float64)
    errors = [abs(solver(name).integrate(velocity, x0, n).item() - exact) for n in (num_steps, 2 * num_steps)]
    return math.log2(errors[0] / errors[1])


@pytest.mark.parametrize("name", SOLVERS)
@settings(max_examples=15, deadline=None)
@given(
    rate=st.floats(0.25, 2.0),
    negative=st.booleans(),
    start=st.floats(0.5, 2.0),
    num_steps=st.sampled_from([16, 32]),
)
def test_order_on_exponential_growth(name, rate, negative, start, num_steps):
    lam = -rate if negative else rate
    order = observed_order(name, lambda x, t: lam * x, start, start * math.exp(lam), num_steps)
    assert order == pytest.approx(solver(name).order, abs=0.3)


@pytest.mark.parametrize("name", SOLVERS)
@settings(max_examples=15, deadline=None)
@given(rate=st.floats(0.5, 3.0), negative=st.booleans(), num_steps=st.sampled_from([16, 32]))
def test_order_on_a_time_dependent_field_uses_the_stage_times(name, rate, negative, num_steps):
    beta = -rate if negative else rate
    exact = (math.exp(beta) - 1.0) / beta  # x(1) from x(0) = 0
    order = observed_order(name, lambda x, t: torch.full_like(x, math.exp(beta * t)), 0.0, exact, num_steps)
    assert order == pytest.approx(solver(name).order, abs=0.3)


@pytest.mark.parametrize("name", SOLVERS)
@settings(max_examples=10, deadline=None)
@given(num_steps=st.integers(1, 12))
def test_velocity_calls_per_step(name, num_steps):
    calls = []

    def velocity(x, t):
        calls.append(t)
        return -x

    solver(name).integrate(velocity, torch.ones(3, dtype=torch.float64), num_steps)
    assert len(calls) == num_steps * EXPECTED.get(name, (None, solver(name).velocity_calls))[1]
    assert min(calls) == 0.0 and max(calls) <= 1.0


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("num_steps", [0, -3, 2.5, True])
def test_a_bad_step_count_fails_naming_the_solver(name, num_steps):
    cls = registry.get("ode_solver", name)
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: num_steps must be a positive integer, got {num_steps!r}$"):
        cls().integrate(lambda x, t: x, torch.ones(2), num_steps)


def test_an_actor_given_something_else_than_a_solver_says_so():
    with pytest.raises(ValueError, match=r"DPPOActor: solver must be an ODE solver component"):
        build_actor(3, 2, config_files=["policies/dppo.gin"], bindings=[*SMALL_NETWORKS, "actor.dppo.solver = 'euler'"])


# ------------------------------------------------------------------------------ the actors that use them
def small_actor(policy: str, solver_name: str, extra=()):
    bindings = [*SMALL_NETWORKS, f"actor.{policy}.solver = @ode_solver.{solver_name}()", f"actor.{policy}.num_steps = 3", *extra]
    return build_actor(3, 2, config_files=[f"policies/{policy}.gin"], bindings=bindings).double()


def observations(batch: int) -> TensorDict:
    return TensorDict(observation=torch.randn(batch, 3, dtype=torch.float64), batch_size=[batch])


@pytest.mark.parametrize("name", SOLVERS)
def test_fpo_samples_with_the_bound_solver_and_keeps_ratio_one(name):
    """FPO's action is the solver's integration of its velocity field; the surrogate ignores the solver."""
    torch.manual_seed(0)
    actor = small_actor("fpo", name)
    assert type(actor.solver) is registry.get("ode_solver", name)
    batch, start = observations(5), torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        sampled = actor.sample(batch.clone(), noise=start)
        net, observation = actor.velocity_network, batch["observation"]
        expected = solver(name).integrate(lambda x, t: net.compute(x, observation, torch.tensor(t, dtype=x.dtype)), start, 3)
        torch.testing.assert_close(sampled["action"], expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(actor.log_prob(sampled), sampled["action_log_prob"], rtol=0, atol=1e-12)


def hand_written_chain(actor, batch: TensorDict) -> torch.Tensor:
    """log N(x_0; 0, I) + sum_k log N(x_{k+1}; one solver step from x_k, sigma_k(x_k)^2 I)."""
    observation, chain = batch["observation"], batch["chain"]
    normal, dt = torch.distributions.Normal, 1.0 / actor.num_steps

    def output(x, t):
        return actor.velocity_network.compute(x, observation, torch.tensor(t, dtype=x.dtype))

    def velocity(x, t):
        return output(x, t)[..., : actor.action_dim]

    total = normal(0.0, 1.0).log_prob(chain[:, 0]).sum(-1)
    for step in range(actor.num_steps):
        state, time = chain[:, step], step * dt
        mean = actor.solver.step(lambda x, stage: velocity(x, time + actor.solver.nodes[stage] * dt), state, dt)
        if actor.registered_name == "dppo":
            sigma = actor.sigmas[step].expand_as(state)
        else:
            head = output(state, time)[..., actor.action_dim :]
            sigma = actor.sigma_min + (actor.sigma_max - actor.sigma_min) * torch.sigmoid(head)
        total = total + normal(mean, sigma).log_prob(chain[:, step + 1]).sum(-1)
    return total


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("policy", ["dppo", "reinflow"])
def test_noisy_chain_drift_uses_the_solver_and_the_likelihood_stays_exact(policy, name):
    torch.manual_seed(1)
    actor = small_actor(policy, name)
    noise = torch.randn(6, actor.noise_dim, dtype=torch.float64)
    with torch.no_grad():
        batch = actor.sample(observations(6), noise=noise)
        torch.testing.assert_close(actor.log_prob(batch), hand_written_chain(actor, batch), rtol=0, atol=1e-10)
        torch.testing.assert_close(batch["action_log_prob"], actor.log_prob(batch), rtol=0, atol=1e-10)
        torch.testing.assert_close(actor.inverse(batch), noise, rtol=0, atol=1e-10)
        zero = actor.sample(batch.select("observation").clone(), noise=torch.zeros_like(noise))
        deterministic = solver(name).integrate(
            lambda x, t: actor.velocity_network.compute(x, zero["observation"], torch.tensor(t, dtype=x.dtype))[..., :2],
            torch.zeros(6, 2, dtype=torch.float64),
            3,
        )
        torch.testing.assert_close(zero["action"], deterministic, rtol=0, atol=1e-12)
