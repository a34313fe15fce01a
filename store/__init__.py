"""Where events are kept: one package per backend (``store/sqlite/``, ``store/elasticsearch/``),
each owning its schema or template, writer, reader and retention; :mod:`store.base` holds the
interfaces and outcome types; :mod:`store.registry` picks a backend by URL."""

from logpipe.store.registry import open_store

__all__ = ["open_store"]
