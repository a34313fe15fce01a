"""Stores behind one interface (:mod:`indexer.sinks.base`), chosen by URL.

``http://`` / ``https://`` is Elasticsearch; ``sqlite:///relative.db`` or ``sqlite:////abs.db``
is the embedded store (SQLAlchemy's URL convention).
"""

from __future__ import annotations

from common.errors import ConfigError


def open_sink(url: str, **options):
    """The sink for a store URL. Imports only the chosen store's dependencies.

    Elasticsearch options ride on the URL's query string, so every command that is given the URL
    (index, search, dlq replay) agrees on them: ``http://host:9200/?index=mail-%Y.%m`` writes to
    monthly ``mail-*`` indices instead of the daily ``logstash-%Y.%m.%d``.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        from indexer.sinks.elasticsearch import ElasticsearchSink
        from indexer.sinks.es_connection import URL_OPTIONS, client_options
        parts = urlsplit(url)
        tls = {}
        for key, value in parse_qsl(parts.query):
            if key in URL_OPTIONS:
                tls[key] = value
                continue
            if key != "index":
                raise ConfigError(f"unknown option {key!r} in store URL {url!r} "
                                  "(Elasticsearch URLs take ?index=PATTERN, ?ca_certs=FILE, "
                                  "?fingerprint=SHA256)")
            if "%" not in value and not value.endswith("*"):
                value += "-%Y.%m.%d"
            options.setdefault("index", value)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        options.setdefault("connection", client_options(base, tls))
        return ElasticsearchSink(base, **options)
    if scheme == "sqlite":
        from indexer.sinks.sqlite import SqliteSink
        return SqliteSink(url, **options)
    raise ConfigError(f"unknown store URL {url!r}: use http(s)://host:9200 for Elasticsearch "
                      "or sqlite:///path/to/events.db for the embedded store")
