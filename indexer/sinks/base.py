"""The sink interface every store implements (Elasticsearch, the embedded SQLite store, ...).

A sink receives finished events and reports one outcome per event, so the caller can tell what
is durable (indexed or already there), what should be retried later (the store is down or pushing
back) and what will never go in (a mapping conflict: dead-letter it with the store's reason).

An *event* is a flat JSON-able dict as it will be stored::

    {"@timestamp": "2026-11-28T10:00:00.000Z", "message": "...", "host": "mail1",
     "path": "/var/log/maillog", "type": "mail", "tags": [], "qid": "r4F2abc", ...}

Its id travels beside it (``Event.id``), never inside the document.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence


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


@dataclass
class SearchRequest:
    query: str = "*"                 # Lucene / Kibana query syntax
    start: datetime | None = None    # inclusive, on @timestamp
    end: datetime | None = None      # exclusive
    limit: int = 20
    order: str = "desc"              # by @timestamp


@dataclass
class SearchResult:
    total: int
    events: list[dict] = field(default_factory=list)


class Sink(Protocol):
    """What the indexer and the search commands need from a store."""

    url: str

    def prepare(self) -> None:
        """Create what the store needs (index template, schema). Safe to call repeatedly."""

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        """Store events; one outcome per event, in order. Raises SinkError only when nothing
        could be attempted at all (then every event is to be retried)."""

    def search(self, request: SearchRequest) -> SearchResult: ...

    def histogram(self, request: SearchRequest, interval: str) -> list[tuple[datetime, int]]: ...

    def top(self, request: SearchRequest, field: str, size: int = 10) -> list[tuple[str, int]]: ...

    def maintain(self) -> int:
        """Deferred work, called while the pipeline is idle (the embedded store catches up its
        full-text index). Returns how much was done; 0 when there is nothing left."""

    def prune(self, older_than: datetime) -> int:
        """Delete events older than the given time; returns how many (or indices) went."""

    def close(self) -> None: ...
