"""genpo.run.logger = 'wandb': config, provenance, metrics, learning curve and summary go to a W&B run that a
resume continues, and genpo play's video joins it; checked offline (WANDB_MODE=offline) by reading the runs'
transaction logs."""

from __future__ import annotations

import json
import struct
import time

import gin
import pytest
from conftest import GENPO_CONFIG, TINY_BINDINGS

from genpo.builders import new_experiment, resume_experiment
from genpo.deployment.play import play_run
from genpo.training.run_logger import read_metrics
from genpo.training.wandb_logger import gin_bindings

wandb = pytest.importorskip("wandb")
wandb_proto = pytest.importorskip("wandb.proto.wandb_internal_pb2")

BLOCK = 32768  # the transaction log is a LevelDB-style log: 32 KiB blocks of records with 7-byte headers
FULL, LAST = 1, 4


def log_records(path):
    """The protobuf records of a W&B ``.wandb`` transaction log."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        _, length, kind = struct.unpack("<IHB", data[position : position + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (FULL, LAST):
            record = wandb_proto.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def next_second():
    """W&B names an offline run's folder by the second it started in: runs of one id need distinct seconds."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def offline_runs(run_dir, run_id):
    return sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))


def history_all(records):
    return [
        {".".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]


def history(records):
    """The logged metrics rows (the learning curve is logged without an iteration)."""
    return [row for row in history_all(records) if "iteration" in row]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))


def test_a_run_and_its_resume_log_to_one_wandb_run(tmp_path, offline):
    run_dir = tmp_path / "run"
    bindings = [*TINY_BINDINGS, "genpo.run.logger = 'wandb'", "genpo.wandb.project = 'demo'"]
    trainer, _ = new_experiment(run_dir, [GENPO_CONFIG], bindings)
    trainer.train(2, quiet=True)
    gin.clear_config()
    next_second()
    resumed, _, _ = resume_experiment(run_dir)
    resumed.train(1, quiet=True)
    next_second()
    played = play_run(run_dir, video=tmp_path / "episode.gif", report=None)
    wandb.teardown()  # W&B's service writes the last run's log out when it stops

    stored = json.loads((run_dir / "run.json").read_text())["wandb"]
    assert stored["project"] == "demo"
    first, second, play = (log_records(path) for path in offline_runs(run_dir, stored["id"]))
    assert played["wandb_run"] == stored["id"]
    assert any("play_video.path" in row for row in history_all(play))
    run = next(record.run for record in first if record.WhichOneof("record_type") == "run")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["gin"]["run.logger"] == "'wandb'"
    assert config["provenance"] == json.loads((run_dir / "run.json").read_text())["provenance"]
    metrics = read_metrics(run_dir / "metrics.csv")
    logged = history(first) + history(second)
    assert [row["iteration"] for row in logged] == [1, 2, 3]
    assert [row["policy_loss"] for row in logged] == pytest.approx([row["policy_loss"] for row in metrics])
    assert any("learning_curve.path" in row for row in history_all(first) + history_all(second))
    exits = [record.exit for record in first + second if record.WhichOneof("record_type") == "exit"]
    assert len(exits) == 2


def test_gin_bindings_reads_a_written_config_joining_wrapped_values():
    text = "# Parameters for run:\nrun.iterations = 3\nrun.seed = 0\n\nmlp.hidden_sizes = \\\n    (64, 64)\n"
    assert gin_bindings(text) == {"run.iterations": "3", "run.seed": "0", "mlp.hidden_sizes": "(64, 64)"}


def test_an_unknown_logger_fails_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match="genpo.run: logger must be one of 'tensorboard', 'wandb', got 'neptune'"):
        new_experiment(tmp_path / "run", [GENPO_CONFIG], [*TINY_BINDINGS, "genpo.run.logger = 'neptune'"])
