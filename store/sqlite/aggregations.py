"""The embedded store's aggregations: histograms and top values, each by the cheapest way the
store can answer it exactly.

Histograms of queries that an index serves in time order (everything, host/program/qid values,
time ranges) count each bucket over an index range instead of sorting every matching row; those
of everything or of one host, type or program in whole hours read the per-hour counts
(:mod:`store.sqlite.rollup`). Top values read the value counts of an indexed field
(:mod:`store.sqlite.value_counts`) when the query allows, else walk the field's value index or
group the matching rows. The conditions and the reading connections are the reader's
(:class:`store.sqlite.reader.SqliteReader`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime


from logpipe.common.errors import StoreError
from logpipe.query.datemath import MAX_BUCKETS, epoch_ms, fill_buckets, parse_interval
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    TEXT_FIELD,
    TEXT_KEYWORD,
    All,
    Term,
    numeric,
)
from logpipe.store.base import (
    SearchRequest,
    bucket_key,
)
from logpipe.query.tree import INT64_MAX, INT64_MIN
from logpipe.store.sqlite import rollup, value_counts
from logpipe.store.sqlite.schema import (
    FTS_TABLE,
    SQL_COLUMNS,
    json_index_name,
    json_indexable,
    json_literal_path,
    json_value_sql,
)


from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.reader import SqliteReader, index_friendly
from logpipe.store.sqlite.translate import (
    json_path,
)


class SqliteAggregations:
    """The aggregation part of the embedded store: histogram and top values over the reader's
    conditions."""

    def __init__(self, db: Database, reader: SqliteReader):
        self.db = db
        self.reader = reader   # the request's SQL condition, statements under the budget

    def histogram(self, request: SearchRequest, interval: str) -> list[tuple[datetime, int]]:
        step = parse_interval(interval)
        q = compile_query(request.query or "*")
        dim = _counted_dim(q)
        if dim is not None and step % rollup.HOUR == 0:
            where, params = self.reader._where(SearchRequest(query=request.query))
            counted = self._histogram_by_counts(dim, where, params, step, request.start,
                                                request.end)
            if counted is not None:
                return counted
        if index_friendly(q):
            # the window goes into each bucket's own range: with the window's range on ts as
            # well, SQLite seeks on the window and scans all of it for every bucket
            where, params = self.reader._where(SearchRequest(query=request.query))
            return self._histogram_by_range(where, params, step, request.start, request.end)
        where, params = self.reader._where(request)
        # buckets floor the time (as Elasticsearch does, also before 1970)
        rows = self.reader._run(f"SELECT events.ts - ((events.ts % ?) + ?) % ? AS bucket, count(*) "
                         f"FROM events WHERE {where} AND events.ts IS NOT NULL GROUP BY bucket "
                         f"ORDER BY bucket", [step, step, step] + params)
        return fill_buckets(rows, step)

    def _histogram_by_counts(self, dim: tuple[str, list], where: str, params: list,
                             step: int, start: datetime | None, end: datetime | None):
        """A histogram of everything or of one host, type or program, in buckets of whole
        hours, from the per-hour counts (rollup.counted_histogram), all in one snapshot of
        the store; None when the counts cannot serve it."""
        w_lo = epoch_ms(start) if start is not None else INT64_MIN
        w_hi = epoch_ms(end) if end is not None else INT64_MAX

        def read(conn):  # -> (no match at all, the counts or None)
            bounds = self._data_bounds(where, params, step, w_lo, w_hi, conn)
            if bounds is None:
                return True, None
            return False, rollup.counted_histogram(conn, dim[0], dim[1], where, params, step,
                                                   bounds[0], bounds[1], w_lo, w_hi)

        # one read snapshot: the counts, the mark and the rows
        nothing, counts = self._in_snapshot(read)
        if nothing:
            return []
        return None if counts is None else fill_buckets(sorted(counts.items()), step)

    def _data_bounds(self, where: str, params: list, step: int, w_lo: int, w_hi: int,
                     conn: sqlite3.Connection | None = None) -> tuple[int, int] | None:
        """The first and last bucket holding a match in the window (None: no match); a
        QueryError when there would be too many buckets."""
        window = "events.ts >= ? AND events.ts < ?"
        sql = (f"SELECT (SELECT min(events.ts) FROM events WHERE {where} AND {window}), "
               f"(SELECT max(events.ts) FROM events WHERE {where} AND {window})")
        args = params + [w_lo, w_hi] + params + [w_lo, w_hi]
        lo, hi = (conn.execute(sql, args).fetchone() if conn is not None
                  else self.reader._run(sql, args)[0])
        if lo is None:
            return None
        first, last = lo - lo % step, hi - hi % step  # Python's % floors
        if (last - first) // step > MAX_BUCKETS:
            fill_buckets([(first, 1), (last, 1)], step)  # raises the QueryError
        return first, last

    def _histogram_by_range(self, where: str, params: list, step: int,
                            start: datetime | None = None, end: datetime | None = None):
        """For a query an index answers in time order (everything, a promoted field's value,
        a time range): one index range count per bucket. GROUP BY on a computed bucket would
        sort every matching row instead (7x slower on a million events). The window
        [start, end) bounds the buckets' ranges (``where`` holds no time window)."""
        w_lo = epoch_ms(start) if start is not None else INT64_MIN
        w_hi = epoch_ms(end) if end is not None else INT64_MAX
        bounds = self._data_bounds(where, params, step, w_lo, w_hi)
        if bounds is None:
            return []
        first, last = bounds
        rows = self.reader._run(f"WITH RECURSIVE b(x) AS (SELECT ? UNION ALL SELECT x + ? FROM b "
                         f"WHERE x < ?) SELECT b.x, (SELECT count(*) FROM events WHERE {where} "
                         f"AND events.ts >= max(b.x, ?) AND events.ts < min(b.x + ?, ?)) FROM b",
                         [first, step, last] + params + [w_lo, step, w_hi])
        return fill_buckets(rows, step)

    def top(self, request: SearchRequest, field: str, size: int = 10) -> list[tuple[str, int]]:
        doc_field = TEXT_FIELD if field == TEXT_KEYWORD else field
        where, params = self.reader._where(request, also=(doc_field,))
        size = max(1, int(size))
        if field in SQL_COLUMNS:
            col = SQL_COLUMNS[field]
            sql = (f"SELECT events.{col} AS v, count(*) AS c FROM events WHERE {where} "
                   f"AND events.{col} IS NOT NULL GROUP BY v ORDER BY c DESC, v ASC LIMIT ?")
            rows = self.reader._run(sql, params + [size])
        elif json_indexable(doc_field) and json_index_name(doc_field) in self.reader._index_names():
            # everything, or one term on host, type or program: the value counts maintenance
            # keeps (value_counts), when they serve
            dim = (_counted_dim(compile_query(request.query or "*"))
                   if request.start is None and request.end is None else None)
            counted = self._top_by_counts(doc_field, size, dim) if dim is not None else None
            if counted is not None:
                return [(bucket_key(v), c) for v, c in counted]
            force = where == "1" or self.reader._count_upto(
                request, _TOP_BY_FIELD_INDEX + 1) > _TOP_BY_FIELD_INDEX
            # (value by value only for a field of few values: with many, each value's count
            # repeats the query's own work, hundreds of times before it gives up)
            rows = self._top_by_heavy(request, doc_field, size) if force and where != "1" \
                else None
            walk = force and rows is None and not self._many_values(doc_field)
            if walk:
                rows = self._top_by_values(doc_field, where, params, size)
            if rows is None and force:
                rows = self._top_by_groups(doc_field, where, params, size)
            if rows is None:
                rows = self.reader._run(*_indexed_top(doc_field, where, params, size, force))
        else:
            path = json_path(doc_field)
            sql = (f"SELECT j.value AS v, count(DISTINCT events.rowid) AS c FROM events, "
                   f"json_each(events.doc, ?) AS j WHERE {where} AND j.type NOT IN "
                   f"('null', 'object', 'array') GROUP BY v ORDER BY c DESC, v ASC LIMIT ?")
            rows = self.reader._run(sql, [path] + params + [size])
        return [(bucket_key(v), c) for v, c in rows]

    def _top_by_heavy(self, request: SearchRequest, field: str, size: int):
        """Top values under a query that matches many events, of a field of many values
        nearly all of one event each (value_counts.top_under_query), in one snapshot; None
        when the counts cannot serve it (or the query has full text: its matches would be
        collected once per value)."""
        where, params = self.reader._where(request, documents=True)
        if FTS_TABLE in where:
            return None
        return self._in_snapshot(value_counts.top_under_query, field, size, where, params)

    def _in_snapshot(self, read, *args):
        """``read(conn, *args)`` in one read transaction: the counts, their mark and the rows
        above it seen as of one moment."""
        with self.db.reading() as conn:
            try:
                conn.execute("BEGIN")
                try:
                    return read(conn, *args)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise
                raise StoreError(f"embedded store {self.db.path}: {exc}") from None

    def _many_values(self, field: str) -> bool:
        """More distinct values than _TOP_DISTINCT_WALK by the value counts (False when the
        field's values are not counted: the walk finds out)."""
        with self.db.reading() as conn:
            try:
                return bool(value_counts.more_values_than(conn, field, _TOP_DISTINCT_WALK))
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise
                raise StoreError(f"embedded store {self.db.path}: {exc}") from None

    def _top_by_counts(self, field: str, size: int,
                       dim: tuple[str, list] = ("", [""])) -> list[tuple] | None:
        """Top values of an indexed field over every event (``dim`` ('', [''])) or under one
        term on host, type or program (``dim``: _counted_dim's column and values) from its
        value counts and the rows not counted yet (value_counts.counted_top), in one snapshot
        of the store; None when the counts cannot serve it."""
        if not dim[0]:
            return self._in_snapshot(value_counts.counted_top, field, size)
        return self._in_snapshot(value_counts.counted_top, field, size, dim[0], dim[1])

    def _top_by_values(self, field: str, where: str, params: list, size: int):
        """Top values of an indexed field by walking its distinct scalar values in index order
        (one value read per distinct value: SQLite 3.40 recomputes an indexed expression for
        every row it returns, so GROUP BY would read every document) and counting each with an
        index range; lists and objects as _indexed_top does. None when the field has more than
        _TOP_DISTINCT_WALK distinct values (then GROUP BY is the cheaper way)."""
        x, path, index = json_value_sql(field, "events."), json_literal_path(field), \
            json_index_name(field)
        first = f"SELECT {x} FROM events INDEXED BY {index} WHERE {x} < x'' ORDER BY {x} LIMIT 1"
        after = (f"SELECT {x} FROM events INDEXED BY {index} WHERE {x} > ? AND {x} < x'' "
                 f"ORDER BY {x} LIMIT 1")
        count = f"SELECT count(*) FROM events INDEXED BY {index} WHERE {x} = ? AND {where}"
        counts: dict = {}
        row = self.reader._run(first, [])
        while row:
            value = row[0][0]
            if len(counts) >= _TOP_DISTINCT_WALK:
                return None
            n = self.reader._run(count, [value] + params)[0][0]
            if n:
                counts[value] = n
            row = self.reader._run(after, [value])
        for value, n in self.reader._run(
                f"SELECT j.value, count(DISTINCT events.rowid) FROM events INDEXED BY {index}, "
                f"json_each(events.doc, {path}) AS j WHERE {where} AND {x} >= x'' AND j.type "
                f"NOT IN ('null', 'object', 'array') GROUP BY j.value", params):
            counts[value] = counts.get(value, 0) + n
        # SQLite's order: numbers before text, text by its bytes (= code points)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], isinstance(kv[0], str), kv[0]))
        return ranked[:size]

    def _top_by_groups(self, field: str, where: str, params: list, size: int):
        """Top values of an indexed field whose values are all scalars, in one pass along its
        index: GROUP BY the indexed value, naming each group by one of its rowids (SQLite 3.40
        would read a document per group to return the value itself) and keeping the ``size``
        largest; the ties at the cut are resolved as Elasticsearch does (the smaller value
        first) by a second pass that stops at the first groups of that count in value order.
        Then the values of those few rowids. None when the field holds lists or objects."""
        x, index = json_value_sql(field, "events."), json_index_name(field)
        if self.reader._run(f"SELECT 1 FROM events INDEXED BY {index} WHERE {x} >= x'' LIMIT 1", []):
            return None
        groups = f"FROM events INDEXED BY {index} WHERE {x} < x'' AND ({where}) GROUP BY {x}"
        # (a bare column in an aggregate query is taken from one row of the group: any row
        # names the group's value, and costs less than min())
        best = self.reader._run(f"SELECT events.rowid, count(*) AS c {groups} ORDER BY c DESC "
                         f"LIMIT ?", params + [size])
        if len(best) == size:
            cut = best[-1][1]
            above = [(r, c) for r, c in best if c > cut]
            best = above + self.reader._run(f"SELECT events.rowid, count(*) {groups} "
                                     f"HAVING count(*) = ? LIMIT ?",
                                     params + [cut, size - len(above)])
        if not best:
            return []
        values = dict(self.reader._run(f"SELECT rowid, {json_value_sql(field)} FROM events WHERE "
                                f"rowid IN ({', '.join('?' * len(best))})",
                                [r for r, _ in best]))
        # SQLite's order: numbers before text, text by its bytes (= code points)
        return sorted(((values[r], c) for r, c in best),
                      key=lambda vc: (-vc[1], isinstance(vc[0], str), vc[0]))


