"""Writers of one embedded store take turns on a lock file before SQLite's write lock
(store/sqlite/schema.py: queue_writers): a write waits for the writer ahead of it, and a
writer that keeps the file longer than the store's timeout does not stop the others."""

from __future__ import annotations

import fcntl
import os
import stat
import threading

from logpipe.store.base import SearchRequest
from logpipe.store.sqlite import SqliteStore
from tests.support.stores import search as store_search
from tests.support.web import mail_events


def _holding(path: str):
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_write_waits_its_turn_and_goes_on_when_the_writer_ahead_is_done(tmp_path):
    events = mail_events(40)
    store = SqliteStore(f"sqlite:///{tmp_path}/events.db")
    store.prepare()
    lock_file = f"{tmp_path}/events.db-writers.lock"
    assert stat.S_IMODE(os.stat(lock_file).st_mode) == 0o600
    fd = _holding(lock_file)  # another writer's turn
    done = threading.Event()
    writer = threading.Thread(target=lambda: (list(store.write(events[:20])), done.set()))
    writer.start()
    try:
        assert not done.wait(0.5)  # waiting for the turn, not writing
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    writer.join(30)
    assert done.is_set()
    assert store_search(store, SearchRequest()).total == 20
    store.close()


def test_a_writer_keeping_its_turn_past_the_timeout_does_not_stop_the_others(tmp_path):
    events = mail_events(20)
    store = SqliteStore(f"sqlite:///{tmp_path}/events.db?timeout=1")
    store.prepare()
    fd = _holding(f"{tmp_path}/events.db-writers.lock")  # never given back during the write
    try:
        outcomes = list(store.write(events))
    finally:
        os.close(fd)
    assert len(outcomes) == 20 and all(o.done for o in outcomes)
    assert store_search(store, SearchRequest()).total == 20
    store.close()
