"""Torch's thread count for a run: as many threads as other processes leave cores free, re-chosen
between iterations.

Why: torch's default (one thread per core, OpenMP threads spin-waiting at every parallel region)
collapses as soon as another process holds a core: each region then waits for the thread that shares
its core with the other process. Measured on a 2-core Intel Xeon (Sapphire Rapids), seconds per
iteration, idle / with one busy process (``benchmarks/thread_contention.py``): HalfCheetah 0.93 / 8.55
with torch's default and 1.28 / 1.37 with one thread; Pendulum 0.75 / 4.75 and 1.10 / 1.16. No fixed
count is right on both, so ``'auto'`` (the default) measures instead: before the first iteration and
after each one it reads how many cores the rest of the machine kept busy (``/proc/stat`` less this
process's own CPU time) and uses the cores left, at least one. It drops threads at once when another
process shows up and raises them again only after ``RAISE_AFTER`` iterations in a row with the cores
free, so a run does not flap.

Float results depend on the thread count, so a run whose count changed is reproducible from its seed
only with the same counts (``metrics.csv`` records ``threads`` per iteration). A pinned count
(``genpo.run.num_threads = N``, ``--threads N``, or ``OMP_NUM_THREADS`` in the environment) never changes:
sweeps and studies pin theirs, and a resumed run continues bit for bit only when pinned.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

AUTO = "auto"
RAISE_AFTER = 3  # iterations in a row with more cores free before threads go up again
START_SAMPLE_SECONDS = 0.3


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), or all cores where affinity is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``); None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_busy_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


class ThreadPolicy:
    """Sets torch's intra-op thread count for a run: pinned to ``requested`` (an int), or ``'auto'``.

    ``start()`` sets the first count and returns the line to show the user (kept as ``start_line``); ``after_iteration()``
    re-chooses it under ``'auto'`` and returns a line when it changed (None otherwise).
    ``machine_busy`` / ``own_busy`` / ``clock`` / ``sleep`` read the machine and wait (replaceable in tests).
    """

    def __init__(
        self,
        requested: int | str | None = AUTO,
        *,
        cores: int | None = None,
        machine_busy: Callable[[], float | None] = machine_busy_seconds,
        own_busy: Callable[[], float] = own_busy_seconds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if requested is None:
            requested = AUTO
        if requested != AUTO and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
            raise ValueError(f"genpo.run.num_threads: an int >= 1 or 'auto', got {requested!r}")
        self.cores = cores or usable_cores()
        self._machine_busy, self._own_busy, self._clock, self._sleep = machine_busy, own_busy, clock, sleep
        self.pinned_by = self._pinned_by(requested)
        self.requested = requested
        self._sample: tuple[float, float, float] | None = None
        self._free_streak = 0
        self.start_line = ""

    @staticmethod
    def _pinned_by(requested: int | str) -> str | None:
        if requested != AUTO:
            return "genpo.run.num_threads"
        if os.environ.get("OMP_NUM_THREADS"):
            return "OMP_NUM_THREADS"
        return None

    @property
    def adaptive(self) -> bool:
        return self.pinned_by is None

    def start(self) -> str:
        self.start_line = self._choose_first()
        return self.start_line

    def _choose_first(self) -> str:
        if not self.adaptive:
            if self.requested != AUTO:
                torch.set_num_threads(self.requested)
            return f"threads: {torch.get_num_threads()} (pinned by {self.pinned_by})"
        self._take_sample()
        if self._sample is None:
            return f"threads: {torch.get_num_threads()} (torch's default: this system does not report CPU load)"
        self._sleep(START_SAMPLE_SECONDS)
        others = self._others_since_sample()
        threads = self._threads_for(others)
        torch.set_num_threads(threads)
        return (
            f"threads: {threads} ('auto': {self._free_text(others)}; re-chosen between iterations as other "
            f"processes come and go; --threads N pins it)"
        )

    def after_iteration(self) -> str | None:
        if not self.adaptive or self._sample is None:
            return None
        others = self._others_since_sample()
        current, wanted = torch.get_num_threads(), self._threads_for(others)
        if wanted > current:
            self._free_streak += 1
            if self._free_streak < RAISE_AFTER:
                return None
        self._free_streak = 0
        if wanted == current:
            return None
        torch.set_num_threads(wanted)
        return f"threads: {current} -> {wanted} ({self._free_text(others)})"

    def _take_sample(self) -> None:
        busy = self._machine_busy()
        self._sample = None if busy is None else (busy, self._own_busy(), self._clock())

    def _others_since_sample(self) -> float:
        """Cores' worth of CPU that other processes used since the last sample (starts a new one)."""
        busy, own, clock = self._sample
        self._take_sample()
        new_busy, new_own, new_clock = self._sample
        elapsed = max(new_clock - clock, 1e-6)
        return max(0.0, (new_busy - busy) - (new_own - own)) / elapsed

    def _threads_for(self, others: float) -> int:
        return max(1, min(self.cores, math.floor(self.cores - others + 0.5)))

    def _free_text(self, others: float) -> str:
        free = max(0.0, self.cores - others)
        return f"{free:.1f} of {self.cores} cores free"
