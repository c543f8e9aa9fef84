"""A run's provenance in run.json: code, packages, CPU, threads, precision, device, command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gin
import pytest
import torch

from genpo.builders.experiment import resume_experiment
from genpo.components.networks.cpu_precision import resolve_autocast_dtype
from genpo.training.provenance import (
    PACKAGED_GIN,
    comparison_key,
    command_line,
    git_state,
    invocation,
    read_provenance,
    relative_path,
)
from genpo.training.run_directory import RunRecord


def test_new_run_records_provenance_without_machine_paths(make_tiny_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    with invocation(command_line(["genpo", "train", str(tmp_path / "my.gin"), f"--out={tmp_path / 'run'}"])):
        make_tiny_experiment(tmp_path / "run", extra=["velocity_network.mlp.autocast_dtype = 'bfloat16'", "genpo.run.num_threads = 1"])
    text = (tmp_path / "run" / "run.json").read_text()
    provenance = json.loads(text)["provenance"]
    assert provenance["command"] == "genpo train my.gin --out=run"
    assert provenance["precision"] == {"actor.flow.velocity_network": "bfloat16", "critic": "float32"}
    assert (provenance["torch_threads"], provenance["threads_requested"], provenance["device"]) == (1, 1, "cpu")
    assert provenance["versions"]["torch"] == torch.__version__
    assert set(provenance["versions"]) >= {"python", "torchrl", "tensordict", "gin", "mujoco", "rsl_rl"}
    assert provenance["cpu"]["model"]
    import genpo

    assert provenance["genpo"] == genpo.__version__
    assert str(tmp_path) not in text and str(Path.home()) not in text


def test_auto_precision_is_recorded_as_what_it_resolved_to(make_tiny_experiment, tmp_path):
    make_tiny_experiment(tmp_path / "run", extra=["velocity_network.mlp.autocast_dtype = 'auto'"])
    resolved = resolve_autocast_dtype("auto", "cpu") or "float32"
    assert read_provenance(tmp_path / "run")["precision"]["actor.flow.velocity_network"] == f"{resolved} (auto)"


def test_resume_adds_its_provenance_and_keeps_the_record(make_tiny_experiment, tmp_path):
    trainer, _ = make_tiny_experiment(tmp_path / "run")
    trainer.train(1, quiet=True)
    started = read_provenance(tmp_path / "run")
    gin.clear_config()
    with invocation("genpo train --resume run"):
        resume_experiment(tmp_path / "run")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["provenance"] == started
    assert [entry["iteration"] for entry in record["resumes"]] == [1]
    assert record["resumes"][0]["provenance"]["command"] == "genpo train --resume run"
    # rewriting the record (a new iteration target) keeps the provenance
    RunRecord.read(tmp_path / "run").write(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["resumes"] == record["resumes"]


def test_git_state_stores_uncommitted_changes_and_is_absent_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    info, diff = git_state(repo)
    assert (info["dirty"], diff) == (False, "")
    (repo / "a.py").write_text("x = 2\n")
    info, diff = git_state(repo)
    assert info["dirty"] and "+x = 2" in diff and len(info["commit"]) == 40


def test_relative_path_rewrites_absolute_paths_only(tmp_path):
    assert relative_path(str(tmp_path / "a" / "b.gin"), tmp_path) == os.path.join("a", "b.gin")
    assert relative_path(f"--out={tmp_path / 'r'}", tmp_path) == "--out=r"
    assert relative_path("tasks/pendulum.gin", tmp_path) == "tasks/pendulum.gin"
    assert relative_path(str(PACKAGED_GIN / "tasks" / "hopper.gin"), tmp_path) == os.path.join("tasks", "hopper.gin")


@pytest.mark.parametrize(
    ("other", "differs"),
    [({}, False), ({"precision": {"actor": "bfloat16"}}, True), ({"cpu": {"model": "AMD EPYC", "flags": {}}}, True)],
)
def test_comparison_key_tells_cpu_and_precision_apart(other, differs):
    base = {"cpu": {"model": "Intel Xeon", "flags": {"avx512_bf16": True}}, "precision": {"actor": "float32"}}
    assert (comparison_key(base) != comparison_key({**base, **other})) is differs
