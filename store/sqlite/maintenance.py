"""The embedded store's deferred work, done while the pipeline is idle (``logpipe index`` calls
:meth:`SqliteMaintenance.maintain` when nothing waits) or when asked (:meth:`promote`,
:meth:`roll_up`, :meth:`count_values`): the full-text catch-up (the writer's), the per-hour
counts (:mod:`store.sqlite.rollup`), the value indexes searches asked for (fields promoted by
use, :mod:`store.sqlite.schema`) and the value counts of the indexed fields
(:mod:`store.sqlite.value_counts`).

Building a value index holds the write lock while SQLite reads every event (seconds at a
million events, about ten times that at ten million), which is why no search does it: a search
notes the wish and reads the documents meanwhile.

The JSON_INDEX_LIMIT slots are shared. A wish is granted only for a field some event holds
(maintenance looks, rows above the last look only; a query naming forty fields that do not
exist builds nothing), and never by evicting another index. An index asked for by name
(``logpipe maintain --index FIELD``, :meth:`promote` with named fields) is pinned: no wish ever
evicts it, and when the slots are full it takes the place of an automatic one (an empty one
first, else the oldest).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Iterable

from logpipe.common.errors import QueryError, StoreError
from logpipe.store.sqlite import rollup, value_counts
from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.writer import SqliteWriter
from logpipe.store.sqlite.schema import (
    ABSENT_PREFIX,
    JSON_INDEX_LIMIT,
    JSON_INDEX_PREFIX,
    PINNED_PREFIX,
    WANTED_PREFIX,
    immediate,
    json_index_name,
    json_index_sql,
    json_indexable,
    json_literal_path,
    json_value_sql,
)

_PATH_IN_SQL = re.compile(r"""'\$\."([^"]+)"'""")


class SqliteMaintenance:
    """The maintenance part of the embedded store (see the module docstring)."""

    def __init__(self, db: Database, writer: SqliteWriter):
        self.db = db
        self.writer = writer   # its full-text catch-up is the first step of maintain()
        # fields whose promotion failed in this process: not tried again, so maintain() ends
        self._promote_failed: set[str] = set()

    def maintain(self, busy: bool = False) -> int:
        """One bounded step of deferred work; returns how much was done (0: nothing left).
        In order: the full-text catch-up, the per-hour counts and the value counts (a short
        step each), one wanted value index (not when ``busy``: building one holds the writers
        back for seconds, tens at ten million events; an idle moment or ``logpipe maintain``
        builds it), then the first counts of an indexed field not counted yet (a store made
        before the value counts; as long as building its index)."""
        done = self.writer.catch_up_step()
        if done:
            return done
        try:
            done = self.roll_up(limit=rollup.STEP_ROWS)
        except StoreError:
            done = 0  # the next idle moment tries again; the histograms stay exact meanwhile
        try:
            done += self.count_values(steps=1)
        except StoreError:
            pass  # the same: top values count over the indexes meanwhile
        if done or busy:
            return done
        failed = self._promote_failed
        for field in self.wanted_fields():
            if field in failed:
                continue
            try:
                built = self.promote([field], pin=False)
            except (StoreError, QueryError):
                failed.add(field)  # not again from this process: maintain() must reach 0
                continue
            if built:
                return len(built)
        for field in self.uncounted_fields():
            if field in failed:
                continue
            try:
                self.promote([field], pin=False)  # its index exists: this counts its values
            except (StoreError, QueryError):
                failed.add(field)
                continue
            if field in self.uncounted_fields():
                failed.add(field)  # (not counted after all: maintain() must reach 0)
                continue
            return 1
        return 0

    def roll_up(self, limit: int | None = None) -> int:
        """Bring the per-hour counts up to the last row (at most ``limit`` rows), a step of
        rollup.STEP_ROWS per write transaction; returns how many rows were counted."""
        done = 0
        with self.db.lock:
            conn = self.db.connection()
            if not rollup.has_counts(conn):
                return 0  # a store made before the counts: prepare() adds the table
            while limit is None or done < limit:
                step = rollup.STEP_ROWS if limit is None else min(rollup.STEP_ROWS, limit - done)
                try:
                    with immediate(conn):
                        moved = rollup.catch_up_step(conn, step)
                except sqlite3.Error as exc:
                    raise StoreError(f"counting the events of {self.db.path} per hour failed: "
                                    f"{exc}") from None
                if not moved:
                    break
                done += moved
        return done

    def count_values(self, steps: int | None = None) -> int:
        """Bring the value counts of the indexed fields up to the last row (at most ``steps``
        write transactions of value_counts.step_rows each); returns how many rows were
        counted."""
        done = taken = 0
        with self.db.lock:
            conn = self.db.connection()
            self._add_value_counts(conn)
            while steps is None or taken < steps:
                try:
                    with immediate(conn):
                        moved = value_counts.catch_up_step(conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"counting the values of {self.db.path} failed: "
                                    f"{exc}") from None
                taken += 1
                if not moved:
                    break
                done += moved
        return done

    def _add_value_counts(self, conn: sqlite3.Connection) -> None:
        """A store made before the value counts (or before their dims) gets their tables
        (prepare() adds what is missing, as any write does)."""
        if not value_counts.has_table(conn) or not value_counts.has_dim_table(conn):
            self.db.prepare()

    def uncounted_fields(self) -> list[str]:
        """The fields with a value index (current layout) whose values are not counted yet (a
        store made before the value counts), or not decided per dim yet (a store made before
        the dims); promote() counts them."""
        with self.db.lock:
            conn = self.db.connection()
            if not value_counts.has_table(conn):
                return []
            indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                   "AND name LIKE ?", (JSON_INDEX_PREFIX + "%",)).fetchall()
            counted = set(value_counts.counted_fields(conn)) \
                - set(value_counts.undecided_fields(conn))
        fields = []
        for name, sql in indexes:
            found = _PATH_IN_SQL.search(sql or "")
            if found and name == json_index_name(found.group(1)) \
                    and found.group(1) not in counted:
                fields.append(found.group(1))
        return sorted(fields)

    def wanted_fields(self) -> list[str]:
        """The fields searches wanted a value index for, oldest wish first, and the fields of
        value indexes in an older layout (rebuilt in the current one)."""
        with self.db.lock:
            conn = self.db.connection()
            rows = conn.execute("SELECT substr(key, ?) FROM meta WHERE key LIKE ? "
                                "ORDER BY CAST(value AS INTEGER), key",
                                (len(WANTED_PREFIX) + 1, WANTED_PREFIX + "%")).fetchall()
            indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                   "AND name LIKE ?", (JSON_INDEX_PREFIX + "%",)).fetchall()
        fields = [r[0] for r in rows]
        for name, sql in indexes:
            found = _PATH_IN_SQL.search(sql or "")
            if found and name != json_index_name(found.group(1)) and found.group(1) not in fields:
                fields.append(found.group(1))
        return fields

    def promote(self, fields: Iterable[str] | None = None,
                pin: bool | None = None) -> list[str]:
        """Build the value index of each field (default: every wanted one, and the indexed
        fields not counted yet), each in its own write transaction, and count its values
        (value_counts.start) in the same transaction; returns the fields indexed now. Fields
        already indexed and counted are skipped. QueryError for a field that cannot have one
        (a promoted column, message, a name with other characters).

        ``pin`` (default: when ``fields`` are named) marks the indexes as asked for by name:
        built even for a field no event holds yet, in the place of an automatic index when
        the slots are full (QueryError when every slot is pinned), and never evicted.
        Unpinned ones (what searches wanted) are built only for a field some event holds
        and only into a free slot; past JSON_INDEX_LIMIT the rest stay wanted."""
        pin = fields is not None if pin is None else pin
        todo = self.wanted_fields() if fields is None else list(fields)
        if fields is None:
            with self.db.lock:
                self._add_value_counts(self.db.connection())
            todo += [f for f in self.uncounted_fields() if f not in todo]
        for field in todo:
            if not json_indexable(field):
                raise QueryError(f"{field!r} cannot have a value index: promoted columns, "
                                 "message, @timestamp and tags are indexed already, and names "
                                 "are letters, digits, '_', '.', '-' (at most 64)")
        built = []
        with self.db.lock:
            conn = self.db.connection()
            if todo:
                self._add_value_counts(conn)  # (a store made before them)
            for field in todo:
                name, old = json_index_name(field), json_index_name(field, "1")
                names = self._json_index_names(conn)
                if name not in names and old not in names and not pin \
                        and not self._held(conn, field):
                    continue  # no event holds it (yet): stays wanted, costs no slot
                evict = None
                if name not in names and len(names - {old}) >= JSON_INDEX_LIMIT:
                    if not pin:
                        continue  # stays wanted (a field indexed already may follow: counted)
                    evict = self._evictable(conn)
                    if evict is None:
                        raise QueryError(
                            f"cannot build the value index of {field!r}: all "
                            f"{JSON_INDEX_LIMIT} value indexes are pinned (maintain --index); "
                            f"unpin one first (maintain --unpin FIELD; pinned: "
                            f"{', '.join(self.pinned_fields())})")
                try:
                    with immediate(conn):
                        if evict is not None:
                            conn.execute(f"DROP INDEX IF EXISTS {json_index_name(evict)}")
                            value_counts.stop(conn, evict)
                        if name not in names:
                            conn.execute(json_index_sql(field))
                        conn.execute(f"DROP INDEX IF EXISTS {old}")  # the layout before v2
                        conn.execute("DELETE FROM meta WHERE key IN (?, ?)",
                                     (WANTED_PREFIX + field, ABSENT_PREFIX + field))
                        if pin:
                            conn.execute("INSERT INTO meta(key, value) VALUES (?, strftime("
                                         "'%s', 'now')) ON CONFLICT(key) DO NOTHING",
                                         (PINNED_PREFIX + field,))
                        value_counts.start(conn, field)  # (nothing when counted already)
                except sqlite3.Error as exc:
                    raise StoreError(f"building the value index of {field!r} in {self.db.path} "
                                    f"failed: {exc}") from None
                if name not in names:
                    built.append(field)
        return built

    def pinned_fields(self) -> list[str]:
        """The fields whose value index was asked for by name (never evicted)."""
        with self.db.lock:
            rows = self.db.connection().execute(
                "SELECT substr(key, ?) FROM meta WHERE key LIKE ? ORDER BY key",
                (len(PINNED_PREFIX) + 1, PINNED_PREFIX + "%")).fetchall()
        return [r[0] for r in rows]

    def unpin(self, field: str) -> bool:
        """Let an index asked for by name be evicted by a later one asked for by name; the
        index stays. Returns whether it was pinned."""
        with self.db.lock:
            conn = self.db.connection()
            try:
                with immediate(conn):
                    gone = conn.execute("DELETE FROM meta WHERE key = ?",
                                        (PINNED_PREFIX + field,)).rowcount
            except sqlite3.Error as exc:
                raise StoreError(f"unpinning {field!r} in {self.db.path} failed: {exc}") from None
        return bool(gone)

    @staticmethod
    def _json_index_names(conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?",
            (JSON_INDEX_PREFIX + "%",))}

    def _held(self, conn: sqlite3.Connection, field: str) -> bool:
        """Whether some event holds a value (not null) of ``field``; looks only at the rows
        added since the last look that found none (remembered under ABSENT_PREFIX), so a wish
        for a field that does not exist costs one read of the new rows per idle moment."""
        row = conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?",
                           (ABSENT_PREFIX + field,)).fetchone()
        after = row[0] if row and row[0] is not None else 0
        top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
        if top <= after:
            return False
        path = json_literal_path(field)
        found = conn.execute(f"SELECT 1 FROM events WHERE rowid > ? AND rowid <= ? AND "
                             f"COALESCE(json_type(doc, {path}), 'null') != 'null' LIMIT 1",
                             (after, top)).fetchone()
        if found:
            return True
        try:
            with immediate(conn):
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                             "DO UPDATE SET value = excluded.value", (ABSENT_PREFIX + field, top))
        except sqlite3.Error:
            pass  # (looked again next time)
        return False

    def _evictable(self, conn: sqlite3.Connection) -> str | None:
        """The automatic (not pinned) value index to give up for one asked for by name: one
        whose field no event holds first, else the one counted longest ago."""
        pinned = set(self.pinned_fields())
        candidates = []
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = "
                                      "'index' AND name LIKE ?", (JSON_INDEX_PREFIX + "%",)):
            found = _PATH_IN_SQL.search(sql or "")
            if not found or name != json_index_name(found.group(1)):
                continue  # (an older layout: replaced by maintenance anyway)
            field = found.group(1)
            if field in pinned:
                continue
            empty = conn.execute(f"SELECT 1 FROM events INDEXED BY {name} WHERE "
                                 f"{json_value_sql(field)} IS NOT NULL LIMIT 1").fetchone() is None
            since = conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?",
                                 (value_counts.COUNTED_PREFIX + field,)).fetchone()
            candidates.append((not empty, since[0] if since and since[0] is not None else 0,
                               field))
        return min(candidates)[2] if candidates else None


__all__ = ["SqliteMaintenance"]
