"""The embedded store's writer: SQLite, no JVM, one file under the state directory.

The store is :class:`store.sqlite.SqliteStore` (its parts together); this module holds its
writes and the full-text catch-up (the connections and the schema set-up are
:mod:`store.sqlite.database`'s).

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's convention),
``sqlite:///:memory:`` for a throw-away store. Options (keyword arguments or URL query):
``timeout`` (seconds to wait for another writer, default 30), ``synchronous`` (``normal``
default: in WAL mode a confirmed write survives a crash of any process, logpipe's or SQLite's,
and only a power cut or OS crash can lose the last commits; ``full`` also survives those, at one
fsync per write), ``cache_mb`` (page cache per connection, default 256: a ceiling, filled only
as pages are read; at a million events the indexes every batch touches outgrow 64 MB),
``batch_size`` (events per transaction), ``fts`` (``inline`` default, or ``deferred``).

The layout (tables, indexes, the full-text index) is :mod:`store.sqlite.schema`'s.

Several worker processes may write at once: WAL journal (readers never wait), a busy timeout,
one ``BEGIN IMMEDIATE`` transaction per batch, and ``INSERT ... ON CONFLICT(id) DO NOTHING``
with explicit rowids; a row whose rowid is missing after the insert was a repeat id, reported as
DUPLICATE and never stored twice.

Full text: with ``fts=inline`` (the default) a write indexes its rows' messages in its own
transaction whenever the index is caught up, so a committed event is searchable at once and the
tokenising runs in the writer (each worker process, in parallel) before it takes the lock. With
``fts=deferred``, or while older rows are still unindexed, it is near-real-time, like
Elasticsearch's refresh: a write stores rows only, and the
FTS5 index catches up later on the rows above a high-water rowid (``meta.fts_mark``; every row at
or below it is indexed, none above it is). Catching up happens (a) before any search that needs
full text (``refresh()``), so results are always complete as of the search's start, and (b) at
most once a second after a write, a bounded number of rows (``_REFRESH_ROWS``), so that a store
written at a moderate rate keeps up without searches paying for it. Each catch-up step is one
``BEGIN IMMEDIATE`` transaction (read the mark, index the rows above it, move the mark), so it is
safe with several writer processes; writers never hand out a rowid at or below the mark, and
prune hands FTS5 a 'delete' only for rows at or below it (only those were indexed).

Speed (bench/store_bench.py, bench/index_bench.py): the rows (and their full-text bodies) are
prepared in Python before the write lock is taken, so with several worker processes one prepares
while another writes; each chunk's insert is one SQLite statement (a multi-row INSERT with plain
parameters). Histograms of queries that an index serves in
time order (everything, host/program/qid values, time ranges) count each bucket over an index
range instead of sorting every matching row.
"""


from __future__ import annotations

import sqlite3
import sys
import threading
import time
from datetime import datetime
from typing import Sequence

import orjson

from logpipe.common.errors import StoreError
from logpipe.query.analyzer import fts_text
from logpipe.query.datemath import epoch_ms, time_period
from logpipe.store.base import Event, Outcome, Status
from logpipe.store.sqlite.database import Database
from logpipe.query.tree import INT64_MAX, INT64_MIN
from logpipe.store.sqlite.schema import (
    FTS_MARK,
    COLUMNS,
    MARK_SQL,
    TOP_AND_MARK_SQL,
    immediate,
    insert_fts,
    insert_rows,
    stored_doc,
)

# events prepared / inserted per step of a write (9 parameters each: SQLite allows 32766)
_PIPE_CHUNK = 1000
# rows indexed per catch-up transaction: writers wait for at most one step (~0.2 s)
_CATCH_UP_STEP = 20000
# after a write, at most once per _REFRESH_S seconds, catch up at most _REFRESH_ROWS rows
# (~50 ms): a store written at a moderate rate stays caught up; a bulk load leaves the rest to
# the first full-text search (or refresh())
_REFRESH_S = 1.0
_REFRESH_ROWS = 4000


