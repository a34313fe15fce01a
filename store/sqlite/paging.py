"""The embedded store's pages: search, one page after a cursor, and the stream of every match,
all by one keyset on (@timestamp, rowid): no offset, so the last page costs what the first does.

A page's total is counted up to TRACK_TOTAL_HITS (as Elasticsearch does); a query with more
matches than that is dense enough that its newest page is found by walking the time index and
checking each event, where sorting every match would cost in proportion to the matches. A walk
along the time index reads the full-text index only over the rowids of its span. The conditions,
counts and reading connections are the reader's (:class:`store.sqlite.reader.SqliteReader`).
"""

from __future__ import annotations

from typing import Iterator


from logpipe.query.datemath import epoch_ms
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    All,
)
from logpipe.store.base import (
    TRACK_TOTAL_HITS,
    Page,
    SearchRequest,
    decode_cursor,
    encode_cursor,
)
from logpipe.query.tree import INT64_MAX, INT64_MIN
from logpipe.store.sqlite.schema import (
    returned_doc,
)


from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.reader import SqliteReader, fts_driven, index_friendly
from logpipe.store.sqlite.translate import (
    fts_match_all,
    fts_membership,
)

# events checked along the time index for a page of a query matching many (_keyset_rows): at
# least this many in the first span, at most _WALK_SPANS spans (each 8x the last)
_WALK_ROWS = 2000
_WALK_SPANS = 3
_WALK_MAX_ROWS = 200_000


