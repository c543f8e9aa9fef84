"""Which checkpoints a run keeps: ``latest`` (what ``--resume`` continues), the last K by
iteration, and the ``best`` by training return (by evaluation return in a run with periodic evaluation).

One state is written per checkpoint (atomically, as ``latest.pt``); the iteration and best entries
are hard links to it, so keeping history costs no extra writes. The best checkpoint is ranked by the
mean return of the episodes that finished since the previous checkpoint (episode-weighted over the
interval's iterations), which is less noisy than one iteration's mean. Entries are written in the
order latest, iteration, best, so none is ever newer than ``latest``: a resume from ``latest`` never
finds a checkpoint from iterations it discards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from genpo.training.atomic_files import atomic_link, atomic_write_text
from genpo.training.checkpoint import save_checkpoint
from genpo.training.errors import CheckpointError

LATEST = "latest.pt"
BEST = "best.pt"
BEST_RECORD = "best.json"
CHECKPOINT_CHOICES = ("latest", "best")


class CheckpointHistory:
    """The ``checkpoints/`` folder of a run directory."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        if keep_last < 0:
            raise ValueError(f"checkpoint history: keep_last must be >= 0, got {keep_last!r}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    @property
    def latest(self) -> Path:
        return self.directory / LATEST

    @property
    def best(self) -> Path:
        return self.directory / BEST

    def iteration_path(self, iteration: int) -> Path:
        return self.directory / f"iteration_{iteration:07d}.pt"

    def iteration_paths(self) -> list[Path]:
        """The kept per-iteration checkpoints, oldest first."""
        return sorted(self.directory.glob("iteration_*.pt"))

    def discard_partial_writes(self) -> None:
        """Delete temporary files left by a process killed while writing a checkpoint (the
        checkpoints themselves are intact: they are replaced only by complete files)."""
        if self.directory.is_dir():
            for partial in self.directory.glob(".*.pt.*"):
                partial.unlink()

    def best_record(self) -> dict | None:
        """``{"iteration", <score name>}`` of the best checkpoint (``training_return``, or
        ``evaluation_return`` for a run with periodic evaluation), or None before the first."""
        try:
            return json.loads((self.directory / BEST_RECORD).read_text())
        except FileNotFoundError:
            return None

    def save(self, state: dict, score: float | None = None, score_name: str = "training_return") -> Path:
        """Write ``state`` as the latest checkpoint, keep it as an iteration entry (pruning the oldest
        beyond ``keep_last``), and as the best when its ``score`` (a return, named ``score_name``) beats
        the best so far (a best ranked by another score is replaced)."""
        iteration = int(state["iteration"])
        save_checkpoint(state, self.latest)
        if self.keep_last:
            atomic_link(self.latest, self.iteration_path(iteration))
            for stale in self.iteration_paths()[: -self.keep_last]:
                stale.unlink()
        if score is not None and math.isfinite(score):
            best = self.best_record()
            if best is None or score_name not in best or score > best[score_name]:
                atomic_link(self.latest, self.best)
                record = {"iteration": iteration, score_name: score}
                atomic_write_text(self.directory / BEST_RECORD, json.dumps(record, indent=2))
        return self.latest

    def resolve(self, which: str | Path) -> Path:
        """``latest``, ``best`` or a path (absolute, or relative to the working directory or to
        ``checkpoints/``) as an existing checkpoint file; otherwise one error naming what exists."""
        if str(which) in CHECKPOINT_CHOICES:
            path = self.latest if str(which) == "latest" else self.best
        else:
            candidates = [Path(which), self.directory / Path(which)]
            path = next((candidate for candidate in candidates if candidate.is_file()), candidates[0])
        if not path.is_file():
            present = sorted(p.name for p in self.directory.glob("*.pt")) if self.directory.is_dir() else []
            raise CheckpointError(
                f"no checkpoint {str(which)!r} in {self.directory}"
                + (f"; present: {', '.join(present)}" if present else "; none written yet")
                + (" (best is written at the first checkpoint after an episode finishes)" if str(which) == "best" else "")
            )
        return path
