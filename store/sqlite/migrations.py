"""The embedded store's schema, version by version: numbered steps, run in order.

A store records the last step it has run in SQLite's ``PRAGMA user_version`` (0: made before the
steps were numbered, or empty). Opening a store for writing (:meth:`Database.prepare
<store.sqlite.database.Database.prepare>`) runs the steps it lacks, in order, in one ``BEGIN
IMMEDIATE`` transaction, so several processes opening one store at once upgrade it once; a
store that is up to date costs one PRAGMA. Every step is safe to run again (``IF NOT EXISTS``,
``ON CONFLICT DO NOTHING``): a store from before the numbering, whatever of the layout it has,
runs them all and keeps its rows.

A new table, index or meta row is a new step at the end (never an edit of an old one): the
stores already past that number would never see it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, NamedTuple

from logpipe.common.errors import StoreError
from logpipe.query.analyzer import ANALYZER_VERSION
from logpipe.store.sqlite.schema import (
    COUNTS_SCHEMA,
    EVENTS_SCHEMA,
    FTS_AUTOMERGE,
    FTS_MARK,
    FTS_TABLE,
    MESSAGE_SCHEMA,
    VALUE_COUNTS_SCHEMA,
    VALUE_DIMS_SCHEMA,
)


class Step(NamedTuple):
    number: int
    what: str
    run: Callable[[sqlite3.Connection], None]


class NewerSchema(StoreError):
    """The store was made or upgraded by a newer logpipe: this one does not know its layout."""

    def __init__(self, path: str, version: int):
        super().__init__(f"the embedded store {path} has schema version {version}, newer than "
                         f"this logpipe knows ({SCHEMA_VERSION}): upgrade logpipe, or use another "
                         "store file", permanent=True)


def _run_all(statements: list[str]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)
    return run


def _events(conn: sqlite3.Connection) -> None:
    fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                         (FTS_TABLE,)).fetchone() is None
    _run_all(EVENTS_SCHEMA)(conn)
    if fresh:  # (a setting of the index, kept in its own config table)
        conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) "
                     f"VALUES ('automerge', {FTS_AUTOMERGE})")
    # the analyzer the full-text index is made with (retention re-indexes when it changes)
    conn.execute("INSERT INTO meta(key, value) VALUES ('analyzer', ?) "
                 "ON CONFLICT(key) DO NOTHING", (ANALYZER_VERSION,))


def _fts_mark(conn: sqlite3.Connection) -> None:
    # a store made before the catch-up existed indexed every row as it was written ("WHERE
    # true": an upsert after SELECT ... FROM needs it to parse)
    conn.execute(f"INSERT INTO meta(key, value) SELECT '{FTS_MARK}', "
                 "COALESCE(MAX(rowid), 0) FROM events WHERE true ON CONFLICT(key) DO NOTHING")


STEPS: list[Step] = [
    Step(1, "events, their indexes, the full-text index and meta", _events),
    Step(2, "the full-text catch-up mark (every row so far was indexed as written)", _fts_mark),
    Step(3, "event counts per hour and per day (store.sqlite.rollup)", _run_all(COUNTS_SCHEMA)),
    Step(4, "value counts of the indexed fields (store.sqlite.value_counts)",
         _run_all(VALUE_COUNTS_SCHEMA)),
    Step(5, "value counts per host, type and program", _run_all(VALUE_DIMS_SCHEMA)),
    Step(6, "message records, their recipients, hand-offs and held parts (store.sqlite.messages)",
         _run_all(MESSAGE_SCHEMA)),
]
SCHEMA_VERSION = STEPS[-1].number
assert [step.number for step in STEPS] == list(range(1, SCHEMA_VERSION + 1))


def version(conn: sqlite3.Connection) -> int:
    """The last step the store has run (0: none recorded)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str, upto: int = SCHEMA_VERSION) -> list[int]:
    """Run the steps the store lacks, up to ``upto``, and record the version; the caller holds
    the write transaction. Returns the numbers of the steps run. NewerSchema when the store
    is past what this code knows."""
    have = version(conn)
    if have > SCHEMA_VERSION:
        raise NewerSchema(path, have)
    ran = []
    for step in STEPS:
        if have < step.number <= upto:
            step.run(conn)
            ran.append(step.number)
    if ran:
        conn.execute(f"PRAGMA user_version = {int(ran[-1])}")
        conn.execute("INSERT INTO meta(key, value) VALUES ('schema', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(ran[-1]),))
    return ran
