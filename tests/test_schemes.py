"""Every likelihood scheme (registered actor) under the one trainer and PPOLoss.

Parametrised over ``registry.names("actor")``, so a scheme added later is covered without edits here:
its one gin file, ``gin/policies/<name>.gin`` (docs/extending.md), is all it must ship. Checks: ratio == 1
and nothing clipped on fresh data, then one training iteration, from ``tasks/pendulum.gin`` plus that file;
any batch shape and dtype; a closed-form entropy, where given, equals -E log pi; exact schemes (every
actor without ``exact_likelihood = False``) round-trip their base noise and match log N(z) - log|det| of
an autograd Jacobian at small d in float64; the chains match a hand-written Gaussian-chain formula. The
optional sweep entries ``gin/ablations/scheme_<name>.gin`` each name a registered actor and train one
iteration.
"""

from __future__ import annotations

import math

import gin
import pytest
import torch
from conftest import TINY_BINDINGS, first_minibatch
from tensordict import TensorDict

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.builders import GIN_DIR, build_actor, new_experiment
from genpo.components.actors.base import standard_normal_log_prob
from genpo.training.run_logger import read_metrics

ACTORS = registry.names("actor")
EXACT = [name for name in ACTORS if getattr(registry.get("actor", name), "exact_likelihood", True)]
SCHEME_ABLATIONS = sorted((GIN_DIR / "ablations").glob("scheme_*.gin"))
OBSERVATION_DIM = 3
SMALL_NETWORKS = [
    "velocity_network.mlp.hidden_sizes = (16, 16)",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
    "time_embedding.sinusoidal.out_dim = 4",
    "actor.gaussian.hidden_sizes = (16, 16)",
]


def policy_file(name: str) -> str:
    return f"policies/{name}.gin"


def small_actor(name: str, action_dim: int = 2, bindings=()):
    """The scheme built through its own gin policy file, with small networks, in float64."""
    actor = build_actor(OBSERVATION_DIM, action_dim, config_files=[policy_file(name)], bindings=[*SMALL_NETWORKS, *bindings])
    return actor.double()


def observations(*batch_shape: int) -> TensorDict:
    return TensorDict(observation=torch.randn(*batch_shape, OBSERVATION_DIM, dtype=torch.float64), batch_size=batch_shape)


def sample_vector(actor, batch: TensorDict) -> torch.Tensor:
    """The stored sample the likelihood is a density of, flattened: the sample keys, plus the action
    where they alone are narrower than the base noise (Gaussian: the action; reversible multistep:
    (x_{N-1}, x_N))."""
    parts = [batch[key].reshape(*batch.batch_size, -1) for key in actor.sample_keys]
    if sum(part.shape[-1] for part in parts) < actor.noise_dim:
        parts.append(batch["action"])
    return torch.cat(parts, dim=-1)




def test_expected_schemes_are_registered():
    assert {"genpo", "gaussian", "reversible_multistep", "fpo", "dppo", "reinflow"} <= set(ACTORS)
    assert set(ACTORS) - set(EXACT) == {"fpo"}


@pytest.mark.parametrize("name", ACTORS)
def test_every_scheme_has_a_policy_file(name):
    """The one gin file of the "one module plus one gin file" rule (docs/extending.md)."""
    assert (GIN_DIR / policy_file(name)).is_file(), f"actor {name!r} has no gin/{policy_file(name)}"


@pytest.mark.parametrize("path", SCHEME_ABLATIONS, ids=[path.stem for path in SCHEME_ABLATIONS])
def test_every_scheme_ablation_names_a_registered_actor(path):
    assert path.stem.removeprefix("scheme_") in ACTORS, f"{path.name} names no registered actor"


