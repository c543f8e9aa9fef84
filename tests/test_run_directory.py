"""Run directories through the CLI: never silently reused, consistent after resume, config drift
refused, checkpoint history, devices, and output a person can read."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil

import gin
import matplotlib.axes
import pytest
import torch
from conftest import GENPO_CONFIG, TINY_BINDINGS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genpo.cli import main
from genpo.training.checkpoint import load_checkpoint
from genpo.training.run_logger import read_metrics

TIMING_COLUMNS = {"wall_time", "env_steps_per_s", "collection_time", "update_time"}


def run_cli(*argv) -> tuple[int, str, str]:
    """``genpo ARGV`` in this process with a clean gin config: (exit code, stdout, stderr)."""
    gin.clear_config()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(argument) for argument in argv])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
            err.write(str(exit_.code))
    gin.clear_config()
    return code, out.getvalue(), err.getvalue()


def tiny(*extra: str) -> list[str]:
    return [argument for binding in (*TINY_BINDINGS, *extra) for argument in ("--gin", binding)]


def train(run_dir, iterations: int, *extra: str) -> tuple[int, str, str]:
    return run_cli("train", GENPO_CONFIG, "--out", run_dir, "--iterations", iterations, "--quiet", *tiny(*extra))


def rows_without_timing(run_dir) -> list[dict]:
    """metrics.csv without timing columns, NaN as None (so that rows compare equal)."""
    return [
        {key: None if math.isnan(value) else value for key, value in row.items() if key not in TIMING_COLUMNS}
        for row in read_metrics(run_dir / "metrics.csv")
    ]


def tensorboard_steps(run_dir, tag: str = "return_mean") -> list[int]:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)] if tag in accumulator.Tags()["scalars"] else []


# ------------------------------------------------------------------------------ new run vs existing run
def test_out_on_an_existing_run_is_refused_naming_resume_and_overwrite(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 2)[0] == 0
    before = (run_dir / "metrics.csv").read_text(), (run_dir / "checkpoints" / "latest.pt").read_bytes()
    code, _, err = train(run_dir, 1, "genpo.trainer.epochs = 1")
    assert code == 2
    assert "already holds a run" in err and f"--resume {run_dir}" in err and "--overwrite" in err
    assert ((run_dir / "metrics.csv").read_text(), (run_dir / "checkpoints" / "latest.pt").read_bytes()) == before


def test_overwrite_starts_clean(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 3)[0] == 0
    code, _, _ = run_cli("train", GENPO_CONFIG, "--out", run_dir, "--iterations", 1, "--quiet", "--overwrite", *tiny("genpo.trainer.epochs = 1"))
    assert code == 0
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1.0]
    assert "trainer.epochs = 1" in (run_dir / "config.gin").read_text()
    assert tensorboard_steps(run_dir, "lr") == [128]


def test_a_folder_holding_only_a_sweeps_logs_takes_a_new_run_and_keeps_them(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "sweep_stdout.log").write_text("a sweep's log")
    assert train(run_dir, 1)[0] == 0
    assert (run_dir / "sweep_stdout.log").is_file()


# ------------------------------------------------------------------------------ resume consistency
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A 4-iteration run with a checkpoint every iteration: the reference for resumed runs."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert train(run_dir, 4, "genpo.trainer.checkpoint_interval = 1")[0] == 0
    return run_dir


def test_resume_drops_every_record_past_the_checkpoint(uninterrupted, tmp_path):
    """A crash after iteration 3 whose last checkpoint is iteration 2: the resumed run's CSV,
    TensorBoard and summary hold iterations 1-4 once each and equal an uninterrupted run's."""
    run_dir = tmp_path / "run"
    assert train(run_dir, 3, "genpo.trainer.checkpoint_interval = 1")[0] == 0
    checkpoints = run_dir / "checkpoints"
    shutil.copyfile(checkpoints / "iteration_0000002.pt", checkpoints / "latest.pt")  # iteration 3 "never saved"
    code, out, _ = run_cli("train", "--resume", run_dir, "--iterations", 2, "--quiet")
    assert code == 0 and f"run directory: {run_dir}" in out.splitlines()
    assert rows_without_timing(run_dir) == rows_without_timing(uninterrupted)
    assert tensorboard_steps(run_dir, "lr") == [128, 256, 384, 512]
    summary = json.loads((run_dir / "summary.json").read_text())
    reference = json.loads((uninterrupted / "summary.json").read_text())
    assert (summary["iterations"], summary["final_return"], summary["best_return"]) == (
        reference["iterations"],
        reference["final_return"],
        reference["best_return"],
    )


def test_resume_without_iterations_finishes_the_budget_then_says_it_is_finished(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 3, "genpo.trainer.checkpoint_interval = 1")[0] == 0
    shutil.copyfile(run_dir / "checkpoints" / "iteration_0000001.pt", run_dir / "checkpoints" / "latest.pt")
    assert run_cli("train", "--resume", run_dir, "--quiet")[0] == 0
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1.0, 2.0, 3.0]
    code, out, _ = run_cli("train", "--resume", run_dir, "--quiet")
    assert code == 0 and "already finished its 3 iterations" in out and "--iterations N" in out
    assert len(read_metrics(run_dir / "metrics.csv")) == 3


def test_resume_iterations_means_more_and_must_be_positive(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 2)[0] == 0
    code, _, err = run_cli("train", "--resume", run_dir, "--iterations", 0, "--quiet")
    assert code == 2 and "must be >= 1, got 0" in err
    assert run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet")[0] == 0
    assert json.loads((run_dir / "run.json").read_text())["target_iterations"] == 3
    assert run_cli("train", "--resume", run_dir, "--quiet")[1].startswith(f"{run_dir} already finished its 3")


