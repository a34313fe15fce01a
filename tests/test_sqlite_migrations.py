"""The embedded store's numbered schema migrations (store.sqlite.migrations): a store at any
earlier version, with the rows it had then, opens with the current code; every missing step runs,
the rows are kept and searchable, and the layout ends equal to a fresh store's."""

import sqlite3
from datetime import datetime, timezone

import orjson
import pytest

from logpipe.query.analyzer import fts_text
from logpipe.store.base import Event, SearchRequest
from logpipe.store.sqlite import SqliteStore, rollup
from logpipe.store.sqlite.migrations import SCHEMA_VERSION, STEPS, NewerSchema, migrate, version
from logpipe.store.sqlite.schema import COLUMNS, immediate, insert_rows
from tests.support.stores import search as store_search

OLD = [("old-1", "2026-11-28T10:00:00.000Z", "mail1", "postfix: queued as ALPHA1"),
       ("old-2", "2026-11-28T11:30:00.000Z", "mail2", "dovecot: delivered BRAVO2")]


def _build(path: str, upto: int, numbered: bool = True) -> None:
    """A store as logpipe left it at version ``upto``: the steps up to it, then the events
    written as that version wrote them (full text indexed with the row; the per-hour counts
    brought up to date where the version had them). ``numbered=False``: a store from before
    the steps were numbered (the same layout, user_version 0)."""
    conn = sqlite3.connect(path, isolation_level=None)
    with immediate(conn):
        assert migrate(conn, path, upto=upto) == list(range(1, upto + 1))
        params: list = []
        for rowid, (eid, stamp, host, message) in enumerate(OLD, 1):
            doc = {"@timestamp": stamp, "host": host, "type": "mail", "program": "postfix",
                   "message": message}
            ts = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
            params += [rowid, eid, ts, host, "mail", "postfix", None, None,
                       orjson.dumps(doc).decode()]
            conn.execute("INSERT INTO events_fts(rowid, body) VALUES (?, ?)",
                         (rowid, fts_text(message)))
        assert len(params) == len(OLD) * len(COLUMNS)
        conn.execute(insert_rows(len(OLD)), params)
        if upto >= 3:
            rollup.catch_up_step(conn, 1000)
        if not numbered:
            conn.execute("PRAGMA user_version = 0")
    conn.close()


def _layout(path: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"
                                   " WHERE name NOT LIKE 'sqlite_%'").fetchall())
    finally:
        conn.close()


@pytest.fixture
def fresh_layout(tmp_path):
    store = SqliteStore(f"sqlite:///{tmp_path / 'fresh.db'}")
    store.prepare()
    store.close()
    return _layout(str(tmp_path / "fresh.db"))


def test_an_empty_store_runs_every_step_once(tmp_path):
    conn = sqlite3.connect(tmp_path / "empty.db", isolation_level=None)
    with immediate(conn):
        assert migrate(conn, "empty.db") == [step.number for step in STEPS]
    with immediate(conn):
        assert migrate(conn, "empty.db") == []   # up to date: nothing runs again
    assert version(conn) == SCHEMA_VERSION == len(STEPS)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == \
        (str(SCHEMA_VERSION),)


@pytest.mark.parametrize("numbered", [True, False], ids=["numbered", "before-numbering"])
@pytest.mark.parametrize("upto", range(1, SCHEMA_VERSION))
def test_an_older_store_opens_upgraded_with_its_rows(tmp_path, fresh_layout, upto, numbered):
    path = str(tmp_path / "old.db")
    _build(path, upto, numbered)
    assert _layout(path) != fresh_layout   # something is missing: a step has work to do

    store = SqliteStore(f"sqlite:///{path}")
    store.prepare()
    try:
        assert _layout(path) == fresh_layout
        assert version(store.db.connection()) == SCHEMA_VERSION
        # the rows are kept: by id, by count, by full text, per hour
        assert store.get_event("old-1")["message"] == "postfix: queued as ALPHA1"
        assert store.count(SearchRequest(query="*")) == len(OLD)
        assert [e["_id"] for e in store_search(store, SearchRequest(query="BRAVO2")).events] == ["old-2"]
        hours = store.histogram(SearchRequest(query="*"), "1h")
        assert sum(n for _, n in hours) == len(OLD)
        # and the upgraded store takes new events, searchable with the old ones
        assert store.write([Event("new-1", {"@timestamp": "2026-11-28T12:00:00.000Z",
                                            "host": "mail1", "message": "queued as CHARLIE3"})]
                           )[0].done
        assert store.count(SearchRequest(query="ALPHA1 OR CHARLIE3")) == 2
        assert store.count(SearchRequest(query="*", start=datetime(2026, 11, 28, 11,
                                                                   tzinfo=timezone.utc))) == 2
        store.write_messages({})  # the message tables are there (step 6)
        assert store.count_messages() == 0
    finally:
        store.close()


def test_a_store_from_a_newer_logpipe_is_refused_with_what_to_do(tmp_path):
    path = str(tmp_path / "newer.db")
    _build(path, SCHEMA_VERSION)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(NewerSchema, match="newer than this logpipe knows.*upgrade logpipe"):
        store.prepare()
    store.close()
