"""One writer per run directory: an exclusive ``fcntl`` lock on a lock file in it.

``genpo train`` (new runs and ``--resume``) holds ``run.lock`` of its run directory for as long as it
runs, and ``genpo sweep`` holds ``sweep.lock`` of its output folder; a second writer fails at once with
one line naming the holder's PID, command and start time. The operating system releases the lock when
the holder exits, however it exits (a crash or kill -9 included), so a stale lock file never blocks a
later run. Readers (``evaluate``, ``play``, ``export``, reports) take no lock.

The lock file stays in the folder after the run (deleting it would let a second writer lock a fresh
file while the first still holds the old one); it holds the last holder's PID, command and start time.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

from genpo.training.run_directory import RunDirectoryError
from genpo.training.run_folder import LOCK_FILE

SWEEP_LOCK_FILE = "sweep.lock"


class RunLockedError(RunDirectoryError):
    """The folder is being written by another genpo process."""


class RunLock:
    """``with RunLock(folder):`` holds the folder's exclusive lock (creating the folder if needed);
    raises :class:`RunLockedError` at once when another process holds it. A folder that the lock created
    and that holds nothing but the lock file when it is released is removed again (a run that failed
    before writing anything leaves no trace)."""

    def __init__(self, folder: str | Path, name: str = LOCK_FILE, *, what: str = "run directory"):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what = what
        self._descriptor: int | None = None
        self._created: list[Path] = []

    def acquire(self) -> RunLock:
        missing = [parent for parent in (self.folder, *self.folder.parents) if not parent.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunLockedError(f"{self.folder} is in use: {self.what} locked by {holder_text(self.path)}") from None
        holder = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "command": _command()}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is None:
            return
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        os.close(self._descriptor)
        self._descriptor = None
        self._remove_created_if_empty()

    def _remove_created_if_empty(self) -> None:
        try:
            if [entry.name for entry in self.folder.iterdir()] == [self.path.name]:
                self.path.unlink()
                for folder in self._created:  # innermost first
                    folder.rmdir()
        except OSError:  # removed or filled by someone else meanwhile: leave it
            pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def holder_text(path: Path) -> str:
    """``PID 1234 (genpo train ...), started 2026-01-01 12:00:00 UTC`` from a lock file (what is known)."""
    try:
        holder = json.loads(path.read_text())
        return f"PID {holder['pid']} ({holder['command']}), started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded its PID yet)"


def _command() -> str:
    text = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    return text if len(text) <= 160 else text[:157] + "..."
