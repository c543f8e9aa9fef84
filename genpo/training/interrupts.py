"""SIGINT / SIGTERM during training: finish the current iteration, checkpoint, stop cleanly.

A run must lose at most the iteration in flight when a user presses Ctrl-C or a scheduler sends
SIGTERM. The first signal only sets a flag that the training loop reads after each iteration; a
second signal gives up at once (``KeyboardInterrupt``) for a user who does not want to wait, and the
last checkpoint written stays the one to resume from.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, iteration: int, checkpoint: str):
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum
        super().__init__(f"{signal.Signals(signum).name} at iteration {iteration}; checkpoint written: {checkpoint}")


class InterruptGuard:
    """Context manager that turns the first SIGINT/SIGTERM into ``requested`` and a second into
    ``KeyboardInterrupt``. Outside the main thread (where Python cannot install handlers) it does
    nothing, so the trainer also works from worker threads."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: the current iteration is abandoned")
        self.signum = signum
        # Said at once, so that a user waiting for a long iteration knows the first signal was taken; on a
        # fresh line, since a progress bar may hold the current one; os.write, not print: a handler may run
        # while sys.stderr is in the middle of a write.
        os.write(
            2,
            f"\ngenpo: {signal.Signals(signum).name} received: finishing the iteration in flight, then writing a "
            f"checkpoint (send it again, e.g. a second Ctrl-C, to abandon the iteration)\n".encode(),
        )

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
