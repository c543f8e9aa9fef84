"""genpo.load_policy: the run's policy as observation -> action, with each noise mode and the run's clipping."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from tensordict import TensorDict

import genpo
from genpo.deployment.policy import Policy

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def run(tmp_path, make_tiny_experiment):
    """A tiny GenPO Pendulum run after one iteration, and its trainer (the policy as trained)."""
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=["genpo.run.iterations = 1"])
    trainer.train(1, quiet=True)
    trainer.save()
    return tmp_path / "run", trainer


def observations(batch: int, seed: int = 0) -> torch.Tensor:
    return 2.0 * torch.randn(batch, 3, generator=torch.Generator().manual_seed(seed))


def trained_action(trainer, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The action the trainer's own actor takes (the rollout's path: normalise, sample with given noise)."""
    trainer.actor.eval()
    with torch.no_grad():
        step = TensorDict(observation=trainer.observation_normalizer.compute(observation), batch_size=[observation.shape[0]])
        return trainer.actor.sample(step, noise=noise)["action"]


def test_zero_noise_is_the_trained_deterministic_policy(run):
    run_dir, trainer = run
    policy = genpo.load_policy(run_dir)
    assert isinstance(policy, Policy) and (policy.observation_dim, policy.action_dim, policy.noise_dim) == (3, 1, 2)
    assert (policy.actor_name, policy.iteration, policy.clip) == ("genpo", 1, None)
    observation = observations(8)
    action = policy(observation)
    assert action.shape == (8, 1) and not action.requires_grad
    torch.testing.assert_close(action, trained_action(trainer, observation, torch.zeros(8, 2)), rtol=0, atol=0)
    torch.testing.assert_close(policy(observation.numpy()), action, rtol=0, atol=0)  # arrays too, same answer


def test_given_noise_is_used_as_the_base_noise(run):
    run_dir, trainer = run
    observation, noise = observations(8), torch.randn(8, 2)
    action = genpo.load_policy(run_dir, noise="zero")(observation, noise=noise)
    torch.testing.assert_close(action, trained_action(trainer, observation, noise), rtol=0, atol=0)


def test_fixed_noise_holds_one_draw_per_row_until_reset(run):
    run_dir, _ = run
    policy = genpo.load_policy(run_dir, noise="fixed", seed=3)
    observation = observations(6)
    first = policy(observation)
    torch.testing.assert_close(policy(observation), first, rtol=0, atol=0)
    # row i keeps its draw whatever the batch (other batch sizes may round the last bit differently)
    torch.testing.assert_close(policy(observation[:2]), first[:2], rtol=0, atol=1e-6)
    torch.testing.assert_close(policy(torch.cat([observation, observation]))[:6], first, rtol=0, atol=1e-6)
    assert not torch.equal(first, genpo.load_policy(run_dir)(observation))
    policy.reset()
    torch.testing.assert_close(policy(observation), first, rtol=0, atol=0)  # same seed, same draws
    policy.reset(4)
    assert not torch.equal(policy(observation), first)


def test_random_noise_is_fresh_every_call_and_seeded(run):
    run_dir, _ = run
    observation = observations(6)
    policy, twin = genpo.load_policy(run_dir, noise="random", seed=1), genpo.load_policy(run_dir, noise="random", seed=1)
    first, second = policy(observation), policy(observation)
    assert not torch.equal(first, second)
    torch.testing.assert_close(twin(observation), first, rtol=0, atol=0)
    torch.testing.assert_close(twin(observation), second, rtol=0, atol=0)


def test_the_runs_action_clipping_is_applied(tmp_path, make_tiny_experiment):
    make_tiny_experiment(tmp_path / "run", extra=["genpo.build_env.clip_actions = 0.05"])
    policy = genpo.load_policy(tmp_path / "run", noise="random")
    action = policy(observations(256))
    assert policy.clip == 0.05 and action.abs().max().item() == pytest.approx(0.05)
    unclipped = policy.graph.actor.sample(TensorDict(observation=observations(256), batch_size=[256]))["action"]
    assert unclipped.abs().max().item() > 0.05  # the clip is what bounds it


def test_each_run_is_rebuilt_from_its_own_config_alone(tmp_path, make_tiny_experiment):
    """A binding of a run loaded earlier in the process does not fill a gap in the next run's config
    (its config.gin holds only the values it bound)."""
    from conftest import GAUSSIAN_CONFIG

    runs = {}
    for name, extra in (("state_std", ["actor.gaussian.state_dependent_std = True"]), ("plain", [])):
        trainer, _ = make_tiny_experiment(tmp_path / name, config=GAUSSIAN_CONFIG, extra=[*extra, "genpo.run.iterations = 1"])
        trainer.train(1, quiet=True)
        trainer.save()
        runs[name] = trainer
    observation, noise = observations(8), torch.randn(8, 1)
    for name in ("state_std", "plain", "state_std"):
        action = genpo.load_policy(tmp_path / name)(observation, noise=noise)
        torch.testing.assert_close(action, trained_action(runs[name], observation, noise), rtol=0, atol=0)


def test_bad_input_fails_naming_the_culprit(run):
    run_dir, _ = run
    with pytest.raises(ValueError, match=r"load_policy: noise must be one of zero, fixed, random, got 'gaussian'"):
        genpo.load_policy(run_dir, noise="gaussian")
    with pytest.raises(ValueError, match=r"policy genpo: observation has shape \(3,\), expected \[batch, 3\]"):
        genpo.load_policy(run_dir)(torch.zeros(3))
    with pytest.raises(ValueError, match=r"is not a genpo run directory"):
        genpo.load_policy(run_dir.parent)


def test_import_genpo_does_not_load_the_deployment_package():
    code = "import sys, genpo; assert 'genpo.deployment' not in sys.modules; assert callable(genpo.load_policy)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@CUDA
def test_cuda_policy_matches_cpu(run):
    run_dir, _ = run
    observation, noise = observations(16), torch.randn(16, 2)
    on_cpu = genpo.load_policy(run_dir, device="cpu")(observation, noise=noise)
    on_cuda = genpo.load_policy(run_dir, device="cuda")(observation.cuda(), noise=noise.cuda())
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-5)
