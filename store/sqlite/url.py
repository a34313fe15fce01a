"""An embedded store URL (``sqlite:///path.db?timeout=5``) to a store."""

from __future__ import annotations

from logpipe.store.base import Store


def open(url: str, **options) -> Store:
    from logpipe.store.sqlite import SqliteStore

    return SqliteStore(url, **options)
