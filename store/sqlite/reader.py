"""The embedded store's reader: the request's SQL condition (over the value indexes there are),
counts and one event. The query's translation to SQL is :mod:`store.sqlite.translate`'s; pages
and streams :mod:`store.sqlite.paging`'s; histograms and top values
:mod:`store.sqlite.aggregations`'.

Counts with full-text conditions take the full-text index's own ways: the words of a conjunction
are one FTS5 expression (the index intersects them), and a capped total walks the index's
matches and stops at the cap.

A search never writes: a field without a value index is read from the documents, and the wish
for an index is noted (one meta row, only when the write lock is free at once) for the store's
maintenance to build (:mod:`store.sqlite.maintenance`).

Reads do not queue behind one lock: each thread reads on a connection of its own (WAL lets
readers run side by side, and beside the writer), and every read statement runs under the
calling thread's :class:`store.budget.Budget`: a progress handler checks it every
PROGRESS_STEPS SQLite instructions and interrupts the statement when the budget is spent or
cancelled (then the budget's error is raised: "query too expensive: ..."). The connections are
:mod:`store.sqlite.database`'s.
"""

from __future__ import annotations

import sqlite3


from logpipe.common.errors import QueryError, StoreError
from logpipe.query.datemath import epoch_ms
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    All,
    And,
    Range,
    Term,
    Text,
    TextWildcard,
    TimeRange,
    Wildcard,
)
from logpipe.store.base import (
    SearchRequest,
)
from logpipe.store.sqlite import functions
from logpipe.store.sqlite.schema import (
    FTS_TABLE,
    JSON_INDEX_PREFIX,
    SQL_COLUMNS,
    WANTED_PREFIX,
    json_index_name,
    json_indexable,
    returned_doc,
)


from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.writer import SqliteWriter
from logpipe.store.sqlite.translate import (
    PART_HEAD,
    doc_field,
    fts_match_all,
    sql_query,
    value_fields,
)


