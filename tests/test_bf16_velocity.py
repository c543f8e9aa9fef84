"""The bf16 velocity network (``velocity_network.mlp.autocast_dtype = 'bfloat16'``, or ``'auto'`` where the
machine multiplies bf16 natively): the flow's state and coupling stay fp32, the exact inverse still inverts the forward map, and PPO's ratio is 1 on fresh data.

Why the round trip is not held to fp32 round-off everywhere: the inverse re-evaluates the same bf16
network, but on halves rebuilt by the fp32 mixing inversion, which differ from the forward's by an ulp or
two. The network is deterministic, so almost every velocity comes out bitwise the same and the error stays
at fp32 round-off; but where a bf16 cast inside the network sits on a rounding boundary, that ulp flips it
and the velocity moves by one bf16 rounding of one hidden unit's contribution. Measured (15 flows: seeds 0-4
x action dim 1, 6, 17, hidden (64, 64), N = 5, p = 0.9, 4096 samples each): median error 1.5e-8 to 3.0e-8,
99.9th percentile 7e-7 (fp32 level) in 13 of 15 and 2.2e-5 in 2, up to 0.12 % of the elements above 1e-5,
worst 5.2e-4 (the fp32 network: worst 1.7e-6). Tolerances below: median 10 eps, 99th percentile the fp32
round-trip bound of test_couplings (100 eps p^(-2N)), maximum 2e-3 (about 4x the worst measured).
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import GENPO_CONFIG, first_minibatch

from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.components.flows.dummy_action_flow import DummyActionFlow
from genpo.components.networks.time_embedding import SinusoidalTimeEmbedding
from genpo.components.networks.velocity_network import VelocityMLP

BF16 = "velocity_network.mlp.autocast_dtype = 'bfloat16'"
EPS = torch.finfo(torch.float32).eps
P, NUM_STEPS = 0.9, 5


def make_flow(action_dim: int, autocast_dtype: str | None, seed: int = 0) -> DummyActionFlow:
    torch.manual_seed(seed)
    network = functools.partial(
        VelocityMLP,
        hidden_sizes=(64, 64),
        time_embedding=SinusoidalTimeEmbedding(out_dim=16, hidden_sizes=(64,)),
        autocast_dtype=autocast_dtype,
    )
    return DummyActionFlow(17, action_dim, velocity_network=network, coupling=GenPOCoupling(P), num_steps=NUM_STEPS)


def test_default_is_fp32_and_bad_dtypes_raise():
    assert VelocityMLP(2, 3).autocast_dtype is None
    with pytest.raises(ValueError, match="autocast_dtype must be one of None, 'bfloat16', 'float16', 'auto', got 'float8'"):
        VelocityMLP(2, 3, autocast_dtype="float8")


def test_velocity_is_computed_in_bf16_and_returned_in_the_state_dtype():
    fp32, bf16 = make_flow(6, None), make_flow(6, "bfloat16")
    bf16.load_state_dict(fp32.state_dict())
    observation, half = torch.randn(256, 17), torch.randn(256, 6)
    time = torch.tensor(0.4)
    exact = fp32.velocity_network.compute(half, observation, time)
    low = bf16.velocity_network.compute(half, observation, time)
    assert low.dtype == torch.float32
    difference = (low - exact).abs().max().item()
    assert 1e-4 < difference < 0.05 * exact.abs().max().item()  # bf16 matmuls: off by bf16 rounding, not more
    noise = torch.randn(256, 12)
    dummy_action, log_det = bf16.compute(observation, noise)
    assert dummy_action.dtype == log_det.dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("action_dim", [1, 6, 17])
def test_round_trip_with_bf16_velocity(action_dim, seed):
    flow = make_flow(action_dim, "bfloat16", seed)
    with torch.no_grad():
        observation, noise = torch.randn(4096, 17), torch.randn(4096, 2 * action_dim)
        dummy_action, forward_log_det = flow.compute(observation, noise)
        recovered, inverse_log_det = flow.inverse(observation, dummy_action)
    error = (recovered - noise).abs().flatten()
    assert error.median().item() < 10 * EPS
    assert error.quantile(0.99).item() < 100 * EPS * P ** (-2 * NUM_STEPS)
    assert error.max().item() < 2e-3
    assert torch.equal(forward_log_det, inverse_log_det)  # GenPO's log-det is the constant 2 N d log p


def test_bf16_run_has_ratio_one_on_fresh_data(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", GENPO_CONFIG, [BF16])
    assert trainer.actor.flow.velocity_network.autocast_dtype == "bfloat16"
    losses = trainer.loss(first_minibatch(trainer))
    assert losses["ratio_max_deviation"].item() < 1e-3
    assert losses["clip_fraction"].item() == 0.0
    assert abs(losses["kl_k1"].item()) < 1e-4


@pytest.mark.parametrize("native", [True, False, None])
def test_bf16_on_a_cpu_without_native_bf16_warns_once_naming_the_fix(native, monkeypatch):
    import warnings

    from genpo.components.networks import cpu_precision

    monkeypatch.setattr(cpu_precision, "cpu_has_native_bf16", lambda: native)
    cpu_precision.warn_if_bf16_is_emulated.cache_clear()
    network = VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype="bfloat16")
    half, observation, time = torch.randn(4, 2), torch.randn(4, 3), torch.rand(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network.compute(half, observation, time)
        network.compute(half, observation, time)
    messages = [str(warning.message) for warning in caught if issubclass(warning.category, RuntimeWarning)]
    if native is False:
        assert len(messages) == 1 and "autocast_dtype = None" in messages[0] and "avx512_bf16" in messages[0]
    else:
        assert messages == []
    cpu_precision.warn_if_bf16_is_emulated.cache_clear()


def test_this_cpu_flags_read_as_a_boolean_on_linux():
    from genpo.components.networks.cpu_precision import cpu_has_native_bf16

    assert cpu_has_native_bf16() in (True, False)


@pytest.fixture
def cpu_with_native_bf16(monkeypatch):
    """``set(native)`` makes this CPU read as having native bf16 (True), not (False) or unknown (None)."""
    from genpo.components.networks import cpu_precision

    def set_native(native):
        monkeypatch.setattr(cpu_precision, "cpu_has_native_bf16", lambda: native)
        cpu_precision.resolve_autocast_dtype.cache_clear()

    yield set_native
    cpu_precision.resolve_autocast_dtype.cache_clear()


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, None), (None, None)])
def test_auto_is_bf16_exactly_where_the_cpu_multiplies_bf16_natively(cpu_with_native_bf16, native, expected):
    cpu_with_native_bf16(native)
    network = VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype="auto")
    assert network.requested_autocast_dtype == "auto"
    assert network.autocast_dtype == expected
    torch.manual_seed(0)
    half, observation, time = torch.randn(64, 2), torch.randn(64, 3), torch.rand(64)
    # the same weights set to what 'auto' should have chosen compute exactly the same velocities
    same = VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype=expected)
    same.load_state_dict(network.state_dict())
    assert torch.equal(network.compute(half, observation, time), same.compute(half, observation, time))
    other = VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype=None if expected else "bfloat16")
    other.load_state_dict(network.state_dict())
    assert not torch.equal(network.compute(half, observation, time), other.compute(half, observation, time))
    assert network.compute(half, observation, time).dtype == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_auto_chooses_silently_and_an_explicit_bfloat16_still_warns_where_emulated(cpu_with_native_bf16, native):
    import warnings

    from genpo.components.networks import cpu_precision

    cpu_with_native_bf16(native)
    cpu_precision.warn_if_bf16_is_emulated.cache_clear()
    half, observation, time = torch.randn(4, 2), torch.randn(4, 3), torch.rand(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype="auto").compute(half, observation, time)
        auto_warnings = len(caught)
        VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype="bfloat16").compute(half, observation, time)
    cpu_precision.warn_if_bf16_is_emulated.cache_clear()
    assert auto_warnings == 0
    assert len(caught) == (0 if native else 1)


@pytest.mark.parametrize(("native", "line"), [
    (True, "velocity network in bf16 ('auto': this CPU multiplies bf16 natively"),
    (False, "velocity network in fp32 ('auto': this CPU has no avx512_bf16 or amx_bf16: bf16 would be emulated)"),
])
def test_the_locomotion_default_is_auto_and_the_run_states_its_choice(tmp_path, cpu_with_native_bf16, native, line, capsys):
    import gin

    from genpo.cli import _print_precision
    from genpo.components.networks.cpu_precision import describe_precision

    cpu_with_native_bf16(native)
    gin.clear_config()
    gin.parse_config_files_and_bindings(["gin/tasks/halfcheetah.gin"], [])
    assert gin.query_parameter("velocity_network.mlp.autocast_dtype") == "auto"
    flow = make_flow(3, "auto")
    assert describe_precision(flow).startswith(line)
    gin.clear_config()

    class Trainer:
        actor = flow

    _print_precision(Trainer())
    assert capsys.readouterr().out.startswith(f"precision: {line}")


def test_export_runs_an_auto_network_in_fp32_through_the_same_attribute(cpu_with_native_bf16):
    cpu_with_native_bf16(True)
    network = VelocityMLP(2, 3, hidden_sizes=(8,), autocast_dtype="auto")
    assert network.autocast_dtype == "bfloat16"
    network.autocast_dtype = None
    assert network.autocast_dtype is None and network.requested_autocast_dtype is None