# ------------------------------------------------------------------------------ ratio on fresh data
@pytest.mark.parametrize("name", ACTORS)
def test_fresh_data_ratio_is_one_through_the_loss(name, tmp_path):
    """Rollout through the real collector (which stores the actor's sample keys), then PPOLoss; then one
    training iteration, so every scheme trains from its policy file alone."""
    bindings = [*TINY_BINDINGS, "genpo.run.iterations = 1"]
    trainer, _ = new_experiment(tmp_path / "run", ["tasks/pendulum.gin", policy_file(name)], bindings)
    assert trainer.actor.registered_name == name
    minibatch = first_minibatch(trainer)
    assert set(trainer.actor.sample_keys) <= set(minibatch.keys())
    losses = trainer.loss(minibatch)
    assert losses["ratio_max_deviation"].item() < 1e-4
    assert losses["clip_fraction"].item() == 0.0
    assert abs(losses["kl_k1"].item()) < 1e-4
    assert all(torch.isfinite(value).all() for key, value in losses.items() if key.startswith("loss_"))
    trainer.train(1, quiet=True)
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(math.isfinite(row[key]) for key in ("policy_loss", "value_loss", "kl_k1", "clip_fraction")), row


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
@pytest.mark.parametrize("name", ACTORS)
def test_any_batch_shape_and_dtype(name, batch_shape, dtype):
    """The contract's shapes: action [*B, d], log-prob [*B], sample keys with batch shape *B, dtype kept."""
    torch.manual_seed(0)
    actor = small_actor(name, action_dim=3).to(dtype)
    batch = actor(TensorDict(observation=torch.randn(*batch_shape, OBSERVATION_DIM, dtype=dtype), batch_size=batch_shape))
    assert batch["action"].shape == (*batch_shape, 3)
    assert all(batch[key].shape[: len(batch_shape)] == batch_shape for key in actor.sample_keys)
    assert batch["action_log_prob"].shape == actor.log_prob(batch).shape == batch_shape
    assert batch["action"].dtype == batch["action_log_prob"].dtype == dtype


@pytest.mark.parametrize("name", ACTORS)
def test_closed_form_entropy_matches_monte_carlo(name):
    """Where an actor gives a closed-form entropy, it equals -mean log pi of fresh samples (4 standard errors)."""
    torch.manual_seed(8)
    actor = small_actor(name, action_dim=2)
    with torch.no_grad():
        batch = actor(observations(4).expand(1000, 4).clone())
        entropy = actor.entropy(batch)
        if entropy is None:
            pytest.skip(f"actor {name!r} has no closed-form entropy")
        negative_log_prob = -actor.log_prob(batch).flatten()
    assert entropy.shape == (1000, 4)
    standard_error = negative_log_prob.std().item() / math.sqrt(negative_log_prob.numel())
    assert negative_log_prob.mean().item() == pytest.approx(entropy.mean().item(), abs=4 * standard_error)


@pytest.mark.parametrize("name", ACTORS)
def test_stored_log_prob_is_recomputed_and_reaches_every_parameter(name):
    torch.manual_seed(0)
    actor = small_actor(name)
    with torch.no_grad():
        batch = actor(observations(16))
    log_prob = actor.log_prob(batch)
    torch.testing.assert_close(log_prob, batch["action_log_prob"], rtol=0, atol=1e-10)
    log_prob.sum().backward()
    for parameter_name, parameter in actor.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


# ------------------------------------------------------------------------------ exact schemes
@pytest.mark.parametrize("batch_shape", [(), (2, 3)])
@pytest.mark.parametrize("name", EXACT)
def test_round_trip_reproduces_the_stored_sample(name, batch_shape):
    """inverse(sample(z)) == z, and sampling again from the recovered noise gives the same stored sample."""
    torch.manual_seed(1)
    actor = small_actor(name)
    noise = torch.randn(*batch_shape, actor.noise_dim, dtype=torch.float64)
    with torch.no_grad():
        batch = actor.sample(observations(*batch_shape), noise=noise)
        recovered = actor.inverse(batch)
        again = actor.sample(batch.select("observation").clone(), noise=recovered)
    torch.testing.assert_close(recovered, noise, rtol=0, atol=1e-11)
    for key in (*actor.sample_keys, "action", "action_log_prob"):
        torch.testing.assert_close(again[key], batch[key], rtol=0, atol=1e-11)


