"""genpo.train / genpo.resume / genpo.Run, and docs/python_api.md's example, executed as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import GENPO_CONFIG, TINY_BINDINGS

import genpo
from genpo.training.run_directory import RunDirectoryError

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    output = capsys.readouterr().out
    assert "deterministic policy: " in output and "return " in output
    run = genpo.Run(tmp_path / "runs" / "api-demo")
    assert run.provenance["command"].startswith("genpo.train('tasks/pendulum.gin', bindings=[")
    assert run.record["resumes"][0]["provenance"]["command"] == "genpo.resume('runs/api-demo', iterations=1)"


def test_train_matches_the_command_line_run_of_the_same_seed(tmp_path):
    from genpo.cli import main

    api_run = genpo.train(GENPO_CONFIG, bindings=TINY_BINDINGS, out=tmp_path / "api", seed=3, iterations=2)
    argv = ["train", GENPO_CONFIG, "--out", str(tmp_path / "cli"), "--seed", "3", "--iterations", "2", "--quiet"]
    assert main([*argv, *[item for binding in TINY_BINDINGS for item in ("--gin", binding)]]) == 0
    cli_rows = genpo.Run(tmp_path / "cli").metrics
    keys = ("iteration", "env_steps", "return_mean", "policy_loss", "value_loss")
    assert repr([[row[key] for key in keys] for row in api_run.metrics]) == repr([[row[key] for key in keys] for row in cli_rows])
    assert api_run.summary["iterations"] == 2 and "run.seed = 3" in api_run.config


def test_run_refuses_a_folder_that_is_not_a_run_and_dataframe_names_pandas(tmp_path, make_tiny_experiment):
    with pytest.raises(RunDirectoryError, match="is not a genpo run directory"):
        genpo.Run(tmp_path)
    make_tiny_experiment(tmp_path / "run")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="Run.dataframe needs pandas"):
            genpo.Run(tmp_path / "run").dataframe()
    else:
        assert list(genpo.Run(tmp_path / "run").dataframe().columns) == []
