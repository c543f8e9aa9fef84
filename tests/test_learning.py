"""Learning tests: small fixed budgets that must actually learn (asserted on return, never on time)."""

import math

import pytest

from genpo.builders import new_experiment
from genpo.training.run_logger import read_metrics

PENDULUM_SOLVED = -250.0


def last_finite_return(rows: list[dict]) -> float:
    return [row["return_mean"] for row in rows if math.isfinite(row["return_mean"])][-1]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tasks/pendulum.gin", "tasks/pendulum_gaussian.gin"])
def test_pendulum_swing_up_is_learned_within_budget(tmp_path, config):
    """Random play scores about -1200; both policies must swing up and balance within 60 iterations."""
    trainer, _ = new_experiment(tmp_path / "run", [config], ["genpo.run.seed = 0"])
    summary = trainer.train(60, quiet=True)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    first = [row["return_mean"] for row in rows if math.isfinite(row["return_mean"])][0]
    assert first < -900, f"the first episodes should look random, got {first:.1f}"
    assert last_finite_return(rows) >= PENDULUM_SOLVED, summary
