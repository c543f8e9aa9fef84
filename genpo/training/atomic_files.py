"""Atomic file writes: a crash never leaves a half-written file under the real name.

The content goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target (``os.replace`` is atomic within one file system). Every file a run must be able to trust
after a kill -9 (checkpoints, run.json, summary.json, metrics.csv when it is rewritten) is written this
way; metrics.csv rows are appended one whole line per write, and a resume drops a torn last line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file, fsync it, and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_link(source: str | Path, target: str | Path) -> Path:
    """Make ``target`` a hard link to ``source`` (a copy where links are not supported), atomically."""
    source, target = Path(source), Path(target)
    temporary = target.with_name(f".{target.name}.link")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return target