def _indexed_top(field: str, where: str, params: list, size: int,
                 force: bool) -> tuple[str, list]:
    """Top values of a field with a value index: scalar values counted over the index (one
    per event), lists and objects element by element (an event once per distinct value), as
    the json_each form counts them; the two sets of events are disjoint, so counts add up.
    ``force``: walk the field's index even when the query has an index of its own (when the
    query matches many events, reading each one's document costs more)."""
    x, path, index = json_value_sql(field, "events."), json_literal_path(field), \
        json_index_name(field)
    hint = f" INDEXED BY {index}" if force else ""
    sql = (f"SELECT v, sum(c) AS n FROM (SELECT {x} AS v, count(*) AS c FROM events{hint} "
           f"WHERE {where} AND {x} < x'' GROUP BY v UNION ALL SELECT j.value AS v, "
           f"count(DISTINCT events.rowid) AS c FROM events INDEXED BY {index}, "
           f"json_each(events.doc, {path}) AS j WHERE {where} AND {x} >= x'' AND j.type NOT IN "
           f"('null', 'object', 'array') GROUP BY j.value) GROUP BY v "
           f"ORDER BY n DESC, v ASC LIMIT ?")
    return sql, params + params + [size]


# a query matching more events than this has its top values counted along the field's index
_TOP_BY_FIELD_INDEX = 20_000
# distinct values walked one by one before top falls back to GROUP BY
_TOP_DISTINCT_WALK = 500


def _counted_dim(q) -> tuple[str, list] | None:
    """The per-hour counts (rollup) that hold a query's histogram: everything ('', ['']) or
    one term on a counted column (the column, its value and the value as a number, as the
    term's SQL compares); None for any other query."""
    if isinstance(q, All):
        return "", [""]
    if isinstance(q, Term) and q.field in rollup.DIMS:
        n = numeric(q.value)
        return q.field, [q.value] if n is None else [q.value, n]
    return None
