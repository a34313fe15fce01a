"""Elasticsearch (8.x/9.x): one package owning its index template, writer, reader and retention.

URL: ``http(s)://host:9200``, ``?index=PATTERN`` for another index naming (see
:mod:`store.registry`).
"""

from __future__ import annotations

from logpipe.store.elasticsearch.writer import ElasticsearchStore

__all__ = ["ElasticsearchStore"]
