"""Couplings and flows: the inverse undoes the forward map, and every log-det is the Jacobian's.

Parametrised over ``registry.names("coupling")``, so a coupling added later gets the whole suite (round
trip, step and flow log-det against autograd, its ``state_independent_log_det`` declaration held true,
the numeric-log-det flow) without edits here. A coupling is built as ``cls(p)``. docs/extending.md's
coupling example is run through these same test functions (tests/test_extending_doc.py).
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.builders.config import GIN_DIR
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.components.flows.numeric_log_det import NumericLogDetFlow
from genpo.components.networks.time_embedding import SinusoidalTimeEmbedding
from genpo.components.networks.velocity_network import VelocityMLP

COUPLINGS = registry.names("coupling")
DECLARATION = "state_independent_log_det"


def declares_constant_log_det(coupling: str) -> bool:
    return registry.get("coupling", coupling).state_independent_log_det


CONSTANT = [name for name in COUPLINGS if declares_constant_log_det(name)]
STATE_DEPENDENT = [name for name in COUPLINGS if not declares_constant_log_det(name)]
GIN_FOLDERS = [GIN_DIR]  # where a coupling's gin file is looked for (the doc test adds its own folder)
OBSERVATION_DIM = 3
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]
seeds = st.integers(0, 2**31 - 1)


def small_velocity_network(half_dim: int, observation_dim: int, *, output_fields: int = 1) -> VelocityMLP:
    """A small velocity net, so hypothesis can build hundreds of flows in seconds."""
    time_embedding = SinusoidalTimeEmbedding(hidden_sizes=(8,), out_dim=4)
    return VelocityMLP(
        half_dim, observation_dim, hidden_sizes=(16, 16), time_embedding=time_embedding, output_fields=output_fields
    )


def make_flow(coupling, action_dim, *, p=0.9, num_steps=5, flow_class=DummyActionFlow, dtype=torch.float64, device="cpu"):
    flow = flow_class(
        OBSERVATION_DIM,
        action_dim,
        velocity_network=small_velocity_network,
        coupling=registry.get("coupling", coupling)(p),
        num_steps=num_steps,
    )
    return flow.to(dtype=dtype, device=device)


def round_trip_tolerance(dtype: torch.dtype, p: float, num_steps: int) -> float:
    """100 machine epsilons times the inverse's p^(-2N) amplification.

    Measured over 400 random flows (d 1..6, N 1..20, p 0.5..0.99, all couplings, |z| up to ~4): the worst
    round-trip error was 7 eps x p^(-2N) in float32 (8e-7 x p^(-2N)) and in float64 (1.4e-15 x p^(-2N)),
    so this leaves a ~15x margin in both, and float64 is held 2^29 times tighter than float32.
    """
    return 100 * torch.finfo(dtype).eps * p ** (-2 * num_steps)


def log_abs_det(jacobian: torch.Tensor) -> float:
    return torch.linalg.slogdet(jacobian).logabsdet.item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("coupling", COUPLINGS)
@settings(max_examples=30, deadline=None)
@given(
    action_dim=st.integers(1, 6),
    num_steps=st.integers(1, 20),
    p=st.floats(0.5, 0.99),
    batch_shape=st.sampled_from([(), (3,), (2, 4)]),
    seed=seeds,
)
def test_inverse_undoes_forward(coupling, dtype, device, action_dim, num_steps, p, batch_shape, seed):
    torch.manual_seed(seed)
    flow = make_flow(coupling, action_dim, p=p, num_steps=num_steps, dtype=dtype, device=device)
    observation = torch.randn(*batch_shape, OBSERVATION_DIM, dtype=dtype, device=device)
    noise = torch.randn(*batch_shape, 2 * action_dim, dtype=dtype, device=device)
    with torch.no_grad():
        dummy_action, forward_log_det = flow.compute(observation, noise)
        recovered, inverse_log_det = flow.inverse(observation, dummy_action)
    assert dummy_action.shape == recovered.shape == noise.shape
    assert forward_log_det.shape == inverse_log_det.shape == batch_shape
    assert (recovered - noise).abs().max().item() <= round_trip_tolerance(dtype, p, num_steps)


@pytest.mark.parametrize("coupling", COUPLINGS)
@settings(max_examples=25, deadline=None)
@given(action_dim=st.integers(1, 4), p=st.floats(0.5, 1.0), step=st.integers(0, 3), seed=seeds)
def test_step_log_det_is_jacobian_log_det(coupling, action_dim, p, step, seed):
    """One step's log-det (constant part + state term), forward and inverse, equals log|det| of its Jacobian."""
    torch.manual_seed(seed)
    flow = make_flow(coupling, action_dim, p=p, num_steps=4)
    velocity = flow.step_velocities(torch.randn(OBSERVATION_DIM, dtype=torch.float64))[step]

    def step_map(state):
        x, y, _ = flow.coupling.forward_step(*state.chunk(2), velocity, flow.dt, step)
        return torch.cat([x, y])

    state = torch.randn(2 * action_dim, dtype=torch.float64)
    next_x, next_y, forward_term = flow.coupling.forward_step(*state.chunk(2), velocity, flow.dt, step)
    *_, inverse_term = flow.coupling.inverse_step(next_x, next_y, velocity, flow.dt, step)
    expected = log_abs_det(torch.func.jacrev(step_map)(state))
    for term in (forward_term, inverse_term):
        analytic = flow.coupling.constant_log_det(action_dim) + (0.0 if term is None else term.item())
        assert analytic == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("coupling", COUPLINGS)