def autograd_log_prob(actor, observation: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log N(z) - log|det d sample / dz|, log|det|) from the full autograd Jacobian of z -> stored sample."""

    def sample_of(z):
        return sample_vector(actor, actor.sample(TensorDict(observation=observation, batch_size=[]), noise=z))

    jacobian = torch.autograd.functional.jacobian(sample_of, noise)
    assert jacobian.shape == (actor.noise_dim, actor.noise_dim), "the stored sample must be as wide as the noise"
    sign, log_abs_det = torch.linalg.slogdet(jacobian)
    assert sign != 0
    return standard_normal_log_prob(noise) - log_abs_det, log_abs_det


@pytest.mark.parametrize("name", EXACT)
def test_log_prob_equals_autograd_jacobian_change_of_variables(name):
    torch.manual_seed(2)
    actor = small_actor(name, action_dim=2)
    for _ in range(3):
        observation = torch.randn(OBSERVATION_DIM, dtype=torch.float64)
        noise = torch.randn(actor.noise_dim, dtype=torch.float64)
        expected, _ = autograd_log_prob(actor, observation, noise)
        with torch.no_grad():
            batch = actor.sample(TensorDict(observation=observation, batch_size=[]), noise=noise)
            torch.testing.assert_close(actor.log_prob(batch), expected, rtol=0, atol=1e-9)
            torch.testing.assert_close(batch["action_log_prob"], expected, rtol=0, atol=1e-9)


def test_reversible_multistep_log_det_is_the_coefficient_sum_and_matches_autograd():
    """log|det d(x_{N-1}, x_N)/dz| = d (log s_0 + (N-1) log gamma), whatever the weights, state and z."""
    torch.manual_seed(3)
    d, num_steps, gamma, scale = 2, 4, 0.7, 0.5
    bindings = [
        f"actor.reversible_multistep.num_steps = {num_steps}",
        f"actor.reversible_multistep.gamma = {gamma}",
        f"actor.reversible_multistep.start_noise_scale = {scale}",
    ]
    actor = small_actor("reversible_multistep", d, bindings)
    expected = d * (math.log(scale) + (num_steps - 1) * math.log(gamma))
    assert actor.constant_log_det == pytest.approx(expected, abs=1e-14)
    for _ in range(3):
        _, log_abs_det = autograd_log_prob(
            actor, torch.randn(OBSERVATION_DIM, dtype=torch.float64), torch.randn(2 * d, dtype=torch.float64)
        )
        assert log_abs_det.item() == pytest.approx(expected, abs=1e-10)
    batch = actor(observations(5))
    entropy = d * (1 + math.log(2 * math.pi)) + expected
    torch.testing.assert_close(actor.entropy(batch), torch.full((5,), entropy, dtype=torch.float64))


def hand_written_chain_log_prob(actor, batch: TensorDict) -> torch.Tensor:
    """log N(x_0; 0, I) + sum_k log N(x_{k+1}; x_k + dt v(x_k, s, t_k), sigma_k^2 I), step by step through
    the velocity network's plain ``compute`` and torch.distributions."""
    observation, chain = batch["observation"], batch["chain"]
    normal = torch.distributions.Normal
    total = normal(0.0, 1.0).log_prob(chain[:, 0]).sum(-1)
    for step in range(actor.num_steps):
        state = chain[:, step]
        time = torch.full(state.shape[:-1], step / actor.num_steps, dtype=state.dtype)
        output = actor.velocity_network.compute(state, observation, time)
        if actor.registered_name == "dppo":
            velocity, sigma = output, actor.sigmas[step].expand_as(state)
        else:
            velocity, head = output.chunk(2, dim=-1)
            sigma = actor.sigma_min + (actor.sigma_max - actor.sigma_min) * torch.sigmoid(head)
        total = total + normal(state + velocity / actor.num_steps, sigma).log_prob(chain[:, step + 1]).sum(-1)
    return total


@pytest.mark.parametrize(
    "name, bindings",
    [
        ("dppo", ["actor.dppo.num_steps = 3", "actor.dppo.sigma = (0.3, 0.05, 0.2)"]),
        ("reinflow", ["actor.reinflow.num_steps = 3", "actor.reinflow.sigma_max = 0.5"]),
    ],
)
def test_chain_log_prob_equals_hand_written_gaussian_chain(name, bindings):
    torch.manual_seed(4)
    actor = small_actor(name, 2, bindings)
    with torch.no_grad():
        batch = actor(observations(8))
        expected = hand_written_chain_log_prob(actor, batch)
        torch.testing.assert_close(actor.log_prob(batch), expected, rtol=0, atol=1e-10)
    assert batch["chain"].shape == (8, 4, 2)
    torch.testing.assert_close(batch["action"], batch["chain"][:, -1])
    if name == "dppo":
        torch.testing.assert_close(actor.sigmas, torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64))  # floored
        with torch.no_grad():  # the chain entropy is constant: it matches -mean log pi of fresh chains
            fresh = actor(observations(4000))
        negative_log_prob = -fresh["action_log_prob"]
        standard_error = negative_log_prob.std().item() / math.sqrt(len(negative_log_prob))
        assert negative_log_prob.mean().item() == pytest.approx(actor.entropy(fresh)[0].item(), abs=4 * standard_error)


