"""Building actors from gin: paper defaults, swaps by binding alone, and one clear error per bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from genpo.builders import build_actor
from genpo.components.actors.gaussian import GaussianActor
from genpo.components.actors.genpo_flow import GenPOActor
from genpo.components.couplings.genpo_euler import GenPOCoupling
from genpo.components.couplings.leapfrog import LeapfrogCoupling
from genpo.components.networks.mlp import activation_class
from genpo.components.networks.time_embedding import RawTimeEmbedding, SinusoidalTimeEmbedding

GENPO = ["policies/genpo.gin"]
# A policy file leaves its network sizes to the task (the HIDDEN_SIZES macro); these are the paper's.
PAPER_SIZES = ["HIDDEN_SIZES = (400, 200, 100)"]


def test_genpo_gin_builds_paper_defaults():
    actor = build_actor(7, 3, config_files=GENPO, bindings=PAPER_SIZES)
    assert type(actor) is GenPOActor
    assert (actor.observation_dim, actor.action_dim, actor.noise_dim) == (7, 3, 6)
    assert type(actor.flow.coupling) is GenPOCoupling
    assert (actor.flow.coupling.p, actor.flow.num_steps, actor.readout.alpha) == (0.9, 5, 0.5)
    velocity_network = actor.flow.velocity_network
    widths = [velocity_network.half_projection.out_features]
    widths += [layer.out_features for layer in velocity_network.trunk if isinstance(layer, torch.nn.Linear)]
    assert widths == [400, 200, 100, 3]
    assert isinstance(velocity_network.first_activation, activation_class("mish"))
    assert type(velocity_network.time_embedding) is SinusoidalTimeEmbedding
    assert velocity_network.time_embedding.out_dim == 32


@pytest.mark.parametrize(
    "binding, component, expected",
    [
        ("flow.dummy_action.coupling = @coupling.leapfrog()", lambda actor: actor.flow.coupling, LeapfrogCoupling),
        (
            "velocity_network.mlp.time_embedding = @time_embedding.raw()",
            lambda actor: actor.flow.velocity_network.time_embedding,
            RawTimeEmbedding,
        ),
    ],
    ids=["coupling", "time_embedding"],
)
def test_binding_swaps_component(binding, component, expected):
    actor = build_actor(7, 3, config_files=GENPO, bindings=[*PAPER_SIZES, binding])
    assert type(component(actor)) is expected


def test_gaussian_gin_builds_gaussian_actor():
    actor = build_actor(7, 3, config_files=["policies/gaussian.gin"], bindings=["HIDDEN_SIZES = (256, 256, 256)"])
    assert type(actor) is GaussianActor
    assert torch.equal(actor.log_std, torch.zeros(3))


@pytest.mark.parametrize(
    "binding, message",
    [
        ("coupling.genpo.p = 0", r"GenPOCoupling: mixing coefficient p must be in \(0, 1\], got 0"),
        ("coupling.genpo.p = 1.5", r"GenPOCoupling: mixing coefficient p must be in \(0, 1\], got 1.5"),
        ("flow.dummy_action.num_steps = 0", r"DummyActionFlow: num_steps must be a positive integer, got 0"),
        (
            "flow.dummy_action.coupling = @coupling.nope()",
            r"(?s)No configurable matching reference '@coupling\.nope\(\)'.*registered coupling names: affine, genpo",
        ),
        ("coupling.genpo.q = 0.5", r"Configurable 'coupling\.genpo' doesn't have a parameter named 'q'"),
        ("readout.linear.alpha = -0.5", r"LinearReadout: alpha must be in \[0, 1\], got -0.5"),
    ],
    ids=["p_zero", "p_above_one", "no_steps", "unknown_component", "unknown_parameter", "negative_alpha"],
)
def test_bad_config_fails_naming_the_culprit(binding, message):
    with pytest.raises(ValueError, match=message):
        build_actor(7, 3, config_files=GENPO, bindings=[*PAPER_SIZES, binding])


def test_policy_file_without_its_hidden_sizes_fails_naming_the_macro():
    with pytest.raises(ValueError, match=r"^gin macro HIDDEN_SIZES is used but not defined"):
        build_actor(7, 3, config_files=GENPO)


def test_wrong_observation_width_fails_at_call_time():
    actor = build_actor(7, 3, config_files=GENPO, bindings=PAPER_SIZES)
    batch = TensorDict(observation=torch.zeros(4, 6), batch_size=[4])
    with pytest.raises(ValueError, match=r"GenPOActor: 'observation' has width 6, expected observation_dim=7"):
        actor(batch)
