"""The interfaces every store implements (Elasticsearch, the embedded SQLite store, ...).

A store receives finished events and reports one outcome per event, so the caller can tell what
is durable (indexed or already there), what should be retried later (the store is down or pushing
back) and what will never go in (a mapping conflict: dead-letter it with the store's reason).

An *event* is a flat JSON-able dict as it will be stored::

    {"@timestamp": "2026-11-28T10:00:00.000Z", "message": "...", "host": "mail1",
     "path": "/var/log/maillog", "type": "mail", "tags": [], "qid": "r4F2abc", ...}

Its id travels beside it (``Event.id``), never inside the document.
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, NamedTuple, Protocol, Sequence

from logpipe.common.errors import LogpipeError, QueryError
from logpipe.query.tree import INT64_MAX, INT64_MIN


@dataclass(slots=True)
class Event:
    id: str
    doc: dict


class Status(enum.Enum):
    INDEXED = "indexed"
    DUPLICATE = "duplicate"   # already present with this id: a repeat, fine
    RETRY = "retry"           # transient (store down, 429, 5xx): try the batch again later
    REJECTED = "rejected"     # permanent for this event: dead-letter it with the reason


@dataclass(slots=True)
class Outcome:
    status: Status
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.status in (Status.INDEXED, Status.DUPLICATE)


class OutcomeMismatch(LogpipeError):
    """A store broke the Writer contract (not one outcome per event): nothing it answered can
    be trusted, so the caller must fail loudly and keep the batch."""


def check_outcomes(events: Sequence, outcomes) -> list[Outcome]:
    """The outcomes of a write, checked strictly: a list of exactly one :class:`Outcome` per
    event. Raises :class:`OutcomeMismatch` otherwise (never trim or pad: a record would be
    dropped silently or another's outcome taken for its own)."""
    if not isinstance(outcomes, (list, tuple)):
        raise OutcomeMismatch(f"the store answered {type(outcomes).__name__} instead of a list "
                              f"of {len(events)} outcomes")
    if len(outcomes) != len(events):
        raise OutcomeMismatch(f"the store answered {len(outcomes)} outcomes for "
                              f"{len(events)} events")
    for position, outcome in enumerate(outcomes):
        if not isinstance(outcome, Outcome) or not isinstance(outcome.status, Status):
            raise OutcomeMismatch(f"the store's answer #{position} is not an outcome: "
                                  f"{outcome!r}"[:300])
    return list(outcomes)


@dataclass
class SearchRequest:
    query: str = "*"                 # Lucene / Kibana query syntax
    start: datetime | None = None    # inclusive, on @timestamp
    end: datetime | None = None      # exclusive
    limit: int | None = 20           # None: every match (only for stream())
    order: str = "desc"              # by @timestamp


# A page's total is counted as Elasticsearch's track_total_hits default does: exactly up to
# this many matches, past it "at least this many" (relation "gte"), so that a page of a query
# matching millions costs what a page of one matching thousands does. Reader.count stays exact.
TRACK_TOTAL_HITS = 10_000


class Page(NamedTuple):
    """One page of matches: the total (None when not asked for; counted up to
    TRACK_TOTAL_HITS), the events (each with ``_id``), the opaque cursor of the next page
    (None on the last one) and how the total relates to the number of matches: "eq" (exact)
    or "gte" (at least: the total is TRACK_TOTAL_HITS)."""
    total: int | None
    hits: list[dict]
    next: str | None
    total_relation: str = "eq"

    @property
    def total_text(self) -> str:
        """The total as a person reads it: "1,234", "10,000+" (more match), "" (not asked)."""
        return total_text(self.total, self.total_relation)


def total_text(total: int | None, relation: str = "eq") -> str:
    if total is None:
        return ""
    return f"{total:,}" + ("+" if relation == "gte" else "")


# A page cursor is the position of the last event shown: (timestamp in ms or None, tiebreak),
# the tiebreak being a stable per-event sort key of the store (SQLite's rowid, the event id on
# Elasticsearch). It never grows, however many events share a millisecond.
MAX_CURSOR_CHARS = 2000   # a 512-byte id (Elasticsearch's limit on _id) and an index name fit


def encode_cursor(ts_ms: int | None, tiebreak) -> str:
    """The opaque text of a position (URL-safe base64 of a compact JSON pair)."""
    raw = json.dumps([ts_ms, tiebreak], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None, tiebreak_ok: Callable[[Any], bool]
                  ) -> tuple[int | None, Any] | None:
    """The position a cursor of :func:`encode_cursor` names; QueryError when it is damaged or
    not one this kind of store made (``tiebreak_ok`` checks the store's tiebreak)."""
    if not text:
        return None
    damaged = QueryError("the page cursor (after=) is damaged or from another store; start "
                         "again from the first page")
    if not isinstance(text, str) or len(text) > MAX_CURSOR_CHARS:
        raise damaged
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError):
        raise damaged from None
    if not (isinstance(value, list) and len(value) == 2):
        raise damaged
    ts, tiebreak = value
    if (ts is not None and type(ts) is not int) or not tiebreak_ok(tiebreak):
        raise damaged
    if not all(INT64_MIN <= n <= INT64_MAX for n in _ints([ts, tiebreak])):
        raise damaged  # no store holds a position past 64 bits: never an OverflowError later
    return ts, tiebreak