def timestamp_ms(value) -> int | None:
    """Epoch milliseconds of an event's @timestamp; ValueError when it is not a time."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"@timestamp is not a time: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"@timestamp is not a time: {value!r}")
    if len(value) == 24 and value[23] == "Z":  # the pipeline's own form, read as numbers
        ms = _canonical_ms(value)
        if ms is not None:
            return ms
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        start, _ = time_period(value)  # partial dates, nanoseconds; raises ValueError
        return start
    return epoch_ms(dt)


def _canonical_ms(value: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (what enrich writes) in epoch ms without a datetime per
    event: the day's midnight is remembered; None for anything else."""
    if value[10] != "T" or value[13] != ":" or value[16] != ":" or value[19] != ".":
        return None
    clock = value[11:13] + value[14:16] + value[17:19] + value[20:23]
    if not (clock.isascii() and clock.isdigit()):
        return None
    h, m, sec = int(clock[0:2]), int(clock[2:4]), int(clock[4:6])
    if h > 23 or m > 59 or sec > 59:
        return None
    day = _MIDNIGHT_MS.get(value[:10])
    if day is None:
        try:
            day = epoch_ms(datetime.fromisoformat(value[:10] + "T00:00:00+00:00"))
        except ValueError:
            return None
        if len(_MIDNIGHT_MS) > 4096:
            _MIDNIGHT_MS.clear()
        _MIDNIGHT_MS[value[:10]] = day
    return day + ((h * 60 + m) * 60 + sec) * 1000 + int(clock[6:9])


_MIDNIGHT_MS: dict[str, int] = {}


def _scalar(value):
    """A promoted column's value: scalars only; an integer SQLite cannot hold as one becomes a
    float (as SQLite's JSON functions make it)."""
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return float(value)
    return value if isinstance(value, (str, int, float)) else None


