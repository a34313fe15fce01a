"""An Elasticsearch store URL to a store.

Options ride on the URL's query string, so every command that is given the URL (index, search,
dlq replay) agrees on them: ``http://host:9200/?index=mail-%Y.%m`` writes to monthly ``mail-*``
indices instead of the daily ``logstash-%Y.%m.%d``; ``?ca_certs=FILE`` / ``?fingerprint=SHA256``
set how its TLS certificate is checked. Credentials never ride on the URL
(:mod:`store.elasticsearch.connection`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from common.errors import ConfigError


def open(url: str, **options):
    from store.elasticsearch.connection import URL_OPTIONS, client_options
    from store.elasticsearch.writer import ElasticsearchSink

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
    options.setdefault("connection", client_options(base, tls))  # credentials, TLS
    return ElasticsearchSink(base, **options)
