"""``python fault_child.py PHASE ITERATION WAKE -- GENPO_ARGS...``: ``genpo GENPO_ARGS`` that, at a
fault point, prints ``FAULT_POINT`` and waits, so that a test can kill or signal it exactly there.
With WAKE = 1 it goes on once the run's interrupt guard has recorded a signal; with 0 it waits
until killed (or until a second signal's KeyboardInterrupt).

PHASE: ``collection`` (the 3rd env step of iteration ITERATION's rollout), ``update`` (the 2nd
minibatch of its PPO update, after one optimiser step), ``checkpoint`` (half-way through writing
the checkpoint of iteration ITERATION), ``disk-full`` (writing the checkpoint of iteration ITERATION
fails with ENOSPC, as on a full disk; no pause), or ``none``.
"""

import errno
import io
import signal
import sys
import time

import torch

from genpo.cli import main
from genpo.components.losses.ppo import PPOLoss
from genpo.training import checkpoint
from genpo.training.episodes import EpisodeTracker
from genpo.training.rollout import RolloutCollector

phase, fault_iteration, wake, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[5:]
calls = {"iteration": 0, "steps": 0, "losses": 0}


def signal_recorded() -> bool:
    guard = getattr(signal.getsignal(signal.SIGINT), "__self__", None)  # the InterruptGuard, if installed
    return guard is not None and guard.requested


def pause() -> None:
    print("FAULT_POINT", flush=True)
    while not (wake and signal_recorded()):  # polled: a signal may arrive before any wait begins
        time.sleep(0.02)


collect, episode_step, loss_forward, save = RolloutCollector.collect, EpisodeTracker.step, PPOLoss.forward, torch.save


def counted_collect(self, iteration):
    calls.update(iteration=iteration, steps=0, losses=0)
    return collect(self, iteration)


def counted_episode_step(self, *args):
    calls["steps"] += 1
    if phase == "collection" and calls["iteration"] == fault_iteration and calls["steps"] == 3:
        pause()
    return episode_step(self, *args)


def counted_loss_forward(self, tensordict):
    calls["losses"] += 1
    if phase == "update" and calls["iteration"] == fault_iteration and calls["losses"] == 2:
        pause()
    return loss_forward(self, tensordict)


def half_written_save(obj, handle, *args, **kwargs):
    if phase == "disk-full" and obj.get("iteration") == fault_iteration:
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write() raises it: no file name
    if phase == "checkpoint" and obj.get("iteration") == fault_iteration:
        buffer = io.BytesIO()
        save(obj, buffer, *args, **kwargs)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        pause()
    return save(obj, handle, *args, **kwargs)


RolloutCollector.collect = counted_collect
EpisodeTracker.step = counted_episode_step
PPOLoss.forward = counted_loss_forward
checkpoint.torch.save = half_written_save
sys.exit(main(argv))
