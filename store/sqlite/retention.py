"""The embedded store's retention: delete events older than a time, keeping the full-text index,
the per-hour counts and the value counts in step."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from logpipe.common.errors import StoreError
from logpipe.query.analyzer import ANALYZER_VERSION
from logpipe.query.datemath import epoch_ms
from logpipe.store.sqlite import rollup, value_counts
from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.schema import FTS_MARK, FTS_TABLE, MARK_SQL, immediate
from logpipe.store.sqlite.writer import fts_bodies, index_messages


class SqliteRetention:
    """The retention part of the embedded store: prune, on the database's writing
    connection."""

    def __init__(self, db: Database):
        self.db = db

    def prune(self, older_than: datetime) -> int:
        """Delete events with @timestamp before ``older_than``, in small transactions so that
        writers are never held up for long. Returns how many went.

        The full-text index is contentless (it does not keep a second copy of every message):
        removing a row means handing FTS5 the same text it indexed, which is recomputed from the
        stored message. Should the analyzer have changed since the store was made, the index is
        rebuilt from the stored messages instead."""
        cutoff = epoch_ms(older_than)
        removed = 0
        with self.db.lock:
            conn = self.db.connection()
            row = conn.execute("SELECT value FROM meta WHERE key = 'analyzer'").fetchone()
            same_analyzer = row is not None and row[0] == ANALYZER_VERSION
            while True:
                try:
                    with immediate(conn):
                        mark = conn.execute(MARK_SQL).fetchone()
                        found = conn.execute("SELECT rowid, doc -> '$.message', ts, "
                                             f"{', '.join(rollup.DIMS)} FROM events "
                                             "WHERE ts < ? LIMIT 20000", (cutoff,)).fetchall()
                        rows = [r[:2] for r in found]
                        # out of the per-hour counts too
                        rollup.forget(conn, [(r[0], *r[2:]) for r in found])
                        value_counts.forget(conn, [r[0] for r in found])
                        if rows and same_analyzer:
                            # only rows at or below the mark are in the full-text index (no
                            # mark: a store from before the catch-up, where every row is)
                            indexed = rows if mark is None else [r for r in rows if r[0] <= mark[0]]
                            conn.executemany(
                                f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, body) "
                                "VALUES ('delete', ?, ?)", fts_bodies(indexed))
                        if rows:
                            conn.executemany("DELETE FROM events WHERE rowid = ?",
                                             [(rid,) for rid, _ in rows])
                        if not rows:
                            rollup.clamp_mark(conn)
                            value_counts.clamp_mark(conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"pruning {self.db.path} failed after {removed} events: "
                                    f"{exc}") from None
                removed += len(rows)
                if not rows:
                    break
            if removed and not same_analyzer:
                self._rebuild_fts(conn)
            if removed:
                self.db.wrote = True
        return removed

    def _rebuild_fts(self, conn: sqlite3.Connection) -> None:
        """Re-index every stored message with the current analyzer."""
        try:
            with immediate(conn):
                conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')")
                top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
                cur = conn.execute("SELECT rowid, doc -> '$.message' FROM events")
                while True:
                    chunk = cur.fetchmany(10000)
                    if not chunk:
                        break
                    index_messages(conn, chunk)
                conn.execute("INSERT INTO meta(key, value) VALUES ('analyzer', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (ANALYZER_VERSION,))
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                             "DO UPDATE SET value = excluded.value", (FTS_MARK, top))
        except sqlite3.Error as exc:
            raise StoreError(f"rebuilding the full-text index of {self.db.path} failed: {exc}") \
                from None

