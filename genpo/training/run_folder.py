"""What genpo may do to a folder on disk: write a run into it, delete what it wrote there, write an output.

genpo deletes only what genpo wrote. A folder is used for a new run when it does not exist, is empty,
or holds nothing but a genpo run (``run.json`` and ``config.gin`` with genpo's other files) or a
sweep's logs of a run that never started; starting over (``--overwrite``, a sweep restarting a failed
run) deletes genpo's own files in it and nothing else. A folder holding anything else is refused in one
line listing what is there. Symbolic links are refused as run folders: a link would make genpo write
(and delete) somewhere the user did not name.

Every check here runs before anything is built, so that a bad path fails at once, not after the build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genpo.invocation import genpo_command
from genpo.training.provenance import GIT_DIFF_FILE
from genpo.training.run_directory import CONFIG_FILE, RUN_RECORD_FILE, RunDirectoryError

LOCK_FILE = "run.lock"
SWEEP_FILES = frozenset({"sweep_run.json", "sweep_stdout.log", "sweep_stderr.log"})
# Every name genpo writes directly in a run folder (hidden ".<name>.*" files are its atomic-write temporaries).
GENPO_ENTRIES = frozenset(
    {
        CONFIG_FILE,
        RUN_RECORD_FILE,
        "operative_config.gin",
        "config_changes.md",
        "checkpoints",
        "metrics.csv",
        "summary.json",
        "learning_curve.png",
        "tensorboard",
        "tensorboard.rebuild",
        "exported",
        "evaluation.json",
        "rsl_rl_config.json",
        GIT_DIFF_FILE,
        "wandb",  # the W&B client's own folder (genpo.run.logger = 'wandb')
        LOCK_FILE,
        *SWEEP_FILES,
    }
)
_LISTED = 6


def is_genpo_entry(name: str) -> bool:
    """``name`` (an entry of a run folder) is one genpo writes."""
    if name in GENPO_ENTRIES:
        return True
    return name.startswith(".") and any(name.startswith(f".{entry}.") for entry in GENPO_ENTRIES)


def is_genpo_run(folder: Path) -> bool:
    return (folder / RUN_RECORD_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def foreign_entries(folder: Path) -> list[str]:
    """The entries of ``folder`` genpo did not write (sorted; folders end in ``/``)."""
    return [name for name in _entries(folder) if not is_genpo_entry(name.rstrip("/"))]


def _entries(folder: Path) -> list[str]:
    return sorted(f"{entry.name}/" if entry.is_dir() else entry.name for entry in folder.iterdir())


def check_run_folder(run_dir: str | Path, *, overwrite: bool, option: str = "--out") -> Path:
    """``run_dir`` if a new run can be written there (creating it must be possible); otherwise one
    :class:`RunDirectoryError` line naming the culprit. Nothing is created or deleted here."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        raise RunDirectoryError(
            f"{option} {run_dir} is a symbolic link (to {os.readlink(run_dir)}): give the folder itself, genpo does "
            "not write or delete a run through a link"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{option} {run_dir} is a file, not a folder")
    if not run_dir.exists():
        existing = _nearest_existing(run_dir)
        if not existing.is_dir():
            raise RunDirectoryError(f"{option} {run_dir} cannot be created: {existing} is a file, not a folder")
        _check_writable(existing, f"{option} {run_dir} cannot be created: {existing}")
        return run_dir
    _check_writable(run_dir, f"{option} {run_dir}")
    if is_genpo_run(run_dir):
        if not overwrite:
            raise RunDirectoryError(
                f"{run_dir} already holds a run: continue it with `{genpo_command()} train --resume {run_dir}`, "
                "or start it over with --overwrite (deletes genpo's files in it)"
            )
        return run_dir
    if foreign_entries(run_dir):
        raise RunDirectoryError(
            f"{option} {run_dir} is not empty and holds no genpo run ({_listing(_entries(run_dir))}): genpo writes a run "
            "only into a new or empty folder and never deletes what it did not write; choose another folder"
        )
    return run_dir


def prepare_new_run(run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """The folder for a new run, created: checked by :func:`check_run_folder`, then cleared of genpo's
    files (the run it held with ``overwrite``, or what a run killed before it wrote ``run.json`` left),
    except the logs of the sweep that started this run."""
    run_dir = check_run_folder(run_dir, overwrite=overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_genpo_files(run_dir, keep=SWEEP_FILES)
    return run_dir


def clear_genpo_files(run_dir: Path, keep: frozenset[str] = frozenset()) -> None:
    """Delete genpo's own entries in ``run_dir`` but ``keep`` (never following a link; the lock file
    stays, it is what keeps a second writer out); anything else in the folder is kept."""
    for entry in run_dir.iterdir():
        if not is_genpo_entry(entry.name) or entry.name == LOCK_FILE or entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_output_file(path: str | Path, option: str) -> Path:
    """``path`` if a file can be written there (its folder can be created and written); else one line."""
    path = Path(path)
    if path.is_dir():
        raise RunDirectoryError(f"{option} {path} is a folder; give a file name")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise RunDirectoryError(f"{option} {path} cannot be written: {existing} is a file, not a folder")
    _check_writable(existing, f"{option} {path} cannot be written: {existing}")
    if path.exists() and not os.access(path, os.W_OK):
        raise RunDirectoryError(f"{option} {path} cannot be written: the file is read-only")
    return path


def check_output_folder(path: str | Path, option: str) -> Path:
    """``path`` if files can be written into it (it exists as a writable folder or can be created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{option} {path} is a file, not a folder")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise RunDirectoryError(f"{option} {path} cannot be created: {existing} is a file, not a folder")
    _check_writable(existing, f"{option} {path} cannot be written: {existing}" if existing != path else f"{option} {path}")
    return path


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the working directory for a relative path)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path.cwd()


def _check_writable(folder: Path, subject: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"{subject} is not writable (read-only folder or file system)")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
