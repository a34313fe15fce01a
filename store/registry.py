"""Stores behind one interface (:mod:`store.base`), chosen by URL.

``http://`` / ``https://`` is Elasticsearch; ``sqlite:///relative.db`` or ``sqlite:////abs.db``
is the embedded store (SQLAlchemy's URL convention).

Adding a backend (OpenSearch, ClickHouse) is one package under ``store/`` whose ``open(url,
**options)`` returns a :class:`store.base.Store`, plus one line in ``BACKENDS``. A backend module
is imported only when its URL is used, so one store's dependencies never load for another.
"""

from __future__ import annotations

import importlib

from logpipe.common.errors import ConfigError
from logpipe.store.base import Store

# URL scheme -> module with ``open(url, **options)``
BACKENDS: dict[str, str] = {
    "http": "logpipe.store.elasticsearch.url",
    "https": "logpipe.store.elasticsearch.url",
    "sqlite": "logpipe.store.sqlite.url",
}


def backend(url: str) -> str:
    """The module of the store a URL names; ConfigError for a URL no store understands (checked
    without connecting, so a command can refuse it before starting anything)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    module = BACKENDS.get(scheme)
    if module is None:
        raise ConfigError(f"unknown store URL {url!r}: use http(s)://host:9200 for Elasticsearch "
                          "or sqlite:///path/to/events.db for the embedded store")
    return module


def open_store(url: str, **options) -> Store:
    """The store for a URL. Imports only the chosen store's dependencies."""
    return importlib.import_module(backend(url)).open(url, **options)
