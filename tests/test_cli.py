"""The ``genpo`` command line: train, resume, evaluate, components, and its error exit code."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import gin
import pytest
from conftest import GENPO_CONFIG, TINY_BINDINGS

from genpo.cli import build_parser, main
from genpo.training.run_logger import read_metrics


def gin_arguments(bindings=TINY_BINDINGS):
    return [argument for binding in bindings for argument in ("--gin", binding)]


def run_cli(argv):
    """``main(argv)`` with a clean gin config; returns (exit code, stdout)."""
    gin.clear_config()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(argument) for argument in argv])
    gin.clear_config()
    return code, out.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-iteration run trained through the CLI: (run directory, exit code, stdout)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code, output = run_cli(["train", GENPO_CONFIG, "--out", run_dir, "--iterations", 2, "--quiet", *gin_arguments()])
    return run_dir, code, output


def evaluate(run_dir, capsys, *arguments):
    gin.clear_config()
    assert main(["evaluate", str(run_dir), "--episodes", "4", *arguments]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_prints_run_directory_curve_and_checkpoint(trained):
    run_dir, code, output = trained
    assert code == 0
    lines = output.splitlines()
    assert f"run directory: {run_dir}" in lines
    assert f"learning curve: {run_dir / 'learning_curve.png'}" in lines
    assert f"checkpoint: {run_dir / 'checkpoints' / 'latest.pt'}" in lines
    assert (run_dir / "learning_curve.png").is_file() and (run_dir / "checkpoints" / "latest.pt").is_file()
    summary = json.loads(output[output.index("{") :])
    assert (summary["iterations"], summary["env_steps"]) == (2, 2 * 16 * 8)
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1.0, 2.0]


def test_train_resume_appends_one_row(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    code, output = run_cli(["train", "--resume", run_dir, "--iterations", 1, "--quiet"])
    assert code == 0
    assert f"run directory: {run_dir}" in output.splitlines()
    rows = read_metrics(run_dir / "metrics.csv")
    assert [(row["iteration"], row["env_steps"]) for row in rows] == [(1.0, 128.0), (2.0, 256.0), (3.0, 384.0)]


def test_resume_refuses_new_config(trained):
    with pytest.raises(SystemExit, match="--gin cannot be given .the run's config.gin is reused"):
        main(["train", "--resume", str(trained[0]), "--gin", "genpo.trainer.epochs = 3"])


def test_evaluate_prints_json_and_zero_noise_is_deterministic(trained, capsys):
    run_dir = trained[0]
    first = evaluate(run_dir, capsys, "--noise", "zero")
    assert {"return_mean", "return_std", "episodes", "noise"} <= set(first)
    assert (first["episodes"], first["noise"], first["checkpoint_iteration"]) == (4, "zero", 2)
    assert first["return_mean"] < 0 and first["return_std"] >= 0  # Pendulum rewards are costs
    assert first["episode_length_mean"] == 12.0
    assert evaluate(run_dir, capsys, "--noise", "zero") == first


def test_evaluate_shows_the_provenance_of_the_run(trained, capsys):
    run_dir, _, _ = trained
    provenance = evaluate(run_dir, capsys)["provenance"]
    assert provenance["command"].startswith("genpo train tasks/pendulum.gin --out ")
    assert provenance["precision"]["critic"] == "float32" and provenance["cpu"]["model"]


def test_evaluate_random_noise_depends_on_seed(trained, capsys):
    run_dir = trained[0]
    seed_1 = evaluate(run_dir, capsys, "--noise", "random", "--seed", "1")
    assert seed_1["noise"] == "random"
    assert evaluate(run_dir, capsys, "--noise", "random", "--seed", "1") == seed_1
    assert evaluate(run_dir, capsys, "--noise", "random", "--seed", "2")["return_mean"] != seed_1["return_mean"]
    # same seed (same initial states), only the action noise differs from the zero-noise policy
    assert evaluate(run_dir, capsys, "--noise", "zero", "--seed", "1")["return_mean"] != seed_1["return_mean"]


def parse_components(output: str) -> dict[str, list[str]]:
    listing: dict[str, list[str]] = {}
    kind = None
    for line in output.splitlines():
        if re.fullmatch(r"\S+:", line):
            kind = line[:-1]
            listing[kind] = []
        elif line.startswith("  ") and kind is not None:
            listing[kind].append(line.split()[0])
    return listing


def test_components_lists_kinds_and_names(capsys):
    assert main(["components"]) == 0
    listing = parse_components(capsys.readouterr().out)
    assert {"actor", "coupling", "env", "loss", "lr_controller", "advantage", "compression"} <= set(listing)
    assert {"genpo", "leapfrog", "affine"} <= set(listing["coupling"])
    assert {"genpo", "gaussian"} <= set(listing["actor"])
    assert {"kl_adaptive", "fixed", "linear_decay"} <= set(listing["lr_controller"])
    assert "pendulum" in listing["env"]


def test_components_of_one_kind(capsys):
    assert main(["components", "coupling"]) == 0
    listing = parse_components(capsys.readouterr().out)
    assert list(listing) == ["coupling"]
    assert {"genpo", "leapfrog", "affine"} <= set(listing["coupling"])
    assert "pendulum" not in listing["coupling"]


def test_unknown_gin_binding_exits_2_naming_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", GENPO_CONFIG, "--out", str(run_dir), "--iterations", "1", "--quiet"]
    assert main([*argv, *gin_arguments(), "--gin", "genpo.trainer.epochz = 3"]) == 2
    captured = capsys.readouterr()
    assert "genpo train: error:" in captured.err
    assert "epochz" in captured.err
    assert not (run_dir / "metrics.csv").exists()


def test_components_of_unknown_kind_exits_2(capsys):
    assert main(["components", "couplings"]) == 2
    error = capsys.readouterr().err
    assert "unknown component kind 'couplings'" in error and "coupling" in error


def test_threads_flag_pins_the_count_in_the_config_and_a_resume_may_change_it(tmp_path, capsys):
    import torch

    run_dir = tmp_path / "run"
    code, output = run_cli(["train", GENPO_CONFIG, "--out", run_dir, "--iterations", 1, "--threads", 2, "--quiet", *gin_arguments()])
    assert code == 0 and "threads: 2 (pinned by genpo.run.num_threads)" in output.splitlines()
    assert "run.num_threads = 2" in (run_dir / "config.gin").read_text().splitlines()
    assert [row["threads"] for row in read_metrics(run_dir / "metrics.csv")] == [2.0]
    code, output = run_cli(["train", "--resume", run_dir, "--iterations", 1, "--threads", 1, "--quiet"])
    assert code == 0 and "threads: 1 (pinned by genpo.run.num_threads)" in output.splitlines()
    assert [row["threads"] for row in read_metrics(run_dir / "metrics.csv")] == [2.0, 1.0]
    torch.set_num_threads(1)


@pytest.mark.parametrize("bad", ["0", "two", "-3"])
def test_a_bad_threads_value_is_one_usage_line(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", GENPO_CONFIG, "--threads", bad])
    assert exit_info.value.code == 2
    assert f"--threads: an int >= 1 or 'auto', got '{bad}'" in capsys.readouterr().err


def test_plain_flags_are_recorded_as_their_gin_bindings(tmp_path):
    run_dir = tmp_path / "run"
    # 4 envs x 8 steps = 32 env steps an iteration: 70 env steps round up to 3 iterations
    argv = ["train", GENPO_CONFIG, "--out", run_dir, "--quiet", *gin_arguments(), "--num-envs", 4, "--env-steps", 70]
    code, output = run_cli([*argv, "--threads", 1])
    assert code == 0
    config = (run_dir / "config.gin").read_text()
    for binding in ("build_env.num_envs = 4", "run.env_steps = 70", "run.iterations = None", "run.num_threads = 1"):
        assert f"\n{binding}\n" in config
    assert json.loads((run_dir / "run.json").read_text())["target_iterations"] == 3
    assert [row["env_steps"] for row in read_metrics(run_dir / "metrics.csv")] == [32.0, 64.0, 96.0]


def test_iterations_and_env_steps_exclude_each_other_and_resume_refuses_a_new_budget_kind(trained, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", GENPO_CONFIG, "--iterations", "2", "--env-steps", "100"])
    assert "not allowed with argument --iterations" in capsys.readouterr().err
    for flag in ("--env-steps", "--num-envs"):
        with pytest.raises(SystemExit, match=f"{flag} cannot be given"):
            main(["train", "--resume", str(trained[0]), flag, "4"])


def test_a_config_with_two_budgets_fails_naming_both(tmp_path, capsys):
    argv = ["train", GENPO_CONFIG, "--out", str(tmp_path / "run"), *gin_arguments(), "--gin", "genpo.run.env_steps = 100"]
    assert main(argv) == 2
    assert "bind exactly one budget, genpo.run.iterations or genpo.run.env_steps" in capsys.readouterr().err


def test_a_non_mujoco_gymnasium_env_trains_resumes_with_reset_envs_and_plays(tmp_path, capsys):
    run_dir = tmp_path / "run"
    gym = ["--gin", "genpo.build_env.name = 'gym:Pendulum-v1'", "--gin", "genpo.trainer.checkpoint_interval = 1"]
    code, _ = run_cli(["train", GENPO_CONFIG, "--out", run_dir, "--iterations", 2, "--quiet", "--num-envs", 4, *gin_arguments(), *gym])
    assert code == 0
    capsys.readouterr()
    code, _ = run_cli(["train", "--resume", run_dir, "--iterations", 1, "--quiet"])
    assert code == 0
    assert "genpo train: gym:Pendulum-v1 cannot be snapshotted: the resumed run resets its envs" in capsys.readouterr().err
    rows = read_metrics(run_dir / "metrics.csv")
    assert [(row["iteration"], row["env_steps"]) for row in rows] == [(1.0, 32.0), (2.0, 64.0), (3.0, 96.0)]
    code, output = run_cli(["play", run_dir, "--episodes", 2])
    assert code == 0 and [line.split(", ")[-1] for line in output.splitlines()[:2]] == ["length 12", "length 12"]
    assert main(["play", str(run_dir), "--video", str(tmp_path / "a.gif")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("genpo play: error: play --video: no renderer for gym:Pendulum-v1") and "\n" not in error