def test_zero_noise_is_deterministic_for_every_scheme():
    for name in ACTORS:
        gin.clear_config()
        actor = small_actor(name)
        batch = observations(4)
        zeros = torch.zeros(4, actor.noise_dim, dtype=torch.float64)
        first, second = (actor.sample(batch.clone(), noise=zeros)["action"] for _ in range(2))
        assert torch.equal(first, second), name


# ------------------------------------------------------------------------------ per-term log-likelihoods
TERMED = [name for name in ACTORS if registry.get("actor", name).log_prob_term_reduction]


def test_the_chains_and_fpo_split_their_log_likelihood_into_terms():
    assert {"dppo", "reinflow", "fpo"} <= set(TERMED)


@pytest.mark.parametrize("name", TERMED)
def test_stored_terms_are_recomputed_and_reduce_to_the_log_prob_change(name):
    """The terms stored at sampling are recomputed from the stored sample; after a weight change, their
    differences reduce ('sum' / 'mean') to the change of log_prob (what the per-term PPO ratio relies on)."""
    torch.manual_seed(9)
    actor = small_actor(name)
    with torch.no_grad():
        batch = actor(observations(12))
        torch.testing.assert_close(actor.log_prob_terms(batch), batch["action_log_prob_terms"], rtol=0, atol=1e-10)
        for parameter in actor.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        differences = actor.log_prob_terms(batch) - batch["action_log_prob_terms"]
        reduced = differences.sum(-1) if actor.log_prob_term_reduction == "sum" else differences.mean(-1)
        torch.testing.assert_close(reduced, actor.log_prob(batch) - batch["action_log_prob"], rtol=0, atol=1e-10)
    assert differences.shape[-1] == (actor.num_mc if name == "fpo" else actor.num_steps)
    assert differences.abs().max() > 1e-3  # the weights did move the terms


def test_reinflow_entropy_is_the_chain_entropy_given_its_states_and_its_bonus_raises_sigma():
    """(N+1) d (1 + log 2 pi) / 2 + sum_k sum_j log sigma_kj(x_k) by hand, and one ascent step on it raises
    every sigma of the stored chains (ReinFlow's entropy bonus widens the exploration noise)."""
    torch.manual_seed(10)
    actor = small_actor("reinflow", 2, ["actor.reinflow.num_steps = 3"])
    with torch.no_grad():
        batch = actor(observations(16))

    def sigmas():
        heads = []
        for step in range(actor.num_steps):
            state = batch["chain"][:, step]
            time = torch.full(state.shape[:-1], step / actor.num_steps, dtype=state.dtype)
            heads.append(actor.velocity_network.compute(state, batch["observation"], time).chunk(2, dim=-1)[1])
        return actor.sigma_min + (actor.sigma_max - actor.sigma_min) * torch.sigmoid(torch.stack(heads, dim=1))

    before = sigmas().detach()
    expected = 0.5 * 4 * 2 * (1 + math.log(2 * math.pi)) + before.log().sum((-2, -1))
    torch.testing.assert_close(actor.entropy(batch), expected, rtol=0, atol=1e-10)
    optimizer = torch.optim.SGD(actor.parameters(), lr=0.1)
    (-actor.entropy(batch).mean()).backward()
    optimizer.step()
    assert bool((sigmas().detach() > before).all())


