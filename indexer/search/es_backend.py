"""Search, histogram and top values on Elasticsearch (called by ElasticsearchSink).

The query goes through :func:`indexer.search.query.to_es`, the same translation whose semantics
the embedded store shares; the time window of the request is an ``epoch_millis`` range filter on
``@timestamp``. Ordering is by ``@timestamp``; totals are exact (``track_total_hits``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from common.errors import QueryError, SinkError
from indexer.search import query as Q
from indexer.sinks.base import SearchRequest, SearchResult

_COMMON = {"ignore_unavailable": True, "allow_no_indices": True}


def _ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def build_query(request: SearchRequest, now: datetime | None = None) -> dict:
    """The full ES query of a request: the Lucene query plus its time window."""
    query = Q.to_es(request.query or "*", now)
    window: dict = {}
    if request.start is not None:
        window["gte"] = _ms(request.start)
    if request.end is not None:
        window["lt"] = _ms(request.end)
    if not window:
        return query
    window["format"] = "epoch_millis"
    return {"bool": {"filter": [query, {"range": {Q.TIME_FIELD: window}}]}}


def _call(what: str, fn, **kwargs):
    """Run a client call, turning ES failures into errors a person can act on."""
    try:
        import elasticsearch
    except ImportError:  # pragma: no cover - the indexer extra is missing
        raise SinkError("the elasticsearch package is not installed "
                        "(pip install 'logpipe[indexer]')", permanent=True) from None
    try:
        return fn(**kwargs)
    except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
        from indexer.sinks.es_connection import describe_failure
        clear = describe_failure(exc, "the store")
        if clear:  # credentials or TLS: a configuration mistake, said plainly
            raise SinkError(clear, permanent=True) from None
        if isinstance(exc, elasticsearch.BadRequestError):
            raise QueryError(f"Elasticsearch rejected the {what}: {_reason(exc)}") from None
        if isinstance(exc, elasticsearch.ApiError):
            raise SinkError(f"Elasticsearch {what} failed ({exc.meta.status}): "
                            f"{_reason(exc)}") from None
        raise SinkError(f"cannot reach Elasticsearch for the {what}: {exc}") from None


def _reason(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            causes = err.get("root_cause") or []
            for cause in causes + [err]:
                if isinstance(cause, dict) and cause.get("reason"):
                    caused = err.get("caused_by", {})
                    extra = caused.get("reason") if isinstance(caused, dict) else None
                    return cause["reason"] + (f" ({extra})" if extra and extra not in
                                              cause["reason"] else "")
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", exc))


def search(client, index_pattern: str, request: SearchRequest) -> SearchResult:
    order = "asc" if str(request.order).lower() == "asc" else "desc"
    resp = _call("search", client.search, index=index_pattern, query=build_query(request),
                 sort=[{Q.TIME_FIELD: {"order": order, "unmapped_type": "date"}}],
                 size=max(0, int(request.limit)), track_total_hits=True, **_COMMON)
    hits = resp["hits"]
    events = []
    for hit in hits["hits"]:
        event = dict(hit.get("_source") or {})
        event["_id"] = hit["_id"]
        events.append(event)
    total = hits["total"]["value"] if isinstance(hits["total"], dict) else int(hits["total"])
    return SearchResult(total=total, events=events)


def count(client, index_pattern: str, request: SearchRequest) -> int:
    resp = _call("count", client.count, index=index_pattern, query=build_query(request),
                 **_COMMON)
    return int(resp["count"])


def histogram(client, index_pattern: str, request: SearchRequest,
              interval: str) -> list[tuple[datetime, int]]:
    step = Q.parse_interval(interval)
    aggs = {"h": {"date_histogram": {"field": Q.TIME_FIELD, "fixed_interval": Q.es_interval(step),
                                     "min_doc_count": 1}}}
    resp = _call("histogram", client.search, index=index_pattern, query=build_query(request),
                 size=0, aggs=aggs, track_total_hits=False, **_COMMON)
    buckets = (resp.get("aggregations") or {}).get("h", {}).get("buckets", [])
    return Q.fill_buckets([(b["key"], b["doc_count"]) for b in buckets], step)


def top(client, index_pattern: str, request: SearchRequest, field: str,
        size: int = 10) -> list[tuple[str, int]]:
    target = Q.TEXT_KEYWORD if field == Q.TEXT_FIELD else field
    size = max(1, int(size))

    def run(name):
        aggs = {"t": {"terms": {"field": name, "size": size, "shard_size": max(100, size * 5),
                                "order": [{"_count": "desc"}, {"_key": "asc"}]}}}
        return _call("top-values query", client.search, index=index_pattern,
                     query=build_query(request), size=0, aggs=aggs, track_total_hits=False,
                     **_COMMON)

    try:
        resp = run(target)
    except QueryError as exc:
        # a text field: its keyword sub-field holds the whole values
        if "fielddata" not in str(exc).lower() and "text field" not in str(exc).lower():
            raise
        resp = run(target + ".keyword")
    buckets = (resp.get("aggregations") or {}).get("t", {}).get("buckets", [])
    return [(_key(b), int(b["doc_count"])) for b in buckets]


def _key(bucket) -> str:
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    key = bucket["key"]
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)
