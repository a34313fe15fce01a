"""The embedded store (SQLite): one package owning its schema, writer, reader and retention.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; see
:mod:`store.sqlite.writer` for the options and how writes and full text work.
"""

from __future__ import annotations

from logpipe.store.sqlite.maintenance import SqliteMaintenance
from logpipe.store.sqlite.messages import SqliteMessages
from logpipe.store.sqlite.reader import SqliteReader
from logpipe.store.sqlite.retention import SqliteRetention
from logpipe.store.sqlite.schema import parse_url
from logpipe.store.sqlite.writer import SqliteWriter, timestamp_ms


class SqliteSink(SqliteMessages, SqliteMaintenance, SqliteReader, SqliteRetention, SqliteWriter):
    """The embedded store: writes, reads, maintenance, retention and message records on one
    SQLite file."""


__all__ = ["SqliteSink", "parse_url", "timestamp_ms"]