def _switch_fast():
    """A short GIL switch interval while a write runs (restored after): the helper thread that
    starts storing a chunk, or comes back from SQLite, would otherwise wait up to 5 ms (the
    default interval) for the thread that is preparing rows in Python."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, _SWITCH_INTERVAL))
        _switch_users += 1


def _switch_restore():
    global _switch_users
    with _switch_lock:
        _switch_users -= 1
        if _switch_users == 0:
            sys.setswitchinterval(_switch_saved)


_SWITCH_INTERVAL = 0.0002
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005


class SqliteWriter:
    """The writing part of the embedded store: writes and the full-text catch-up (see the
    module docstring), on the database's writing connection."""

    def __init__(self, db: Database):
        self.db = db
        self._ts_cache: dict = {}   # timestamp text -> ms (log timestamps repeat)
        self._refreshed = time.monotonic()   # the last full-text catch-up

    # ---------------------------------------------------------------- write
    def write(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        with self.db.lock:
            if not self.db.ready:
                self.db.prepare()
            for start in range(0, len(events), self.db.batch_size):
                self._write_chunk(events, range(start, min(len(events),
                                                           start + self.db.batch_size)), outcomes)
            if time.monotonic() - self._refreshed >= _REFRESH_S:
                try:
                    self._catch_up(limit=_REFRESH_ROWS)
                except StoreError:
                    pass  # the events are stored; the next search catches up
        return outcomes  # type: ignore[return-value]

    def _ts(self, value) -> int | None:
        """timestamp_ms, remembered: log timestamps repeat (many events per second)."""
        cache = self._ts_cache
        try:
            return cache[value]
        except (KeyError, TypeError):
            pass
        ms = timestamp_ms(value)
        if isinstance(value, str):
            if len(cache) >= 65536:
                cache.clear()
            cache[value] = ms
        return ms

    def _prepare_rows(self, events, indices, outcomes):
        """The parameters of insert_rows (the rows' values one after another; each row's rowid
        slot is filled in once the transaction knows the first free rowid), the event index of
        each row, and each row's full-text body (None: nothing to index; only when the store
        indexes full text as it writes). Rejected events get their outcome here. Runs before
        the write transaction: other writers keep the store meanwhile."""
        rows: list = []
        where: list = []
        bodies: list | None = [] if self.db.fts == "inline" else None
        dumps, ts_of, ts_cached = orjson.dumps, self._ts, self._ts_cache.get
        add_row, add_where = rows.extend, where.append
        add_body = bodies.append if bodies is not None else None
        to_body = fts_text
        for i in indices:
            ev = events[i]
            doc = stored_doc(ev.doc)  # a malformed typed value kept out of every index
            get = doc.get
            try:
                stamp = get("@timestamp")
                # the cache first, without a call (most timestamps repeat); else _ts
                ts = ts_cached(stamp) if type(stamp) is str else None
                if ts is None:
                    ts = ts_of(stamp)
                if ts is not None and not INT64_MIN <= ts <= INT64_MAX:
                    raise ValueError(f"{get('@timestamp')!r} is out of range")
            except (ValueError, OverflowError) as exc:
                outcomes[i] = Outcome(Status.REJECTED, f"bad @timestamp: {exc}")
                continue
            try:
                data = dumps(doc).decode()
            except TypeError as exc:
                outcomes[i] = Outcome(Status.REJECTED, f"not JSON-serialisable: {exc}")
                continue
            # the promoted columns (host, type, program, qid, size): scalars only
            host, type_, program, qid, size = (get("host"), get("type"), get("program"),
                                               get("qid"), get("size"))
            # (the common case tested cheaply; anything else goes through _scalar)
            if not (type(host) is str and type(type_) is str and type(program) is str
                    and (qid is None or type(qid) is str)
                    and (size is None or type(size) is int and INT64_MIN <= size <= INT64_MAX)):
                host, type_, program, qid, size = map(_scalar, (host, type_, program, qid, size))
            add_row((None, ev.id, ts, host, type_, program, qid, size, data))
            add_where(i)
            if add_body is not None:
                # the body the catch-up would compute from the stored JSON (fts_bodies)
                m = get("message")
                add_body(None if m is None else (to_body(m if type(m) is str else str(m))
                                                 or None))
        return rows, where, bodies

    def _write_chunk(self, events, indices, outcomes) -> None:
        """One transaction. The rows (and their full-text bodies) are prepared in Python first,
        in chunks of ``_PIPE_CHUNK`` events, before the write lock is taken: with several
        worker processes, one prepares while another writes, and the lock is held only for
        SQLite's own work (a multi-row INSERT per chunk).
        Full text is indexed in the same transaction when the index is caught up (every row
        so far indexed: the mark is at the last row); otherwise the rows wait for the catch-up,
        which keeps the rule that every row at or below the mark is indexed and none above.
        Repeated ids: ``ON CONFLICT(id) DO NOTHING``; when a chunk inserts fewer rows than it
        holds, the rowids that made it tell which were duplicates (no other writer can insert
        meanwhile: BEGIN IMMEDIATE)."""
        todo: list[int] = []
        seen: set[str] = set()
        for i in indices:
            eid = events[i].id
            if eid in seen:
                outcomes[i] = Outcome(Status.DUPLICATE)
            else:
                seen.add(eid)
                todo.append(i)
        if not todo:
            return
        conn = self.db.conn
        assert conn is not None  # _write_chunk runs after prepare()
        chunks = []
        for k in range(0, len(todo), _PIPE_CHUNK):
            params, where, bodies = self._prepare_rows(events, todo[k:k + _PIPE_CHUNK], outcomes)
            if where:
                chunks.append((params, where, bodies))
        if not chunks:
            return
        written: list[tuple[int, bool]] = []  # (event index, inserted)
        width = len(COLUMNS)
        try:
            with immediate(conn):
                top, mark = conn.execute(TOP_AND_MARK_SQL).fetchone()
                rowid = max(top, mark or 0)
                inline = self.db.fts == "inline" and mark is not None and mark >= top
                for params, where, bodies in chunks:
                    count, first = len(where), rowid + 1
                    params[0::width] = range(first, first + count)
                    n = conn.execute(insert_rows(count), params).rowcount
                    if n == count:
                        written.extend((i, True) for i in where)
                        inserted = None
                    else:
                        inserted = {r for (r,) in conn.execute(
                            "SELECT rowid FROM events WHERE rowid BETWEEN ? AND ?",
                            (first, first + count - 1))}
                        written.extend((i, first + j in inserted) for j, i in enumerate(where))
                    if inline:
                        fts: list = []
                        for j, body in enumerate(bodies):
                            if body is not None and (inserted is None or first + j in inserted):
                                fts += (first + j, body)
                        if fts:
                            conn.execute(insert_fts(len(fts) // 2), fts)
                    rowid += count
                if inline:
                    conn.execute("UPDATE meta SET value = ? WHERE key = ?", (rowid, FTS_MARK))
        except sqlite3.Error as exc:
            reason = f"embedded store {self.db.path}: {exc}"
            for i in todo:
                if outcomes[i] is None:
                    outcomes[i] = Outcome(Status.RETRY, reason)
            for i, _ in written:
                outcomes[i] = Outcome(Status.RETRY, reason)
            return
        if inline:  # nothing for the timed catch-up to do (it would wait for the lock)
            self._refreshed = time.monotonic()
        self.db.wrote = True
        for i, ok in written:
            outcomes[i] = Outcome(Status.INDEXED if ok else Status.DUPLICATE)

    # ---------------------------------------------------------------- full-text catch-up
    def refresh(self) -> int:
        """Index the full text of every row committed so far (Elasticsearch's refresh);
        returns how many rows were looked at. Searches that need full text call it first."""
        with self.db.lock:
            return self._catch_up()

    def catch_up_step(self) -> int:
        """Deferred work while the pipeline is idle: one bounded full-text catch-up step, so a
        bulk load becomes fully searchable without waiting for the first search."""
        with self.db.lock:
            return self._catch_up(limit=_CATCH_UP_STEP)

    def _catch_up(self, limit: int | None = None) -> int:
        """Index the messages of the rows above the mark, up to the last row that exists now
        (rows that other writers commit meanwhile are left for next time, so this ends),
        ``_CATCH_UP_STEP`` rows per transaction; at most ``limit`` rows when given."""
        conn = self.db.connection()
        top, mark = conn.execute(TOP_AND_MARK_SQL).fetchone()
        if mark is not None and mark >= top:
            # caught up (the usual case: rows are indexed as they are written): a search's
            # refresh must not queue for the write lock behind the workers to learn that
            self._refreshed = time.monotonic()
            return 0
        target = None
        done = 0
        while limit is None or done < limit:
            try:
                with immediate(conn):
                    mark = conn.execute(MARK_SQL).fetchone()
                    top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
                    if target is None:
                        target = top
                    if mark is None:  # made before the catch-up existed: everything is indexed
                        conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (FTS_MARK, top))
                        break
                    mark = mark[0]
                    if mark >= target:
                        break
                    step = _CATCH_UP_STEP if limit is None else min(_CATCH_UP_STEP, limit - done)
                    upto = min(target, mark + step)
                    rows = conn.execute("SELECT rowid, doc -> '$.message' FROM events WHERE "
                                        "rowid > ? AND rowid <= ?", (mark, upto)).fetchall()
                    index_messages(conn, rows)
                    conn.execute("UPDATE meta SET value = ? WHERE key = ?", (upto, FTS_MARK))
            except sqlite3.Error as exc:
                raise StoreError(f"indexing the full text of {self.db.path} failed: {exc}") \
                    from None
            done += upto - mark
        self._refreshed = time.monotonic()
        return done


def fts_bodies(rows) -> list[tuple[int, str]]:
    """(rowid, FTS body) for rows of (rowid, the message as JSON text or None): the same body
    the message had when it was indexed (str() of a message that is not a string, as before)."""
    out = []
    to_body, loads = fts_text, orjson.loads
    for rid, raw in rows:
        if raw is None:
            continue
        m = loads(raw)
        if m is None:
            continue
        body = to_body(m if type(m) is str else str(m))
        if body:
            out.append((rid, body))
    return out


def index_messages(conn: sqlite3.Connection, rows) -> None:
    """Add rows of (rowid, the message as JSON text or None) to the full-text index, as
    _write_chunk stores rows: this thread computes the bodies of a chunk (Python, ~7 us a row)
    while a helper thread inserts the previous one (SQLite, ~6 us a row, without the GIL; this
    thread does not touch the connection meanwhile)."""
    worker = _OneBehind("logpipe-sqlite-fts")

    def insert(params: list, count: int) -> None:
        conn.execute(insert_fts(count), params)

    _switch_fast()
    try:
        for k in range(0, len(rows), _PIPE_CHUNK):
            bodies = fts_bodies(rows[k:k + _PIPE_CHUNK])
            if not bodies:
                continue
            worker.start(insert, [v for pair in bodies for v in pair], len(bodies))
        worker.wait()
    finally:
        worker.join()
        _switch_restore()


class _OneBehind:
    """One call at a time in a helper thread, so the calling thread prepares the next chunk
    while SQLite (which releases the GIL) stores the previous one. ``start`` first waits for
    the previous call; an error raised there comes out of the next ``start`` or ``wait``."""

    def __init__(self, name: str):
        self.name = name
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, fn, *args) -> None:
        self.wait()

        def run():
            try:
                fn(*args)
            except BaseException as exc:  # re-raised in the calling thread
                self.error = exc

        self.thread = threading.Thread(target=run, name=self.name, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

