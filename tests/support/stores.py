"""What tests ask a store most: the first matches of a request and the total, through the
public reader contract (``count``, ``stream``, ``search_page``; store.base.Reader)."""

from __future__ import annotations

from dataclasses import dataclass, field

from logpipe.store.base import TRACK_TOTAL_HITS, Event, Reader, SearchRequest


@dataclass
class Matches:
    total: int
    events: list[dict] = field(default_factory=list)
    total_relation: str = "eq"   # "gte": total is TRACK_TOTAL_HITS and more match


def search(store: Reader, request: SearchRequest) -> Matches:
    """The first ``request.limit`` matches and their total; without a limit (or one past the
    tracked total) every match and the exact total."""
    if request.limit is None or request.limit >= TRACK_TOTAL_HITS:
        return Matches(total=store.count(request), events=list(store.stream(request)))
    page = store.search_page(request)
    return Matches(total=page.total or 0, events=page.hits, total_relation=page.total_relation)


def one_event_store(path) -> str:
    """The URL of an embedded store at ``path`` holding one event (the web tests' store)."""
    from logpipe.store.sqlite import SqliteStore

    url = "sqlite:///" + str(path)
    store = SqliteStore(url)
    store.prepare()
    store.write([Event("e1", {"@timestamp": "2026-11-28T10:00:00.000Z", "host": "h",
                              "message": "the one line"})])
    store.close()
    return url


def events_in_file(db) -> int:
    """Events an embedded store's file holds now, read from outside the process writing it (a
    read-only connection: 0 while the file or its table does not exist yet)."""
    import os
    import sqlite3

    if not os.path.exists(db):
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return con.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # being created
        return 0