def test_a_run_killed_before_its_first_periodic_checkpoint_resumes_from_iteration_0(tmp_path):
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    assert train(reference, 2)[0] == 0
    assert train(run_dir, 2)[0] == 0
    shutil.copyfile(run_dir / "checkpoints" / "iteration_0000000.pt", run_dir / "checkpoints" / "latest.pt")
    assert run_cli("train", "--resume", run_dir, "--quiet")[0] == 0
    assert rows_without_timing(run_dir) == rows_without_timing(reference)


# ------------------------------------------------------------------------------ config drift
def edit_config(run_dir, old: str, new: str) -> None:
    config = run_dir / "config.gin"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def test_an_edited_config_is_refused_then_recorded_when_allowed(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 1)[0] == 0
    edit_config(run_dir, "trainer.epochs = 2", "trainer.epochs = 3")
    code, _, err = run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet")
    assert code == 2 and "was edited after the run started" in err and "--allow-config-change" in err
    assert len(read_metrics(run_dir / "metrics.csv")) == 1

    assert run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet", "--allow-config-change")[0] == 0
    changes = (run_dir / "config_changes.md").read_text()
    assert "resumed at iteration 1" in changes
    assert re.search(r"^-.*epochs = 2$", changes, re.M) and re.search(r"^\+.*epochs = 3$", changes, re.M)
    operative = (run_dir / "operative_config.gin").read_text()
    assert operative.startswith("# config.gin was edited; from iteration 1 on") and "epochs = 3" in operative
    # the edit is now the run's config: a plain resume goes on
    assert run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet")[0] == 0


def test_a_shape_changing_edit_fails_in_one_line_naming_the_entry(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 1)[0] == 0
    edit_config(run_dir, "critic.mlp.hidden_sizes = (16,)", "critic.mlp.hidden_sizes = (24,)")
    code, _, err = run_cli("train", "--resume", run_dir, "--quiet", "--allow-config-change")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "does not fit this config: critic entry" in err and "[16" in err and "[24" in err


# ------------------------------------------------------------------------------ devices
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_an_unavailable_device_is_one_line(tmp_path):
    code, _, err = run_cli("train", GENPO_CONFIG, "--out", tmp_path / "run", "--device", "cuda", "--quiet", *tiny())
    assert code == 2 and err.strip() == "genpo train: error: device 'cuda': CUDA is not available (this torch build has no CUDA support); use 'cpu'"
    assert not (tmp_path / "run").exists()
    code, _, err = run_cli("train", GENPO_CONFIG, "--out", tmp_path / "run", "--device", "gpu", "--quiet", *tiny())
    assert code == 2 and "device 'gpu' is not a torch device" in err


def test_device_flag_reaches_the_run_and_evaluate(tmp_path):
    run_dir = tmp_path / "run"
    code, _, _ = run_cli("train", GENPO_CONFIG, "--out", run_dir, "--iterations", 1, "--quiet", "--device", "cpu", *tiny())
    assert code == 0 and "run.device = 'cpu'" in (run_dir / "config.gin").read_text()
    code, out, _ = run_cli("evaluate", run_dir, "--episodes", 2, "--device", "cpu")
    default_code, default_out, _ = run_cli("evaluate", run_dir, "--episodes", 2)
    assert code == default_code == 0 and json.loads(out) == json.loads(default_out)  # the run's device is cpu
    if not torch.cuda.is_available():
        code, _, err = run_cli("evaluate", run_dir, "--episodes", 2, "--device", "cuda")
        assert code == 2 and "CUDA is not available" in err


# ------------------------------------------------------------------------------ checkpoint history
def test_keeps_the_last_k_and_the_best_by_training_return(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, 6, "genpo.trainer.checkpoint_interval = 2", "genpo.trainer.keep_checkpoints = 2")[0] == 0
    checkpoints = run_dir / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("iteration_*.pt")) == ["iteration_0000004.pt", "iteration_0000006.pt"]
    rows = read_metrics(run_dir / "metrics.csv")

    def interval_return(last: int) -> float:
        interval = [row for row in rows if last - 2 < row["iteration"] <= last and row["episodes"] > 0]
        return sum(row["return_mean"] * row["episodes"] for row in interval) / sum(row["episodes"] for row in interval)

    best_iteration = max((2, 4, 6), key=interval_return)
    best = json.loads((checkpoints / "best.json").read_text())
    assert best["iteration"] == best_iteration
    assert best["training_return"] == pytest.approx(interval_return(best_iteration))
    assert load_checkpoint(checkpoints / "best.pt")["iteration"] == best_iteration

    code, out, _ = run_cli("evaluate", run_dir, "--episodes", 2, "--checkpoint", "best")
    assert code == 0 and json.loads(out)["checkpoint_iteration"] == best_iteration
    code, out, _ = run_cli("evaluate", run_dir, "--episodes", 2, "--checkpoint", checkpoints / "iteration_0000004.pt")
    assert code == 0 and json.loads(out)["checkpoint_iteration"] == 4
    code, _, err = run_cli("evaluate", run_dir, "--checkpoint", "iteration_0000002.pt")
    assert code == 2 and "no checkpoint 'iteration_0000002.pt'" in err and "iteration_0000004.pt" in err


# ------------------------------------------------------------------------------ readable output
def test_before_any_episode_ends_the_curve_and_log_say_so(tmp_path, monkeypatch):
    texts = []
    original = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, *a, **k: texts.append(a[2]) or original(self, *a, **k))
    run_dir = tmp_path / "run"
    code, out, _ = train(run_dir, 1, "genpo.build_env.max_episode_steps = 200")
    assert code == 0
    assert "return no finished episode yet" in out
    assert texts == ["no finished episode yet after 128 env steps"]
    assert json.loads((run_dir / "summary.json").read_text())["final_return"] is None
