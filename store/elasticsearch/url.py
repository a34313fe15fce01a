"""An Elasticsearch store URL to a store.

Options ride on the URL's query string, so every command that is given the URL (index, search,
dlq replay) agrees on them: ``http://host:9200/?index=mail-%Y.%m`` writes to monthly ``mail-*``
indices instead of the daily ``logstash-%Y.%m.%d``; ``?ca_certs=FILE`` / ``?fingerprint=SHA256``
set how its TLS certificate is checked. Credentials never ride on the URL
(:mod:`store.elasticsearch.connection`). A cluster is several node URLs, comma-separated, the
options after the last: ``https://a:9200,https://b:9200/?index=mail``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from logpipe.common.errors import ConfigError
from logpipe.store.base import Store
from logpipe.store.elasticsearch.client import node_urls


def open(url: str, **options) -> Store:
    from logpipe.store.elasticsearch.connection import URL_OPTIONS, client_options
    from logpipe.store.elasticsearch.writer import ElasticsearchStore

    nodes, _, query = url.partition("?")
    tls = {}
    for key, value in parse_qsl(query):
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
    base = ",".join(node_urls(nodes))
    # credentials and TLS; every node is checked (none may carry credentials), they share the settings
    connection = [client_options(node, tls) for node in node_urls(nodes)][0]
    options.setdefault("connection", connection)
    return ElasticsearchStore(base, **options)