@settings(max_examples=25, deadline=None)
@given(action_dim=st.integers(1, 4), num_steps=st.integers(1, 6), p=st.floats(0.5, 1.0), seed=seeds)
def test_flow_log_det_is_jacobian_log_det(coupling, action_dim, num_steps, p, seed):
    """The whole map's log-det from ``compute`` and from ``inverse`` equals log|det dF/dz| by autograd."""
    torch.manual_seed(seed)
    flow = make_flow(coupling, action_dim, p=p, num_steps=num_steps)
    observation = torch.randn(OBSERVATION_DIM, dtype=torch.float64)
    noise = torch.randn(2 * action_dim, dtype=torch.float64)
    expected = log_abs_det(torch.func.jacrev(lambda z: flow.compute(observation, z)[0])(noise))
    dummy_action, forward_log_det = flow.compute(observation, noise)
    _, inverse_log_det = flow.inverse(observation, dummy_action)
    assert forward_log_det.item() == pytest.approx(expected, abs=1e-10)
    assert inverse_log_det.item() == pytest.approx(expected, abs=1e-10)


def test_library_couplings_declare_their_log_det():
    assert {"genpo", "leapfrog"} <= set(CONSTANT)
    assert "affine" in STATE_DEPENDENT


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_coupling_declares_whether_its_log_det_depends_on_the_state(coupling):
    """The registry refuses a coupling without the declaration; this checks the registered ones kept it."""
    assert registry.required_attributes("coupling") == {DECLARATION: bool}
    cls = registry.get("coupling", coupling)
    assert isinstance(vars(cls).get(DECLARATION), bool), f"{cls.__qualname__} sets no {DECLARATION} in its body"


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_coupling_is_selected_by_a_gin_file(coupling):
    """The "one gin file" of docs/extending.md: some config trains with it (an ablation or a policy file)."""
    pattern = re.compile(rf"^\s*[\w./]+\s*=\s*@coupling\.{coupling}\b", re.MULTILINE)
    files = [path for folder in GIN_FOLDERS for path in sorted(folder.rglob("*.gin")) if pattern.search(path.read_text())]
    assert files, f"no gin file selects @coupling.{coupling} (add gin/ablations/coupling_{coupling}.gin)"


