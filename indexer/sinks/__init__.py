"""Stores behind one interface (:mod:`indexer.sinks.base`), chosen by URL.

``http://`` / ``https://`` is Elasticsearch; ``sqlite:///relative.db`` or ``sqlite:////abs.db``
is the embedded store (SQLAlchemy's URL convention).
"""

from __future__ import annotations

from common.errors import ConfigError


def open_sink(url: str, **options):
    """The sink for a store URL. Imports only the chosen store's dependencies."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        from indexer.sinks.elasticsearch import ElasticsearchSink
        return ElasticsearchSink(url, **options)
    if scheme == "sqlite":
        from indexer.sinks.sqlite import SqliteSink
        return SqliteSink(url, **options)
    raise ConfigError(f"unknown store URL {url!r}: use http(s)://host:9200 for Elasticsearch "
                      "or sqlite:///path/to/events.db for the embedded store")
