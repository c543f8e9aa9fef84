"""genpo.trainer.evaluation_interval: deterministic evaluation during training, best.pt by its return,
exact resume, and training left as it is without evaluation."""

from __future__ import annotations

import json
import math

from test_trainer import TIMING_COLUMNS, same_float

from genpo.training.run_logger import read_metrics

EVALUATION = ["genpo.trainer.evaluation_interval = 1", "genpo.trainer.evaluation_episodes = 3"]
EVALUATION_COLUMNS = {"eval_return_mean", "eval_return_std", "eval_episode_length_mean", "eval_time"}
TIMINGS = TIMING_COLUMNS | {"eval_time"}


def assert_same_results(rows, other_rows):
    """Every non-timing value of ``other_rows`` equals ``rows``' (NaN equal to NaN)."""
    assert len(rows) == len(other_rows)
    for row, other in zip(rows, other_rows, strict=True):
        different = {key: (row[key], value) for key, value in other.items() if key not in TIMINGS and not same_float(row[key], value)}
        assert not different, f"iteration {row['iteration']}: {different}"


def test_evaluation_is_logged_each_interval_resumes_exactly_and_leaves_training_unchanged(
    tmp_path, make_tiny_experiment, train_straight_and_resumed
):
    train_straight_and_resumed(tmp_path, extra=EVALUATION)
    without, _ = make_tiny_experiment(tmp_path / "c")
    without.train(4, quiet=True)

    rows = read_metrics(tmp_path / "a" / "metrics.csv")
    resumed_rows = read_metrics(tmp_path / "b" / "metrics.csv")
    assert list(resumed_rows[0]) == list(rows[0])
    assert_same_results(rows, resumed_rows)
    evaluations = [row["eval_return_mean"] for row in rows]
    assert all(math.isfinite(value) and value < 0 for value in evaluations)  # Pendulum rewards are costs
    assert [row["eval_episode_length_mean"] for row in rows] == [12.0] * 4
    assert len(set(evaluations)) > 1  # the policy (and the eval env's initial states) move on
    rows_without = read_metrics(tmp_path / "c" / "metrics.csv")
    assert not EVALUATION_COLUMNS & set(rows_without[0])
    assert_same_results(rows, rows_without)


def test_best_checkpoint_is_chosen_by_the_evaluation_return(tmp_path, make_tiny_experiment):
    trainer, _ = make_tiny_experiment(tmp_path / "run", extra=[*EVALUATION, "genpo.trainer.checkpoint_interval = 1"])
    trainer.train(4, quiet=True)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    best = max(rows, key=lambda row: row["eval_return_mean"])
    record = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert record == {"iteration": int(best["iteration"]), "evaluation_return": best["eval_return_mean"]}
