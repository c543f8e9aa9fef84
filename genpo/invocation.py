"""How the user started genpo, as a command that works from their current directory.

Messages that tell the user what to run next (resume an interrupted run, train more iterations) use it,
so the line they copy works as it is: ``.venv/bin/genpo`` when genpo is not on PATH (``make train``),
``genpo`` when it is, ``python -m genpo`` when started that way.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def genpo_command() -> str:
    """The genpo command as the user can type it here: ``genpo``, a path to the console script, or
    ``<python> -m genpo``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "genpo":
        on_path = shutil.which("genpo")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "genpo"
        return _as_typed(script)
    return f"{_as_typed(Path(sys.executable))} -m genpo"


def _as_typed(path: Path) -> str:
    """``path`` relative to the current directory where it lies below it (``./x`` for a bare name),
    absolute elsewhere."""
    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    text = str(relative)
    return text if os.sep in text else f".{os.sep}{text}"
