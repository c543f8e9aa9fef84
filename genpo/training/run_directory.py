"""A run directory's lifecycle: created once and never silently reused, its config fingerprinted,
its iteration target recorded, config drift refused on resume.

``run.json`` records what a resume needs to know about the run as a whole: which trainer wrote it,
the SHA-256 of the ``config.gin`` it was trained with, and the iteration it is meant to reach (the
config's budget, moved on by ``--resume DIR --iterations N``). Text only: gin stays in the builders.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from pathlib import Path

import attrs

from genpo.training.atomic_files import atomic_write_text

CONFIG_FILE = "config.gin"
OPERATIVE_CONFIG_FILE = "operative_config.gin"
RUN_RECORD_FILE = "run.json"
CONFIG_CHANGES_FILE = "config_changes.md"
CHECKPOINT_DIR = "checkpoints"


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (taken, not a run, config changed, finished)."""


def config_fingerprint(config_text: str) -> str:
    return hashlib.sha256(config_text.encode()).hexdigest()


@attrs.frozen
class RunRecord:
    trainer: str
    config_sha256: str
    target_iterations: int

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        path = Path(run_dir) / RUN_RECORD_FILE
        try:
            data = json.loads(path.read_text())
            return cls(str(data["trainer"]), str(data["config_sha256"]), int(data["target_iterations"]))
        except FileNotFoundError:
            raise RunDirectoryError(f"{run_dir} is not a genpo run directory (no {RUN_RECORD_FILE})") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise RunDirectoryError(f"{path} is damaged ({type(error).__name__}: {error})") from None

    def write(self, run_dir: Path) -> None:
        """Write the record's fields, keeping the other entries of an existing ``run.json`` (its provenance)."""
        path = Path(run_dir) / RUN_RECORD_FILE
        try:
            kept = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            kept = {}
        kept = kept if isinstance(kept, dict) else {}
        atomic_write_text(path, json.dumps({**kept, **attrs.asdict(self)}, indent=2))


def update_run_entries(run_dir: Path, update) -> dict:
    """Rewrite ``run.json`` with ``update(entries)`` applied to its entries (used for what lives beside the
    record: provenance, a logger's run id); returns the new entries."""
    path = Path(run_dir) / RUN_RECORD_FILE
    entries = json.loads(path.read_text())
    update(entries)
    atomic_write_text(path, json.dumps(entries, indent=2))
    return entries


def start_run(run_dir: Path, *, trainer: str, config_text: str, operative_text: str, target_iterations: int) -> RunRecord:
    """Write a new run's ``config.gin``, ``operative_config.gin`` and ``run.json``."""
    atomic_write_text(run_dir / CONFIG_FILE, config_text)
    atomic_write_text(run_dir / OPERATIVE_CONFIG_FILE, operative_text)
    record = RunRecord(trainer, config_fingerprint(config_text), target_iterations)
    record.write(run_dir)
    return record


def read_config(run_dir: str | Path) -> tuple[Path, RunRecord]:
    """The run's ``config.gin`` path and record; a folder that is not a run is one clear error."""
    run_dir = Path(run_dir)
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise RunDirectoryError(f"{run_dir} is not a genpo run directory (no {CONFIG_FILE})")
    return config, RunRecord.read(run_dir)


def config_changed(run_dir: Path, record: RunRecord) -> bool:
    return config_fingerprint((run_dir / CONFIG_FILE).read_text()) != record.config_sha256


def refuse_config_change(run_dir: Path) -> None:
    raise RunDirectoryError(
        f"{run_dir / CONFIG_FILE} was edited after the run started (its SHA-256 differs from {RUN_RECORD_FILE}): "
        "resume refused; pass --allow-config-change to continue under the edited config "
        f"(the change is recorded in {CONFIG_CHANGES_FILE} and {OPERATIVE_CONFIG_FILE}), or restore the file"
    )


def accept_config_change(run_dir: Path, record: RunRecord, iteration: int, old_operative: str, new_operative: str) -> RunRecord:
    """Record an allowed config edit: the operative-config diff appended to ``config_changes.md``,
    the new operative config (with a header naming the change) and the new fingerprint."""
    diff = "".join(
        difflib.unified_diff(
            old_operative.splitlines(keepends=True),
            new_operative.splitlines(keepends=True),
            fromfile="operative config before",
            tofile="operative config after",
        )
    )
    diff = diff or "(no operative value changed)\n"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    entry = f"## resumed at iteration {iteration} under an edited config.gin ({stamp})\n\n```diff\n{diff}```\n\n"
    changes = run_dir / CONFIG_CHANGES_FILE
    atomic_write_text(changes, (changes.read_text() if changes.is_file() else "") + entry)
    header = f"# config.gin was edited; from iteration {iteration} on these values apply (see {CONFIG_CHANGES_FILE})\n"
    atomic_write_text(run_dir / OPERATIVE_CONFIG_FILE, header + new_operative)
    updated = attrs.evolve(record, config_sha256=config_fingerprint((run_dir / CONFIG_FILE).read_text()))
    updated.write(run_dir)
    return updated


def iterations_to_run(
    run_dir: Path, record: RunRecord, iteration: int, more: int | None, *, write: bool = True
) -> tuple[int, RunRecord]:
    """How many iterations a resume runs: ``more`` (>= 1) beyond ``iteration`` (the new target is
    written to ``run.json`` when ``write``: by rank 0 alone in a data-parallel run), or what is left
    of the recorded target (0 for a run that already reached it)."""
    if more is not None:
        if more < 1:
            raise RunDirectoryError(f"--iterations with --resume is how many more to train: must be >= 1, got {more}")
        record = attrs.evolve(record, target_iterations=iteration + more)
        if write:
            record.write(run_dir)
        return more, record
    return max(0, record.target_iterations - iteration), record
