"""Elasticsearch (8.x/9.x) sink: index template, bounded bulk writes with idempotent ids.

Every event is written with ``_id`` = record id and ``op_type: create``: processing a batch again
never duplicates, and a 409 means "already indexed". 429 and 5xx are transient (the job retries),
any other per-item error (a mapping conflict, a malformed IP) is permanent for that event and
goes to the dead-letter queue with Elasticsearch's own reason.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import orjson

from common.errors import SinkError
from indexer.sinks.base import Event, Outcome, SearchRequest, SearchResult, Status

TEMPLATE_PREFIX = "logpipe"  # one template per index prefix: logpipe-logstash, logpipe-mail...

# Fields that hold IP addresses in the built-in pipelines (classic Logstash names).
IP_FIELDS = ("clientip", "relayip", "rip", "lip", "ip", "src_ip", "dst_ip", "client_ip")
# Numbers that grok gives as strings unless typed; mapped explicitly so every index agrees.
LONG_FIELDS = ("size", "bytes", "response", "pid", "nrcpts", "offset", "in", "out", "port")


def index_template(pattern: str) -> dict:
    properties = {
        "@timestamp": {"type": "date"},
        "received_at": {"type": "double"},
        "message": {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                           "ignore_above": 8191}}},
        "tags": {"type": "keyword"},
    }
    properties.update({name: {"type": "ip"} for name in IP_FIELDS})
    properties.update({name: {"type": "long"} for name in LONG_FIELDS})
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0,
                         "refresh_interval": "1s"},
            "mappings": {
                # Ids, queue ids, addresses, hosts: exact values, so strings are keywords.
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 1024}}}],
                "properties": properties,
            },
        },
    }


class ElasticsearchSink:
    """Writes to daily indices ``logstash-%Y.%m.%d`` (configurable) on one cluster."""

    def __init__(self, url: str, index: str = "logstash-%Y.%m.%d", max_docs: int = 5000,
                 max_bytes: int = 10 * 1024 * 1024, request_timeout: float = 60, client=None,
                 connection: dict | None = None):
        from elasticsearch import Elasticsearch

        self.url = url
        self.index_format = index
        self.index_prefix = index.split("%", 1)[0]
        self.index_pattern = self.index_prefix + "*"
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        # connection: credentials and TLS options (indexer/sinks/es_connection.py)
        self.client = client or Elasticsearch(url, request_timeout=request_timeout,
                                              retry_on_timeout=False, max_retries=0,
                                              **(connection or {}))
        self._index_cache: dict[str, str] = {}

    # -- setup -------------------------------------------------------------------------------
    def prepare(self) -> None:
        from elasticsearch import ApiError, TransportError

        try:
            name = f"{TEMPLATE_PREFIX}-{self.index_prefix.rstrip('-_.') or 'events'}"
            self.client.indices.put_index_template(name=name,
                                                   **index_template(self.index_pattern))
        except (ApiError, TransportError) as exc:
            from indexer.sinks.es_connection import describe_failure
            clear = describe_failure(exc, self.url)
            raise SinkError(clear or f"cannot install the index template on {self.url}: "
                                     f"{exc}") from None

    # -- writing -----------------------------------------------------------------------------
    def index_for(self, timestamp: str) -> str:
        day = timestamp[:10]
        name = self._index_cache.get(day)
        if name is None:
            moment = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
            name = self._index_cache[day] = moment.strftime(self.index_format)
        return name

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        chunk: list[bytes] = []
        size = 0
        for event in events:
            action = orjson.dumps({"create": {"_index": self.index_for(event.doc["@timestamp"]),
                                              "_id": event.id}})
            source = orjson.dumps(event.doc)
            if chunk and (len(chunk) // 2 >= self.max_docs
                          or size + len(action) + len(source) > self.max_bytes):
                outcomes.extend(self._bulk(chunk))
                chunk, size = [], 0
            chunk.append(action)
            chunk.append(source)
            size += len(action) + len(source) + 2
        if chunk:
            outcomes.extend(self._bulk(chunk))
        return outcomes

    def _bulk(self, lines: list[bytes]) -> list[Outcome]:
        from elasticsearch import ApiError, ConnectionError, TransportError

        count = len(lines) // 2
        body = b"\n".join(lines) + b"\n"
        try:
            response = self.client.perform_request(
                "POST", "/_bulk", body=body,
                headers={"content-type": "application/x-ndjson", "accept": "application/json"})
        except ConnectionError as exc:
            return [Outcome(Status.RETRY, f"store unreachable: {exc}")] * count
        except ApiError as exc:
            status = getattr(exc, "status_code", None) or getattr(exc.meta, "status", 0)
            reason = f"bulk request failed with HTTP {status}: {exc}"
            # 401/403: the credentials, not the records, are wrong: retried, never dead-lettered
            kind = Status.RETRY if status in (401, 403, 408, 429) or status >= 500 \
                else Status.REJECTED
            return [Outcome(kind, reason)] * count
        except TransportError as exc:
            return [Outcome(Status.RETRY, f"transport error: {exc}")] * count
        body = response.body
        if not body.get("errors"):
            return [Outcome(Status.INDEXED)] * count
        outcomes = []
        for item in body["items"]:
            result = item.get("create") or next(iter(item.values()))
            status = result.get("status", 500)
            if status in (200, 201):
                outcomes.append(Outcome(Status.INDEXED))
            elif status == 409:
                outcomes.append(Outcome(Status.DUPLICATE))
            elif status == 429 or status >= 500:
                outcomes.append(Outcome(Status.RETRY, _reason(result)))
            else:
                outcomes.append(Outcome(Status.REJECTED, _reason(result)))
        return outcomes

    # -- reading -----------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchResult:
        from indexer.search import es_backend
        return es_backend.search(self.client, self.index_pattern, request)

    def histogram(self, request: SearchRequest, interval: str):
        from indexer.search import es_backend
        return es_backend.histogram(self.client, self.index_pattern, request, interval)

    def top(self, request: SearchRequest, field: str, size: int = 10):
        from indexer.search import es_backend
        return es_backend.top(self.client, self.index_pattern, request, field, size)

    def maintain(self) -> int:
        """Nothing deferred: Elasticsearch refreshes on its own."""
        return 0

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.index_pattern, allow_no_indices=True)

    def count(self) -> int:
        self.refresh()
        return int(self.client.count(index=self.index_pattern,
                                     allow_no_indices=True)["count"])

    def prune(self, older_than: datetime) -> int:
        """Delete whole daily indices whose day ends before ``older_than``."""
        from elasticsearch import ApiError, TransportError

        try:
            names = self.client.indices.get(index=self.index_pattern, allow_no_indices=True,
                                            expand_wildcards="open")
        except (ApiError, TransportError) as exc:
            from indexer.sinks.es_connection import describe_failure
            raise SinkError(describe_failure(exc, self.url) or
                            f"cannot list the indices on {self.url}: {exc}") from None
        cutoff = older_than.astimezone(timezone.utc).date()
        dropped = 0
        for name in names:
            try:
                day = datetime.strptime(name, self.index_format).date()
            except ValueError:
                continue
            if day < cutoff:
                self.client.indices.delete(index=name)
                dropped += 1
        return dropped

    def close(self) -> None:
        self.client.close()


def _reason(result: dict) -> str:
    error = result.get("error") or {}
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)
