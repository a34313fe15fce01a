"""The embedded store (SQLite): one package owning its schema, writer, reader and retention.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; see
:mod:`store.sqlite.writer` for the options and how writes and full text work.

:class:`SqliteStore` is a composition: the :class:`~store.sqlite.database.Database` owns the file,
its options and connections; the parts (writer, reader, paging, aggregations, maintenance,
retention, message records) are made here with what each needs, and the store's public methods hand over
to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Iterator, Sequence

from logpipe.store.base import Event, Outcome, Page, SearchRequest
from logpipe.store.sqlite.aggregations import SqliteAggregations
from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.maintenance import SqliteMaintenance
from logpipe.store.sqlite.messages import SqliteMessages
from logpipe.store.sqlite.paging import SqlitePaging
from logpipe.store.sqlite.reader import SqliteReader
from logpipe.store.sqlite.retention import SqliteRetention
from logpipe.store.sqlite.schema import parse_url
from logpipe.store.sqlite.writer import SqliteWriter, timestamp_ms


class SqliteStore:
    """The embedded store: writes, reads, maintenance, retention and message records on one
    SQLite file (a :class:`store.base.Store`)."""

    def __init__(self, url: str, **options):
        self.db = Database(url, **options)
        self.url, self.path = self.db.url, self.db.path
        self.writer = SqliteWriter(self.db)
        self.reader = SqliteReader(self.db, full_text=self.writer)
        self.paging = SqlitePaging(self.db, self.reader)
        self.aggregations = SqliteAggregations(self.db, self.reader)
        self.maintenance = SqliteMaintenance(self.db, self.writer)
        self.retention = SqliteRetention(self.db)
        self.messages = SqliteMessages(self.db)

    # ---------------------------------------------------------------- Writer
    def prepare(self) -> None:
        """Create the tables and indexes; safe to call from several processes at once."""
        self.db.prepare()

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        return self.writer.write(events)

    def refresh(self) -> int:
        """Index the full text of every row committed so far (Elasticsearch's refresh)."""
        return self.writer.refresh()

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- Reader
    def search_page(self, request: SearchRequest, after: str | None = None,
                    with_total: bool = True) -> Page:
        return self.paging.search_page(request, after, with_total)

    def stream(self, request: SearchRequest, page_size: int = 1000) -> Iterator[dict]:
        return self.paging.stream(request, page_size)

    def get_event(self, event_id: str) -> dict | None:
        return self.reader.get_event(event_id)

    def count(self, request: SearchRequest) -> int:
        return self.reader.count(request)

    def histogram(self, request: SearchRequest, interval: str) -> list[tuple[datetime, int]]:
        return self.aggregations.histogram(request, interval)

    def top(self, request: SearchRequest, field: str, size: int = 10) -> list[tuple[str, int]]:
        return self.aggregations.top(request, field, size)

    def size(self) -> dict:
        return self.reader.size()

    # ---------------------------------------------------------------- Maintenance
    def maintain(self, busy: bool = False) -> int:
        return self.maintenance.maintain(busy)

    def bulk_load(self, active: bool) -> None:
        """Nothing to change: the full text is already deferred while writes come in, and the
        burst's last maintenance catches it up (:meth:`maintain`)."""

    def roll_up(self, limit: int | None = None) -> int:
        return self.maintenance.roll_up(limit)

    def count_values(self, steps: int | None = None) -> int:
        return self.maintenance.count_values(steps)

    def uncounted_fields(self) -> list[str]:
        return self.maintenance.uncounted_fields()

    def wanted_fields(self) -> list[str]:
        return self.maintenance.wanted_fields()

    def promote(self, fields: Iterable[str] | None = None,
                pin: bool | None = None) -> list[str]:
        return self.maintenance.promote(fields, pin)

    def pinned_fields(self) -> list[str]:
        return self.maintenance.pinned_fields()

    def unpin(self, field: str) -> bool:
        return self.maintenance.unpin(field)

    def prune(self, older_than: datetime) -> int:
        return self.retention.prune(older_than)

    # ---------------------------------------------------------------- MessageRecords
    def write_messages(self, grouped: dict[str, tuple[str, str, dict[str, dict]]]) -> int:
        return self.messages.write_messages(grouped)

    def stream_messages(self, query: str = "*", start_ms: int | None = None,
                        end_ms: int | None = None, limit: int | None = None,
                        order: str = "desc", page_size: int = 1000) -> Iterator[dict]:
        return self.messages.stream_messages(query, start_ms, end_ms, limit, order, page_size)

    def count_messages(self, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None) -> int:
        return self.messages.count_messages(query, start_ms, end_ms)

    def facet_messages(self, field: str, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None, size: int = 10) -> list[tuple[str, int]]:
        return self.messages.facet_messages(field, query, start_ms, end_ms, size)

    def get_message(self, key: str) -> dict | None:
        return self.messages.get_message(key)

    def messages_by_qid(self, qid: str) -> list[dict]:
        return self.messages.messages_by_qid(qid)

    def prune_messages(self, older_than_ms: int) -> int:
        return self.messages.prune_messages(older_than_ms)


__all__ = ["SqliteStore", "parse_url", "timestamp_ms"]
