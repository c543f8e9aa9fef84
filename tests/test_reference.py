"""The one-file reference GenPO-PPO (genpo/reference/genpo_ppo.py) and the modular trainer agree.

Both run 3 iterations from the same seed on the same env; every logged loss and metric and every
parameter must match to float tolerance: the two sum a few tensors in a different order, and at ratio 1
the policy loss is a near-zero sum whose rounding Adam carries into the parameters (about 2e-5 after 3
iterations).
"""

from __future__ import annotations

import math

import gin
import pytest
import torch

from genpo.builders import new_experiment
from genpo.builders.env import build_env
from genpo.reference.genpo_ppo import Config, train

ITERATIONS = 3
SMALL_NETWORKS = (
    "velocity_network.mlp.hidden_sizes = (16, 16)",
    "critic.mlp.hidden_sizes = (16,)",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
    "genpo.trainer.epochs = 2",
    "genpo.trainer.minibatches = 2",
)
CASES = {
    "pendulum": (
        "tasks/pendulum.gin",
        ["genpo.build_env.num_envs = 16", "genpo.build_env.max_episode_steps = 12", "genpo.trainer.steps_per_env = 8"],
        Config(flow_steps=5),
    ),
    # HalfCheetah's config autocasts the velocity network to bf16; the reference is the fp32 method. Both
    # hold the KL at 0.01, not the task's 0.02: the larger learning rates that 0.02 allows carry the
    # summation-order rounding to 1.1e-3 relative in the third iteration's value loss (parameters still
    # agree within a tenth of an Adam step), past this test's tolerance.
    "halfcheetah": (
        "tasks/halfcheetah.gin",
        [
            "genpo.build_env.num_envs = 8",
            "genpo.trainer.steps_per_env = 16",
            "velocity_network.mlp.autocast_dtype = None",
            "lr_controller.kl_adaptive.target_kl = 0.01",
        ],
        Config(flow_steps=2),
    ),
}
COMMON = dict(velocity_hidden=(16, 16), critic_hidden=(16,), time_hidden=(8,), epochs=2, minibatches=2)


@pytest.mark.parametrize("task", list(CASES))
def test_reference_and_modular_trainer_agree(tmp_path, task):
    config_file, bindings, config = CASES[task]
    trainer, settings = new_experiment(tmp_path / "run", [config_file], [*bindings, *SMALL_NETWORKS])
    steps_per_env = trainer.settings.steps_per_env
    modular = [trainer.run_iteration() for _ in range(ITERATIONS)]
    env = build_env(seed=settings.seed)  # the same env as the trainer's, from the same bindings
    config = Config(**{**config.__dict__, **COMMON, "steps_per_env": steps_per_env})
    reference, actor, critic = train(env, config, ITERATIONS, seed=settings.seed)
    gin.clear_config()

    for iteration, (expected, actual) in enumerate(zip(reference, modular, strict=True), start=1):
        for key, value in expected.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(actual[key]), (iteration, key)
            else:
                assert actual[key] == pytest.approx(value, rel=1e-3, abs=1e-6), (iteration, key)
    assert set(reference[0]) <= set(modular[0])
    for ours, theirs in ((actor, trainer.actor), (critic, trainer.critic)):
        ours, theirs = list(ours.parameters()), list(theirs.parameters())
        assert [p.shape for p in ours] == [p.shape for p in theirs]
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # a tenth of one Adam step at lr 1e-3