class SqliteReader:
    """The reading part of the embedded store: search, keyset pages, histograms, top values,
    count, on the database's reading connections."""

    def __init__(self, db: Database, full_text: SqliteWriter):
        self.db = db
        self.full_text = full_text   # its refresh() indexes what a full-text search needs
        self._wanted_noted: set[str] = set()   # value-index wishes already recorded

    def _where(self, request: SearchRequest, also: tuple = (), documents: bool = False,
               q=None, rowids: tuple[int, int] | None = None) -> tuple[str, list]:
        """SQL for the request; ``also`` names more fields the caller reads values of (top);
        ``documents``: read JSON fields from the documents even where a value index exists
        (the form that checks one event cheaply, for a walk along the time index); ``q``: this
        compiled condition instead of the request's query (its window still applies);
        ``rowids``: see :func:`sql_query`."""
        if q is None:
            q = compile_query(request.query or "*")
        indexed = self._value_indexes(value_fields(q) | set(also))
        if documents:
            indexed = frozenset()
        params: list = []
        where = sql_query(q, params, indexed, rowids)
        if FTS_TABLE in where:  # bare words, phrases, message: (also the vocabulary)
            self.full_text.refresh()
        if request.start is not None:
            where += " AND events.ts >= ?"
            params.append(epoch_ms(request.start))
        if request.end is not None:
            where += " AND events.ts < ?"
            params.append(epoch_ms(request.end))
        return where, params

    def _value_indexes(self, fields) -> frozenset:
        """The fields among ``fields`` that have a value index. For the others the wish is
        noted (promotion by use) and the query reads the documents until maintenance has
        built the index: a search never builds one (that held every writer back for seconds)."""
        wanted = {f for f in fields if json_indexable(f)}
        if not wanted:
            return frozenset()
        names = self._index_names()
        have = {f for f in wanted if json_index_name(f) in names}
        if wanted - have:
            self._note_wanted(wanted - have)
        return frozenset(have)

    def _note_wanted(self, fields: set[str]) -> None:
        """Record that searches want value indexes on ``fields`` (meta rows WANTED_PREFIX +
        field) for maintenance to build. Never waits for the write lock: when another
        connection holds it, or the store is read-only, the wish is noted by a later search."""
        noted = self._wanted_noted
        new = sorted(fields - noted)
        if not new:
            return
        with self.db.lock:
            conn = self.db.connection()
            keys = [WANTED_PREFIX + f for f in new]
            present = {r[0] for r in conn.execute(
                f"SELECT key FROM meta WHERE key IN ({', '.join('?' * len(keys))})", keys)}
            todo = [k for k in keys if k not in present]
            try:
                if todo:
                    conn.execute("PRAGMA busy_timeout = 0")
                    conn.execute("INSERT INTO meta(key, value) VALUES "
                                 + ", ".join(["(?, strftime('%s', 'now'))"] * len(todo))
                                 + " ON CONFLICT(key) DO NOTHING", todo)
                noted.update(new)
            except sqlite3.Error:  # busy or read-only: not now
                pass
            finally:
                if todo:
                    conn.execute(f"PRAGMA busy_timeout = {int(self.db.timeout * 1000)}")

    def _run(self, sql: str, params: list):
        with self.db.reading() as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                functions.raise_failure(exc)
                text = str(exc)
                if "fts5" in text or "syntax error" in text:
                    raise QueryError(f"the embedded store cannot run this query: {text}") \
                        from None
                if "interrupted" in text:
                    raise
                raise StoreError(f"embedded store {self.db.path}: {text}") from None

    def _on_value_index(self, request: SearchRequest) -> tuple[str, list] | None:
        """For a query that is one term, wildcard or range on a field with a value index (and
        no time window): the UNION ALL of its index-range parts (rowid, ts), disjoint, so that
        counting and ordering by time read only the index. None otherwise."""
        if request.start is not None or request.end is not None:
            return None
        q = compile_query(request.query or "*")
        if not isinstance(q, (Term, Wildcard, Range)) or q.field in SQL_COLUMNS \
                or q.field == "_id":
            return None
        indexed = self._value_indexes({doc_field(q.field)})
        if doc_field(q.field) not in indexed:
            return None
        params: list = []
        where = sql_query(q, params, indexed)
        head, tail = "events.rowid IN (", ")"
        if not (where.startswith(head) and where.endswith(tail)):
            return None
        parts = where[len(head):-len(tail)]
        return parts.replace(PART_HEAD, "SELECT rowid, ts FROM events INDEXED BY "), params

    def _count_upto(self, request: SearchRequest, cap: int | None) -> int:
        """How many events match, counting no further than ``cap`` (None: all of them), from
        a value index alone when the query allows."""
        on_index = self._on_value_index(request)
        driven = None if on_index else fts_driven(compile_query(request.query or "*"))
        if on_index is not None:
            rows, params = f"SELECT 1 FROM ({on_index[0]})", on_index[1]
        elif driven is not None:
            # along the full-text index's matches, each looked up by rowid: stops at the cap
            # (``rowid IN (matches)`` would collect every match first)
            params = []
            match = fts_match_all(driven[0], params)
            where, rest = self._where(request, q=driven[1])
            params += rest
            self.full_text.refresh()
            rows = (f"SELECT 1 FROM {FTS_TABLE} CROSS JOIN events WHERE {FTS_TABLE} MATCH "
                    f"{match} AND events.rowid = {FTS_TABLE}.rowid AND {where}")
        else:
            where, params = self._where(request)
            rows = f"SELECT 1 FROM events WHERE {where}"
        if cap is None:
            return self._run(f"SELECT count(*) FROM ({rows})", params)[0][0]
        return self._run(f"SELECT count(*) FROM ({rows} LIMIT ?)", params + [cap])[0][0]

    def _index_names(self) -> set[str]:
        return {r[0] for r in self._run("SELECT name FROM sqlite_master WHERE type = 'index' "
                                        "AND name LIKE ?", [JSON_INDEX_PREFIX + "%"])}

    def count(self, request: SearchRequest) -> int:
        return self._count_upto(request, None)

    def size(self) -> dict:
        """What the store holds: ``events`` and ``bytes`` on disk (the database, its WAL and
        shared-memory files), ``parts`` each file's size (the health page)."""
        import os

        parts = []
        for suffix in ("", "-wal", "-shm"):
            try:
                parts.append((os.path.basename(self.db.path) + suffix,
                              os.stat(self.db.path + suffix).st_size))
            except OSError:
                continue
        events = self._run("SELECT count(*) FROM events", [])[0][0]
        return {"events": int(events), "bytes": sum(b for _, b in parts), "parts": parts}

    # single events, for the web page (search/web/data.py)
    def get_event(self, event_id: str) -> dict | None:
        """The stored document with this id (``_id`` added), or None."""
        rows = self._run("SELECT id, doc FROM events WHERE id = ?", [event_id])
        if not rows:
            return None
        event = returned_doc(rows[0][1])
        event["_id"] = rows[0][0]
        return event


_TIME_INDEXED = frozenset(("host", "program", "qid"))
def fts_driven(q) -> tuple[list, object] | None:
    """(the full-text conditions, the rest of the conjunction) when the query is one or a
    conjunction holding some: their matches can be walked in the full-text index's order,
    each event looked up by rowid, so that counting them up to a cap stops at the cap."""
    if isinstance(q, (Text, TextWildcard)):
        return [q], All()
    if isinstance(q, And):
        texts = [i for i in q.items if isinstance(i, (Text, TextWildcard))]
        rest = tuple(i for i in q.items if i not in texts)
        if texts:
            return texts, (All() if not rest else rest[0] if len(rest) == 1 else And(rest))
    return None


def index_friendly(q) -> bool:
    """True when every part of a query is served by the ts index or a (column, ts) index: then
    counting bucket by bucket over index ranges is cheap and the planner cannot go wrong."""
    if isinstance(q, (All, TimeRange)):
        return True
    if isinstance(q, Term):
        return q.field in _TIME_INDEXED
    if isinstance(q, And):
        return all(index_friendly(i) for i in q.items)
    return False

