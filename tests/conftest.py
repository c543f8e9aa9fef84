import os

import gin
import pytest
import torch


@pytest.fixture(autouse=True)
def clear_gin_state():
    """Every test starts and ends with an empty gin config."""
    gin.clear_config()
    yield
    gin.clear_config()


TEST_THREADS = int(os.environ.get("GENPO_TEST_THREADS", "1"))
# Pins every run's thread count, in this process and in the genpo processes tests start, so that a
# run's float results do not depend on the load of the machine (genpo's 'auto' threads honour it).
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)


@pytest.fixture(autouse=True)
def torch_threads():
    """pytest runs two workers (one per core), so one torch thread each by default; the suite must
    also pass with another count (``GENPO_TEST_THREADS=2``), since float results depend on it."""
    torch.set_num_threads(TEST_THREADS)
    yield


# Flow networks small enough for fast likelihood and estimator tests.
SMALL_FLOW_NETWORKS = [
    "HIDDEN_SIZES = (16, 16)",
    "velocity_network.mlp.hidden_sizes = (16, 16)",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
    "time_embedding.sinusoidal.out_dim = 4",
]


# --------------------------------------------------------------------------- tiny training runs
# A Pendulum run small enough for a test: 16 envs x 8 steps, 2 epochs x 2 minibatches, 16-wide
# networks; episodes of 12 steps so that returns are logged and episodes straddle iterations.
GENPO_CONFIG = "tasks/pendulum.gin"
GAUSSIAN_CONFIG = "tasks/pendulum_gaussian.gin"
TINY_BINDINGS = (
    "genpo.build_env.num_envs = 16",
    "genpo.build_env.max_episode_steps = 12",
    "genpo.trainer.steps_per_env = 8",
    "genpo.trainer.epochs = 2",
    "genpo.trainer.minibatches = 2",
    "genpo.run.iterations = 2",
    "velocity_network.mlp.hidden_sizes = (16,)",
    "critic.mlp.hidden_sizes = (16,)",
    "time_embedding.sinusoidal.hidden_sizes = (8,)",
    "actor.gaussian.hidden_sizes = (16,)",
)


@pytest.fixture
def make_tiny_experiment():
    """``make(run_dir, config=GENPO_CONFIG, extra=())`` -> (trainer, settings) of a tiny Pendulum run.

    Clears gin first, so a test can build several runs in a row.
    """
    from genpo.builders import new_experiment

    def make(run_dir, config=GENPO_CONFIG, extra=()):
        gin.clear_config()
        return new_experiment(run_dir, [config], [*TINY_BINDINGS, *extra])

    return make


@pytest.fixture
def train_straight_and_resumed(make_tiny_experiment):
    """``run(tmp_path, config=GENPO_CONFIG, extra=(), iterations=4)`` -> (uninterrupted, resumed) trainers.

    The same tiny run twice: in one go in ``tmp_path/a``, and in ``tmp_path/b`` stopped at half the
    iterations, reloaded from its checkpoint and finished, so a test can compare the two exactly.
    """
    from genpo.builders import resume_experiment

    def run(tmp_path, config=GENPO_CONFIG, extra=(), iterations=4):
        uninterrupted, _ = make_tiny_experiment(tmp_path / "a", config, extra)
        uninterrupted.train(iterations, quiet=True)
        first_half, _ = make_tiny_experiment(tmp_path / "b", config, extra)
        first_half.train(iterations // 2, quiet=True)
        gin.clear_config()
        resumed, _, _ = resume_experiment(tmp_path / "b")
        resumed.train(iterations - iterations // 2, quiet=True)
        return uninterrupted, resumed

    return run


def first_minibatch(trainer):
    """The first minibatch the trainer's update would see: a fresh rollout, GAE, flattened, shuffled."""
    trainer.actor.eval()
    rollout, _ = trainer.collector.collect(1)
    trainer.advantage(rollout)
    trainer.actor.train()
    batch = rollout.exclude("next").reshape(-1)
    size = batch.shape[0] // trainer.settings.minibatches
    return batch[torch.randperm(batch.shape[0])[:size]]
