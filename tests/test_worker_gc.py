"""The worker's collector (indexer/worker.py): off while a job runs, run after each job, so the
cycles a batch leaves are freed once it is done and nothing walks a batch's live events."""

from __future__ import annotations

import gc
import weakref

from logpipe.indexer import worker


class Node:
    def __init__(self):
        self.other = None


def test_cycles_of_a_job_live_until_it_ends_then_go():
    was_enabled = gc.isenabled()
    try:
        worker.tune_gc()
        assert not gc.isenabled()
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: reference counts alone never free it
        alive = weakref.ref(a)
        del a, b
        for _ in range(200_000):  # far past any allocation threshold: nothing collects
            Node()
        assert alive() is not None
        worker.collect_after_job()
        assert alive() is None
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def test_every_hundredth_job_collects_everything(monkeypatch):
    generations = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: generations.append(generation))
    monkeypatch.setattr(worker, "_JOBS_DONE", [0])
    for _ in range(200):
        worker.collect_after_job()
    assert generations.count(2) == 2 and generations.count(1) == 198
    assert generations[99] == 2 and generations[199] == 2
