"""An embedded store URL (``sqlite:///path.db?timeout=5``) to a store."""

from __future__ import annotations


def open(url: str, **options):
    from logpipe.store.sqlite import SqliteSink

    return SqliteSink(url, **options)
