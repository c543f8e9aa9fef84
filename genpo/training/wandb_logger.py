"""Weights & Biases logging of a run: its config, provenance, per-iteration metrics, learning curve and summary.

Chosen with ``genpo.run.logger = 'wandb'`` (options under ``genpo.wandb.*``); ``metrics.csv`` and
TensorBoard are written as always. The W&B run id is stored in ``run.json`` (``wandb``), so a resumed
run continues the same W&B run. W&B's history cannot be cut: a resume from a checkpoint older than the
last logged iteration logs the repeated iterations again (``metrics.csv`` and TensorBoard are cut back).
``WANDB_MODE=offline`` writes the run under ``RUN_DIR/wandb/`` for a later ``wandb sync``.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from genpo.training.run_directory import CONFIG_FILE, RUN_RECORD_FILE, update_run_entries
from genpo.training.run_logger import CURVE_FILE

RECORD_KEY = "wandb"


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise ImportError(
            "genpo.run.logger = 'wandb' needs the wandb package (the wandb extra: pip install -e '.[wandb]')"
        ) from None
    return wandb


def gin_bindings(config_text: str) -> dict[str, str]:
    """``parameter -> value`` (as written) of a ``config.gin`` written by gin, for W&B's config table;
    a value continued over several lines (``\\`` and indented lines) is joined into one."""
    bindings: dict[str, str] = {}
    key = None
    for line in config_text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and key is not None:
            bindings[key] = f"{bindings[key]} {line.strip()}".strip()
            continue
        name, separator, value = line.partition(" = ")
        key = name.strip() if separator else None
        if key is not None:
            bindings[key] = value.strip().removesuffix("\\").strip()
    return bindings


class WandbLogger:
    """Opens (or reopens) the run's W&B run in :meth:`start`, logs each metrics row, and at :meth:`finish`
    the learning curve and the summary."""

    def __init__(self, *, project: str = "genpo", entity: str | None = None, group: str | None = None, tags: Sequence[str] = ()):
        self.wandb = import_wandb()
        self.project, self.entity, self.group, self.tags = project, entity, group, tuple(tags)
        self.run = None
        self.run_dir: Path | None = None

    def start(self, run_dir: Path, start_iteration: int) -> None:
        self.run_dir = Path(run_dir)
        entries = json.loads((self.run_dir / RUN_RECORD_FILE).read_text())
        stored = entries.get(RECORD_KEY)
        run_id = stored["id"] if stored else secrets.token_hex(6)
        if not stored:
            record = {"id": run_id, "project": self.project, "entity": self.entity}
            update_run_entries(self.run_dir, lambda entries: entries.update({RECORD_KEY: record}))
        config = {
            "trainer": entries.get("trainer"),
            "target_iterations": entries.get("target_iterations"),
            "gin": gin_bindings((self.run_dir / CONFIG_FILE).read_text()),
            "provenance": entries.get("provenance"),
        }
        self.run = self.wandb.init(
            project=stored["project"] if stored else self.project,
            entity=stored["entity"] if stored else self.entity,
            group=self.group,
            tags=list(self.tags) or None,
            id=run_id,
            resume="allow",
            name=self.run_dir.name,
            dir=str(self.run_dir),
            config=config,
            allow_val_change=True,
        )
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")
        if start_iteration:
            self.run.summary["resumed_at_iteration"] = start_iteration

    def log(self, metrics: Mapping[str, float]) -> None:
        self.run.log({key: value for key, value in metrics.items() if math.isfinite(value)})

    def finish(self, summary: Mapping | None, failed: bool = False) -> None:
        if self.run is None:
            return
        curve = self.run_dir / CURVE_FILE
        if curve.is_file():
            self.run.log({"learning_curve": self.wandb.Image(str(curve))})
        for key, value in (summary or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.run.summary[key] = value
        self.run.finish(exit_code=1 if failed else 0)
        self.run = None


def log_video(run_dir: str | Path, video: Path, checkpoint_iteration: int) -> str | None:
    """Add ``video`` (made by ``genpo play``) to the run's W&B run, when the run logs to W&B; returns the W&B
    run id, or None for a run without one."""
    run_dir = Path(run_dir)
    stored = json.loads((run_dir / RUN_RECORD_FILE).read_text()).get(RECORD_KEY)
    if not stored:
        return None
    wandb = import_wandb()
    run = wandb.init(
        project=stored["project"], entity=stored["entity"], id=stored["id"], resume="allow", dir=str(run_dir), name=run_dir.name
    )
    run.log({"play_video": wandb.Video(str(video), caption=f"checkpoint iteration {checkpoint_iteration}")})
    run.finish()
    return stored["id"]
