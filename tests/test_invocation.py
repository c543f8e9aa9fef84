"""The genpo command printed in "what to run next" hints works as typed from the user's directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from genpo import invocation


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    script = tmp_path / ".venv" / "bin" / "genpo"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    return script


def test_a_console_script_not_on_path_is_named_by_its_path_from_here(workdir, monkeypatch):
    monkeypatch.setattr(sys, "argv", [".venv/bin/genpo", "train"])
    monkeypatch.setattr(invocation.shutil, "which", lambda name: None)
    assert invocation.genpo_command() == ".venv/bin/genpo"


def test_the_console_script_on_path_is_plain_genpo(workdir, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(workdir), "train"])
    monkeypatch.setattr(invocation.shutil, "which", lambda name: str(workdir))
    assert invocation.genpo_command() == "genpo"


def test_another_genpo_on_path_does_not_stand_in_for_the_one_that_ran(workdir, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(workdir), "train"])
    monkeypatch.setattr(invocation.shutil, "which", lambda name: "/usr/local/bin/genpo")
    assert invocation.genpo_command() == ".venv/bin/genpo"


def test_python_dash_m_genpo_names_the_interpreter(workdir, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(Path(invocation.__file__).with_name("__main__.py")), "train"])
    monkeypatch.setattr(sys, "executable", str(workdir.with_name("python")))
    assert invocation.genpo_command() == ".venv/bin/python -m genpo"
    monkeypatch.setattr(sys, "executable", "/opt/python3.11/bin/python")
    assert invocation.genpo_command() == "/opt/python3.11/bin/python -m genpo"