class SqlitePaging:
    """The paging part of the embedded store: search, search_page and stream over the reader's
    conditions."""

    def __init__(self, db: Database, reader: SqliteReader):
        self.db = db
        self.reader = reader   # the request's SQL condition, counts, statements under the budget

    def _walk(self, request: SearchRequest, matches: int) -> tuple[SearchRequest, list] | None:
        """For a query with ``matches`` (counted up to past TRACK_TOTAL_HITS) that no index
        serves in time order: (the request, the window's bounds on ts) to check events along
        the time index, or None when sorting the matches is the better plan (few of them, or
        an index that orders them)."""
        if matches <= TRACK_TOTAL_HITS or index_friendly(compile_query(request.query or "*")):
            return None
        window = [epoch_ms(request.start) if request.start is not None else INT64_MIN,
                  epoch_ms(request.end) - 1 if request.end is not None else INT64_MAX]
        return request, window

    def _keyset_rows(self, where: str, params: list, desc: bool,
                     after: tuple[int | None, int] | None, size: int,
                     walk: tuple[SearchRequest, list] | None = None) -> list:
        """The keyset primitive of :meth:`search_page` and :meth:`stream`: up to ``size`` rows
        (rowid, ts, id, doc) after the position ``after`` = (ts or None, rowid), ordered by
        (ts, rowid). No OFFSET: each page is an index seek. Events without a time come last
        newest-first and first oldest-first (SQLite sorts NULL lowest); the timed and the
        untimed part are queried apart so that each is one range of the ts index.
        ``walk`` (:meth:`_walk`): first look for the timed rows along the time index
        (:meth:`_walk_rows`), sorting the matches only when its spans do not hold enough."""
        order, cmp = ("DESC", "<") if desc else ("ASC", ">")
        parts: tuple[bool, ...] = (True, False) if desc else (False, True)
        if after is not None:
            # skip the parts wholly before the cursor's
            parts = parts[parts.index(after[0] is not None):]
        rows: list = []
        for timed in parts:
            if len(rows) >= size:
                break
            extra: list = []
            if timed:
                cond = "events.ts IS NOT NULL"
                if after is not None and after[0] is not None:
                    cond += f" AND (events.ts, events.rowid) {cmp} (?, ?)"
                    extra = [after[0], after[1]]
            else:
                cond = "events.ts IS NULL"
                if after is not None and after[0] is None:
                    cond += f" AND events.rowid {cmp} ?"
                    extra = [after[1]]
            need = size - len(rows)
            if timed and walk is not None:
                found = self._walk_rows(walk, cond, extra, order, need)
                if found is not None:
                    rows += found
                    after = None
                    continue
            rows += self.reader._run(f"SELECT rowid, ts, id, doc FROM events WHERE rowid IN "
                              f"(SELECT events.rowid FROM events WHERE ({where}) AND {cond} "
                              f"ORDER BY events.ts {order}, events.rowid {order} LIMIT ?) "
                              f"ORDER BY ts {order}, rowid {order}",
                              params + extra + [need])
            after = None  # the next part starts at its beginning
        return rows

    def _walk_rows(self, walk: tuple[SearchRequest, list], cond: str, extra: list,
                   order: str, need: int) -> list | None:
        """The next ``need`` matches (rowid, ts, id, doc) in time order after ``cond``, found by
        checking the events along the time index a span at a time (each span 8x the last, up to
        _WALK_SPANS of them and _WALK_MAX_ROWS events); None when those spans do not hold
        enough (sorting the matches is then the better plan). A full-text condition reads only
        the span's rowid range of the full-text index, so a span costs what it holds, not what
        the whole query matches."""
        request, window = walk
        span = max(_WALK_ROWS, 100 * need)
        walked = (f"SELECT events.rowid AS r, events.ts AS t FROM events INDEXED BY events_ts "
                  f"WHERE {cond} AND events.ts >= ? AND events.ts <= ? ORDER BY events.ts "
                  f"{order}, events.rowid {order} LIMIT ?")
        texts = fts_driven(compile_query(request.query or "*"))
        for _ in range(_WALK_SPANS):
            if span > _WALK_MAX_ROWS and span > max(_WALK_ROWS, 100 * need):
                return None  # (a long walk costs more than sorting: the matches are sparse)
            lo, hi, seen = self.reader._run(f"SELECT min(r), max(r), count(*) FROM ({walked})",
                                     extra + window + [span])[0]
            if not seen:
                return []
            if texts is not None and isinstance(texts[1], All):
                # full text alone: the span's rowids checked against the full-text index's
                # matches in the span's rowid range, in the walk's order (no table lookup)
                params: list = []
                member = fts_membership(fts_match_all(texts[0], params), params, (lo, hi), "w.r")
                matched = (f"SELECT w.r FROM ({walked}) AS w WHERE {member} ORDER BY w.t {order}, "
                           f"w.r {order} LIMIT ?")
                params = extra + window + [span] + params + [need]
            else:
                where, params = self.reader._where(request, documents=True, rowids=(lo, hi))
                matched = (f"SELECT events.rowid FROM events WHERE events.rowid IN (SELECT r "
                           f"FROM ({walked})) AND ({where}) ORDER BY events.ts {order}, "
                           f"events.rowid {order} LIMIT ?")
                params = extra + window + [span] + params + [need]
            found = self.reader._run(f"SELECT rowid, ts, id, doc FROM events WHERE rowid IN ({matched}) "
                              f"ORDER BY ts {order}, rowid {order}", params)
            if len(found) == need or seen < span:  # enough, or every timed event checked
                return found
            span *= 8
        return None

    @staticmethod
    def _events(rows) -> list[dict]:
        events = []
        for _, _, eid, doc in rows:
            event = returned_doc(doc)
            event["_id"] = eid
            events.append(event)
        return events

    def search_page(self, request: SearchRequest, after: str | None = None,
                    with_total: bool = True) -> Page:
        """One page of ``request.limit`` events after a cursor, by keyset on (ts, rowid); the
        cursor is :func:`store.base.encode_cursor` of the last event's (ts, rowid)."""
        position = decode_cursor(after, lambda rowid: type(rowid) is int)
        where, params = self.reader._where(request)
        desc = str(request.order).lower() != "asc"
        limit = max(0, int(request.limit or 0))
        total, relation = None, "eq"
        matches = None
        if with_total or limit:
            # counted up to TRACK_TOTAL_HITS (+1 to tell "more"), from a value index alone
            # when the query allows; it also chooses the plan of the page
            matches = self.reader._count_upto(request, TRACK_TOTAL_HITS + 1)
        if with_total:
            assert matches is not None
            total, relation = ((TRACK_TOTAL_HITS, "gte") if matches > TRACK_TOTAL_HITS
                               else (matches, "eq"))
        if not limit:
            return Page(total, [], None, relation)
        walk = self._walk(request, matches or 0)
        rows = self._keyset_rows(where, params, desc, position,  # type: ignore[arg-type]
                                 limit + 1, walk)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
        return Page(total, self._events(rows), cursor, relation)

    def stream(self, request: SearchRequest, page_size: int = 1000) -> Iterator[dict]:
        """Every match in order, a page at a time, by the keyset of :meth:`search_page`."""
        where, params = self.reader._where(request)
        desc = str(request.order).lower() != "asc"
        remaining = None if request.limit is None else max(0, int(request.limit))
        page_size = max(1, int(page_size))
        position: tuple[int | None, int] | None = None
        walk = self._walk(request, self.reader._count_upto(request, TRACK_TOTAL_HITS + 1))
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            rows = self._keyset_rows(where, params, desc, position, size, walk)
            yield from self._events(rows)
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < size:
                break
            position = (rows[-1][1], rows[-1][0])
