"""Elasticsearch (8.x/9.x) writer: bounded bulk writes with idempotent ids.

:class:`ElasticsearchStore` is the store (writer here; reads go to :mod:`store.elasticsearch.reader`,
retention to :mod:`store.elasticsearch.retention`, the mapping is :mod:`store.elasticsearch.template`).

Every event is written with ``_id`` = record id and ``op_type: create``: processing a batch again
never duplicates, and a 409 means "already indexed". 429 and 5xx are transient (the job retries),
any other per-item error (a mapping conflict) is permanent for that event and goes to the
dead-letter queue with Elasticsearch's own reason. A value that does not fit its typed field (a
malformed IP) is not an error: the event is stored and tagged (:mod:`store.fields`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import orjson

from logpipe.common.broker import redact
from logpipe.common.errors import StoreError
from logpipe.store.base import Event, Outcome, OutcomeMismatch, SearchRequest, Status
from logpipe.store.elasticsearch import reader, retention
from logpipe.store.elasticsearch.errors import item_reason
from logpipe.store.elasticsearch.messages import HELD_INDEX, PATTERN, ElasticsearchMessages
from logpipe.store.elasticsearch.template import (ID_FIELD, REFRESH_INTERVAL, TEMPLATE_PREFIX,
                                                  index_template)
from logpipe.store.elasticsearch.client import es_client, ndjson_body
from logpipe.store.fields import mark_malformed

_BULK_PATH = "/_bulk?filter_path=errors,items.*.status,items.*.error"
BULK_LOAD_REFRESH = "30s"  # the indices' refresh interval while a burst loads (bulk_load)
_ID_KEY = b',' + orjson.dumps(ID_FIELD) + b':'  # the id copy, appended to a serialised source


class ElasticsearchStore(ElasticsearchMessages):
    """Writes to daily indices ``logstash-%Y.%m.%d`` (configurable) on one cluster."""

    def __init__(self, url: str, index: str = "logstash-%Y.%m.%d", max_docs: int = 5000,
                 max_bytes: int = 10 * 1024 * 1024, request_timeout: float = 60, client=None,
                 connection: dict | None = None):
        self.url = url
        self.index_format = index
        self.index_prefix = index.split("%", 1)[0]
        self.index_pattern = self.index_prefix + "*"
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        # connection: credentials and TLS options (store/elasticsearch/connection.py)
        self.client = client or es_client(url, request_timeout=request_timeout, connection=connection)
        self._index_cache: dict[str, str] = {}
        self._action_cache: dict[str, bytes] = {}

    # -- setup -------------------------------------------------------------------------------
    def prepare(self) -> None:
        from elasticsearch import ApiError, TransportError

        try:
            name = f"{TEMPLATE_PREFIX}-{self.index_prefix.rstrip('-_.') or 'events'}"
            # a copy of every shard on a second node once there is one: losing a node loses no event
            data_nodes = self.client.cluster.health()["number_of_data_nodes"]
            self.client.indices.put_index_template(
                name=name, **index_template(self.index_pattern, replicas=1 if data_nodes > 1 else 0))
        except (ApiError, TransportError) as exc:
            from logpipe.store.elasticsearch.connection import describe_failure

            clear = describe_failure(exc, self.url)  # credentials, TLS: configuration mistakes
            status = getattr(getattr(exc, "meta", None), "status", None) or 0
            # other 4xx: the cluster's settings refuse it, waiting changes nothing; 5xx, 429 and
            # no answer at all: the cluster is starting, overloaded or not up yet (waited for)
            permanent = bool(clear) or (isinstance(exc, ApiError) and 400 <= int(status) < 500
                                        and int(status) not in (408, 429))
            raise StoreError(clear or f"cannot install the index template on "
                                     f"{redact(self.url)}: {exc}", permanent=permanent) from None

    # -- writing -----------------------------------------------------------------------------
    def index_for(self, timestamp: str) -> str:
        day = timestamp[:10]
        name = self._index_cache.get(day)
        if name is None:
            moment = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
            name = self._index_cache[day] = moment.strftime(self.index_format)
        return name

    def _action_prefix(self, timestamp: str) -> bytes:
        """``{"create":{"_index":"<the day's index>","_id":`` as bytes, made once per day."""
        day = timestamp[:10]
        prefix = self._action_cache.get(day)
        if prefix is None:
            prefix = self._action_cache[day] = (
                b'{"create":{"_index":' + orjson.dumps(self.index_for(timestamp)) + b',"_id":')
        return prefix

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        # Each event is serialised alone: one that cannot be (a value orjson refuses, a
        # @timestamp that names no day) is rejected with the reason, its neighbours are sent.
        # The bulk lines are bytes straight from orjson: the action from a per-day prefix, the
        # source with the id copy spliced in before its closing brace (no copy of the document).
        outcomes: list[Outcome | None] = [None] * len(events)
        chunk: list[bytes] = []
        owners: list[int] = []
        size = 0
        dumps, max_docs, max_bytes = orjson.dumps, self.max_docs, self.max_bytes
        for position, event in enumerate(events):
            try:
                doc = mark_malformed(event.doc)
                event_id = dumps(event.id)
                action = self._action_prefix(doc["@timestamp"]) + event_id + b"}}"
                source = dumps(doc)
                if ID_FIELD in doc or len(source) < 3:  # never from a record (reserved)
                    source = dumps({**doc, ID_FIELD: event.id})
                else:
                    source = source[:-1] + _ID_KEY + event_id + b"}"
            except (TypeError, ValueError, KeyError) as exc:
                outcomes[position] = Outcome(Status.REJECTED,
                                             f"cannot serialise the event: {type(exc).__name__}: {exc}")
                continue
            if chunk and (len(owners) >= max_docs
                          or size + len(action) + len(source) > max_bytes):
                self._send(chunk, owners, outcomes)
                chunk, owners, size = [], [], 0
            chunk.append(action)
            chunk.append(source)
            owners.append(position)
            size += len(action) + len(source) + 2
        if chunk:
            self._send(chunk, owners, outcomes)
        return outcomes  # type: ignore[return-value]

    def _send(self, chunk: list[bytes], owners: list[int], outcomes: list) -> None:
        answers = self._bulk(chunk)
        if len(answers) != len(owners):  # the cluster's own answer, checked item by item
            raise OutcomeMismatch(f"Elasticsearch answered {len(answers)} bulk items for "
                                  f"{len(owners)} sent")
        for position, outcome in zip(owners, answers):
            outcomes[position] = outcome

    def _bulk(self, lines: list[bytes]) -> list[Outcome]:
        from elasticsearch import ApiError, ConnectionError, TransportError

        count = len(lines) // 2
        body = ndjson_body(lines)
        try:
            # the answer carries only what is read: per item its status and error (about
            # 25 bytes instead of ~200: less for the node to write and the client to parse)
            response = self.client.perform_request(
                "POST", _BULK_PATH, body=body,
                headers={"content-type": "application/x-ndjson", "accept": "application/json"})
        except ConnectionError as exc:
            return [Outcome(Status.RETRY, f"store unreachable: {exc}")] * count
        except ApiError as exc:
            status = int(getattr(exc, "status_code", None) or getattr(exc.meta, "status", 0) or 0)
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
                outcomes.append(Outcome(Status.RETRY, item_reason(result)))
            else:
                outcomes.append(Outcome(Status.REJECTED, item_reason(result)))
        return outcomes

    # -- reading -----------------------------------------------------------------------------
    def stream(self, request: SearchRequest, page_size: int = 1000):
        return reader.stream(self.client, self.index_pattern, request, page_size)

    def histogram(self, request: SearchRequest, interval: str):
        return reader.histogram(self.client, self.index_pattern, request, interval)

    def top(self, request: SearchRequest, field: str, size: int = 10):
        return reader.top(self.client, self.index_pattern, request, field, size)

    def search_page(self, request: SearchRequest, after: str | None = None,
                    with_total: bool = True):
        return reader.search_page(self.client, self.index_pattern, request, after, with_total)

    def get_event(self, event_id: str) -> dict | None:
        return reader.get_event(self.client, self.index_pattern, event_id)

    def maintain(self, busy: bool = False) -> int:
        """Nothing deferred: Elasticsearch refreshes on its own."""
        return 0

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.index_pattern, allow_no_indices=True)

    def bulk_load(self, active: bool) -> None:
        """While a burst loads, the indices it writes (events, message records, held parts)
        refresh every :data:`BULK_LOAD_REFRESH` instead of every second: each refresh writes a
        small segment the node later merges, and with 1 s they cost the node about a tenth of
        its CPU in a burst (issue 27). Set on the indices that exist, so a caller repeats it
        for the ones its writes create (the templates keep 1 s: a burst that dies leaves at
        most its own indices 30 s behind). Ending it sets :data:`REFRESH_INTERVAL` back and
        refreshes them all."""
        from elasticsearch import ApiError, TransportError

        indices = f"{self.index_pattern},{PATTERN},{HELD_INDEX}"
        try:
            self.client.indices.put_settings(
                index=indices, settings={"index": {"refresh_interval":
                                                   BULK_LOAD_REFRESH if active
                                                   else REFRESH_INTERVAL}},
                allow_no_indices=True, ignore_unavailable=True, expand_wildcards="open")
            if not active:
                self.client.indices.refresh(index=indices, allow_no_indices=True,
                                            ignore_unavailable=True)
        except (ApiError, TransportError) as exc:
            raise StoreError(f"cannot change the refresh interval of {indices} on "
                             f"{redact(self.url)}: {exc}") from None

    def count(self, request: SearchRequest) -> int:
        """How many events match ``request`` (exact)."""
        return reader.count(self.client, self.index_pattern, request)

    def size(self) -> dict:
        """What the indices hold (``_cat/indices``): ``events`` (documents in the primaries),
        ``bytes`` (store size, replicas included) and ``parts``, each index's bytes."""
        rows = self.client.cat.indices(index=self.index_pattern, format="json", bytes="b",
                                       h="index,docs.count,store.size", expand_wildcards="open")
        parts = sorted((r["index"], int(r.get("store.size") or 0)) for r in rows)
        return {"events": sum(int(r.get("docs.count") or 0) for r in rows),
                "bytes": sum(b for _, b in parts), "parts": parts}

    def prune(self, older_than: datetime) -> int:
        """Delete whole daily indices whose day ends before ``older_than``."""
        return retention.prune(self.client, self.index_pattern, self.index_format, older_than,
                               self.url)

    def close(self) -> None:
        self.client.close()