def assert_log_det_is_constant(coupling: str) -> None:
    """Two random batches of (observation, state) give log|det| == the flow's constant, in both directions,
    and autograd finds no path from the state, the observation or the weights to it."""
    torch.manual_seed(0)
    flow = make_flow(coupling, 3)
    for _ in range(2):
        observation = torch.randn(16, OBSERVATION_DIM, dtype=torch.float64, requires_grad=True)
        noise = torch.randn(16, 6, dtype=torch.float64, requires_grad=True)
        dummy_action, forward_log_det = flow.compute(observation, noise)
        _, inverse_log_det = flow.inverse(observation, dummy_action.detach())
        for log_det in (forward_log_det, inverse_log_det):
            torch.testing.assert_close(log_det, torch.full_like(log_det, flow.constant_log_det), rtol=0, atol=1e-12)
            if log_det.requires_grad:
                inputs = [observation, noise, *flow.parameters()]
                gradients = torch.autograd.grad(log_det.sum(), inputs, allow_unused=True, retain_graph=True)
                assert all(g is None or g.abs().max().item() == 0 for g in gradients)


def assert_log_det_depends_on_state(coupling: str) -> None:
    """log|det| varies across random (observation, state) and is not the constant part alone."""
    torch.manual_seed(0)
    flow = make_flow(coupling, 3)
    observation = torch.randn(16, OBSERVATION_DIM, dtype=torch.float64)
    _, log_det = flow.compute(observation, torch.randn(16, 6, dtype=torch.float64))
    assert log_det.std().item() > 1e-2
    assert (log_det - flow.constant_log_det).abs().min().item() > 1e-6


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_declared_log_det_dependence_holds(coupling):
    """``state_independent_log_det = True`` is checked (the closed-form entropy relies on it); ``False``
    must really vary, or the actor would give up its closed-form entropy for nothing."""
    if declares_constant_log_det(coupling):
        assert_log_det_is_constant(coupling)
    else:
        assert_log_det_depends_on_state(coupling)


def test_affine_log_det_depends_on_state():
    assert_log_det_depends_on_state("affine")


@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_numeric_log_det_flow_equals_analytic(coupling, batch_shape):
    torch.manual_seed(0)
    analytic = make_flow(coupling, 3)
    numeric = make_flow(coupling, 3, flow_class=NumericLogDetFlow)
    numeric.load_state_dict(analytic.state_dict())
    observation = torch.randn(*batch_shape, OBSERVATION_DIM, dtype=torch.float64)
    noise = torch.randn(*batch_shape, 6, dtype=torch.float64)

    dummy_action, analytic_log_det = analytic.compute(observation, noise)
    numeric_action, numeric_log_det = numeric.compute(observation, noise)
    recovered, numeric_inverse_log_det = numeric.inverse(observation, dummy_action)

    assert numeric_log_det.shape == numeric_inverse_log_det.shape == batch_shape
    torch.testing.assert_close(numeric_action, dummy_action, rtol=0, atol=1e-12)
    torch.testing.assert_close(recovered, noise, rtol=0, atol=1e-12)
    torch.testing.assert_close(numeric_log_det, analytic_log_det, rtol=0, atol=1e-10)
    torch.testing.assert_close(numeric_inverse_log_det, analytic_log_det, rtol=0, atol=1e-10)


def test_leapfrog_alternates_the_update_order():
    """Even steps update x first like the plain coupling; odd steps are the plain step with x and y swapped."""
    leapfrog, plain = registry.get("coupling", "leapfrog")(0.8), registry.get("coupling", "genpo")(0.8)
    x, y = torch.randn(2, 5, 3, dtype=torch.float64).unbind(0)

    def velocity(z):
        return torch.sin(3.0 * z) + z.pow(2)

    for step in (0, 2):
        x_even, y_even, _ = leapfrog.forward_step(x, y, velocity, 0.3, step)
        x_plain, y_plain, _ = plain.forward_step(x, y, velocity, 0.3, step)
        assert torch.equal(x_even, x_plain) and torch.equal(y_even, y_plain)
    for step in (1, 3):
        x_odd, y_odd, _ = leapfrog.forward_step(x, y, velocity, 0.3, step)
        y_swapped, x_swapped, _ = plain.forward_step(y, x, velocity, 0.3, step)
        assert torch.equal(x_odd, x_swapped) and torch.equal(y_odd, y_swapped)
        assert not torch.allclose(x_odd, plain.forward_step(x, y, velocity, 0.3, step)[0])