# ------------------------------------------------------------------------------ FPO (surrogate)
@pytest.mark.parametrize("target", ["velocity", "noise"])
def test_fpo_log_prob_is_minus_mean_cfm_loss_on_stored_pairs(target):
    """u-MSE |v - u|^2, or the paper's eps-MSE |eps_hat - eps|^2 with eps_hat = x_tau - tau v."""
    torch.manual_seed(5)
    actor = small_actor("fpo", 2, [f"actor.fpo.cfm_target = '{target}'"])
    with torch.no_grad():
        batch = actor(observations(6))
        observation, action = batch["observation"], batch["action"]
        tau, eps = batch["fpo_tau"], batch["fpo_noise"]
        assert tau.shape == (6, 8) and eps.shape == (6, 8, 2)
        losses = torch.zeros(6, 8, dtype=torch.float64)
        for i in range(8):
            x_tau = (1 - tau[:, i, None]) * eps[:, i] + tau[:, i, None] * action
            prediction = actor.velocity_network.compute(x_tau, observation, tau[:, i])
            if target == "velocity":
                losses[:, i] = (prediction - (action - eps[:, i])).pow(2).mean(-1)
            else:
                losses[:, i] = (x_tau - tau[:, i, None] * prediction - eps[:, i]).pow(2).mean(-1)
        torch.testing.assert_close(actor.log_prob(batch), -losses.mean(-1), rtol=0, atol=1e-12)
    with pytest.raises(NotImplementedError, match="FPO has no exact inverse"):
        actor.inverse(batch)


def test_fpo_ratio_rises_where_the_flow_fits_the_action_better():
    """One gradient step lowering the CFM loss on the stored pairs moves the ratio exp(L_old - L_new) above 1."""
    torch.manual_seed(6)
    actor = small_actor("fpo", 2)
    with torch.no_grad():
        batch = actor(observations(32))
    optimizer = torch.optim.SGD(actor.parameters(), lr=1e-2)
    (-actor.log_prob(batch).mean()).backward()
    optimizer.step()
    with torch.no_grad():
        ratio = (actor.log_prob(batch) - batch["action_log_prob"]).exp()
    assert ratio.mean().item() > 1.0


def test_fpo_midpoint_solver_takes_the_midpoint_step_and_keeps_ratio_one():
    """One midpoint step is x0 + v(x0 + v(x0, t=0) / 2, t=1/2) by hand; the surrogate ignores the solver."""
    torch.manual_seed(7)
    actor = small_actor("fpo", 2, bindings=["actor.fpo.solver = @ode_solver.midpoint()", "actor.fpo.num_steps = 1"])
    batch = observations(5)
    start = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        sampled = actor.sample(batch.clone(), noise=start)
        net, observation = actor.velocity_network, batch["observation"]
        half_way = start + 0.5 * net.compute(start, observation, torch.zeros(5, dtype=torch.float64))
        expected = start + net.compute(half_way, observation, torch.full((5,), 0.5, dtype=torch.float64))
        torch.testing.assert_close(sampled["action"], expected, rtol=0, atol=1e-12)
        euler = start + net.compute(start, observation, torch.zeros(5, dtype=torch.float64))
        assert not torch.allclose(sampled["action"], euler)
        torch.testing.assert_close(actor.log_prob(sampled), sampled["action_log_prob"], rtol=0, atol=1e-12)


def test_fpo_rejects_a_solver_that_is_not_a_component():
    with pytest.raises(ValueError, match=r"FPOActor: solver must be an ODE solver component \(e\.g\. @ode_solver\.midpoint\(\)\), got 'rk4'"):
        small_actor("fpo", 2, bindings=["actor.fpo.solver = 'rk4'"])


# ------------------------------------------------------------------------------ one iteration per scheme
@pytest.mark.parametrize("path", SCHEME_ABLATIONS, ids=[path.stem for path in SCHEME_ABLATIONS])
def test_scheme_ablation_trains_one_iteration(path, tmp_path, make_tiny_experiment):
    name = path.stem.removeprefix("scheme_")
    trainer, _ = make_tiny_experiment(tmp_path / "run", config=path, extra=["genpo.run.iterations = 1"])
    assert trainer.actor.registered_name == name
    assert trainer.loss.clip_epsilon == {"fpo": 0.05, "dppo": 0.1, "reinflow": 0.01}.get(name, 0.2)
    assert trainer.loss.compression is None or name == "genpo"
    trainer.train(1, quiet=True)
    (row,) = read_metrics(tmp_path / "run" / "metrics.csv")
    losses = {key: value for key, value in row.items() if key.endswith("_loss") or key.startswith("loss_")}
    assert {"policy_loss", "value_loss"} <= set(losses)
    assert all(math.isfinite(value) for value in losses.values()), losses
    assert math.isfinite(row["kl_k1"]) and math.isfinite(row["clip_fraction"])
