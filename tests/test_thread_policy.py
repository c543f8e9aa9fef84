"""Torch's thread count per run: 'auto' uses the cores other processes leave free, drops at once when
one shows up, rises again only after a few free iterations; a pinned count never moves."""

from __future__ import annotations

import pytest
import torch

from genpo.training.thread_policy import RAISE_AFTER, ThreadPolicy


class FakeMachine:
    """A machine whose other processes use ``others`` cores; this process uses ``own`` cores."""

    def __init__(self, others: float = 0.0, own: float = 1.0):
        self.others, self.own = others, own
        self.clock, self.busy, self.own_busy = 0.0, 0.0, 0.0

    def advance(self, seconds: float = 1.0) -> None:
        self.clock += seconds
        self.own_busy += self.own * seconds
        self.busy += (self.own + self.others) * seconds

    def policy(self, requested="auto", cores=2) -> ThreadPolicy:
        return ThreadPolicy(
            requested,
            cores=cores,
            machine_busy=lambda: self.busy,
            own_busy=lambda: self.own_busy,
            clock=lambda: self.clock,
            sleep=self.advance,
        )


@pytest.fixture
def unpinned(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_takes_every_free_core_and_drops_at_once_when_another_process_shows_up(unpinned):
    machine = FakeMachine(others=0.0)
    policy = machine.policy()
    line = policy.start()
    assert torch.get_num_threads() == 2 and line.startswith("threads: 2 ('auto': 2.0 of 2 cores free")
    machine.others = 1.0
    machine.advance()
    assert policy.after_iteration() == "threads: 2 -> 1 (1.0 of 2 cores free)"
    assert torch.get_num_threads() == 1


def test_auto_rises_again_only_after_the_cores_stayed_free(unpinned):
    machine = FakeMachine(others=1.0)
    policy = machine.policy()
    policy.start()
    assert torch.get_num_threads() == 1
    machine.others = 0.0
    for _ in range(RAISE_AFTER - 1):
        machine.advance()
        assert policy.after_iteration() is None and torch.get_num_threads() == 1
    machine.advance()
    assert policy.after_iteration() == "threads: 1 -> 2 (2.0 of 2 cores free)"
    machine.others = 0.6  # a process using most of a core counts as holding it
    machine.advance()
    assert policy.after_iteration() == "threads: 2 -> 1 (1.4 of 2 cores free)"


def test_a_fully_busy_machine_still_gets_one_thread(unpinned):
    machine = FakeMachine(others=3.0)
    policy = machine.policy()
    policy.start()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("pin", ["binding", "environment"])
def test_a_pinned_count_never_moves(unpinned, monkeypatch, pin):
    machine = FakeMachine(others=0.0)
    if pin == "binding":
        policy, expected, by = machine.policy(requested=1), 1, "genpo.run.num_threads"
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(2)
        policy, expected, by = machine.policy(), 2, "OMP_NUM_THREADS"
    assert policy.start() == f"threads: {expected} (pinned by {by})"
    machine.others = 1.5
    machine.advance()
    assert policy.after_iteration() is None and torch.get_num_threads() == expected


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_a_bad_thread_count_is_refused_naming_the_binding(bad):
    with pytest.raises(ValueError, match=r"genpo.run.num_threads: an int >= 1 or 'auto', got"):
        ThreadPolicy(bad)


def test_each_metrics_row_records_the_thread_count_it_ran_with(tmp_path, make_tiny_experiment):
    import csv

    trainer, settings = make_tiny_experiment(tmp_path / "run")
    assert trainer.threads.start_line.startswith("threads: 1 (pinned by OMP_NUM_THREADS)")
    trainer.train(settings.iterations, quiet=True)
    with open(tmp_path / "run" / "metrics.csv") as handle:
        assert [row["threads"] for row in csv.DictReader(handle)] == ["1", "1"]