def _ints(value) -> Iterator[int]:
    """Every integer in a decoded cursor (lists nest one level at most)."""
    for item in value:
        if isinstance(item, list):
            yield from _ints(item)
        elif type(item) is int:
            yield item


class Writer(Protocol):
    """What the indexer needs from a store to put events in."""

    url: str

    def prepare(self) -> None:
        """Create what the store needs (index template, schema). Safe to call repeatedly."""

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        """Store events; one outcome per event, in order. Raises StoreError only when nothing
        could be attempted at all (then every event is to be retried)."""

    def close(self) -> None: ...


class Maintenance(Protocol):
    """The store's own upkeep: deferred work and retention."""

    def maintain(self, busy: bool = False) -> int:
        """Deferred work, called while the pipeline is idle (the embedded store catches up its
        full-text index), and now and then while it never is (``busy``: only steps that hold
        writers back briefly). Returns how much was done; 0 when there is nothing left."""

    def prune(self, older_than: datetime) -> int:
        """Retention: delete events older than the given time; returns how many (or indices)
        went."""

    def bulk_load(self, active: bool) -> None:
        """A burst is loading (``active``): the store may make what is written searchable later
        than usual, to spend less on each write (Elasticsearch: a refresh every 30 s instead of
        every second). Called again while the burst runs, for what it has created since;
        ``False`` ends it, and everything written is searchable when it returns. Raises
        StoreError when the store refuses (the burst goes on without it)."""


class Reader(Protocol):
    """What the search commands, the web page and the alerts need from a store. A reader
    translates the query's intermediate form (:mod:`query.tree`) into the store's own
    language."""

    url: str

    def search_page(self, request: SearchRequest, after: str | None = None,
                    with_total: bool = True) -> Page:
        """One page of ``request.limit`` matches after the cursor ``after`` (a ``Page.next``),
        in the request's order by (@timestamp, tiebreak): keyset, no offset, so the last page
        costs what the first does and there is no cap on how deep one can page. The total
        (``with_total``) is exact up to TRACK_TOTAL_HITS, else TRACK_TOTAL_HITS with
        ``total_relation`` "gte"."""

    def stream(self, request: SearchRequest, page_size: int = 1000) -> Iterator[dict]:
        """Every match in the request's order (the order of :meth:`search_page`), at most
        ``request.limit`` (None: all), fetched a page at a time by the same keyset (a point in
        time on Elasticsearch, for one consistent view): constant memory however many match."""

    def get_event(self, event_id: str) -> dict | None:
        """The stored event with this id (``_id`` added), or None."""

    def count(self, request: SearchRequest) -> int:
        """How many events match (exact)."""

    def histogram(self, request: SearchRequest, interval: str) -> list[tuple[datetime, int]]: ...

    def top(self, request: SearchRequest, field: str, size: int = 10) -> list[tuple[str, int]]: ...

    def size(self) -> dict:
        """What the store holds: ``events``, ``bytes`` on disk and ``parts`` (each file's or
        index's name and bytes)."""

    def close(self) -> None: ...


class MessageRecords(Protocol):
    """One record per message (:mod:`store.messages`): what the indexer keeps and what
    ``logpipe messages``, ``logpipe trace`` and the page's message views read."""

    def write_messages(self, grouped: dict[str, tuple[str, str, dict[str, dict]]]) -> int: ...

    def stream_messages(self, query: str = "*", start_ms: int | None = None,
                        end_ms: int | None = None, limit: int | None = None,
                        order: str = "desc", page_size: int = 1000) -> Iterator[dict]: ...

    def count_messages(self, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None) -> int: ...

    def facet_messages(self, field: str, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None, size: int = 10) -> list[tuple[str, int]]: ...

    def get_message(self, key: str) -> dict | None: ...

    def messages_by_qid(self, qid: str) -> list[dict]: ...

    def prune_messages(self, older_than_ms: int) -> int: ...


class Store(Writer, Maintenance, Reader, MessageRecords, Protocol):
    """A backend: one object that writes, reads, keeps itself and its message records (what
    :func:`store.registry.open_store` returns)."""


# the methods each part of the contract names, for a test that both backends match them exactly
CONTRACTS: tuple[type, ...] = (Writer, Maintenance, Reader, MessageRecords)


def bucket_key(value) -> str:
    """A top-values key as text, the same on every store: 2039.0 -> '2039'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)
