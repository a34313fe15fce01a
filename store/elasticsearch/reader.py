"""The Elasticsearch reader: the query's intermediate form as query DSL (:func:`to_es`), search,
histogram and top values (called by ElasticsearchStore).

The query goes through :func:`to_es`, a translation of the same intermediate form whose
semantics the embedded store shares; the time window of the request is an ``epoch_millis`` range filter on
``@timestamp``. Ordering is by ``@timestamp``; a page's total is exact up to
store.base.TRACK_TOTAL_HITS (``track_total_hits``'s default, "gte" past it), count() is exact.

Every request runs under the calling thread's :class:`store.budget.Budget` (when there is
one): a search carries ``timeout`` (what is left of the budget; an answer that says
``timed_out`` is "query too expensive", never a partial result), the client request a deadline
just past it (Elasticsearch cancels a search whose connection closes), and an ``X-Opaque-Id``
by which a cancelled budget finds and cancels the search task on the cluster.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
from datetime import datetime
from typing import Iterator

from logpipe.common.errors import QueryError, StoreError
from logpipe.query.datemath import epoch_ms, fill_buckets, parse_interval
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    TEXT_FIELD,
    TEXT_KEYWORD,
    TIME_FIELD,
    All,
    And,
    Exists,
    Not,
    Nothing,
    Or,
    Range,
    Term,
    Text,
    TextWildcard,
    Regexp,
    TimeRange,
    Wildcard,
    numeric,
)
from logpipe.store.base import (
    TRACK_TOTAL_HITS,
    Page,
    SearchRequest,
    bucket_key,
    decode_cursor,
    encode_cursor,
)
from logpipe.store import budget as budgets
from logpipe.store.elasticsearch.errors import exception_reason
from logpipe.store.elasticsearch.template import ID_FIELD

_COMMON = {"ignore_unavailable": True, "allow_no_indices": True}


def to_es(tree, now: datetime | None = None) -> dict:
    """The Elasticsearch query DSL for a query (a string or a luqum tree)."""
    return es_query(compile_query(tree, now))


def es_query(q) -> dict:
    if isinstance(q, All):
        return {"match_all": {}}
    if isinstance(q, Nothing):
        return {"match_none": {}}
    if isinstance(q, And):
        return {"bool": {"filter": [es_query(i) for i in q.items]}}
    if isinstance(q, Or):
        return {"bool": {"should": [es_query(i) for i in q.items], "minimum_should_match": 1}}
    if isinstance(q, Not):
        return {"bool": {"must_not": [es_query(q.item)]}}
    if isinstance(q, Text):
        return {"match_phrase": {TEXT_FIELD: {"query": q.text or " ".join(q.tokens)}}}
    if isinstance(q, TextWildcard):
        return {"wildcard": {TEXT_FIELD: {"value": q.pattern.es()}}}
    if isinstance(q, Term):
        if q.field == "_id":
            return {"ids": {"values": [q.value]}}
        # match on a keyword field is an exact term; lenient: no error for "abc" on a number
        return {"match": {q.field: {"query": q.value, "lenient": True}}}
    if isinstance(q, Wildcard):
        return {"wildcard": {q.field: {"value": q.pattern.es()}}}
    if isinstance(q, Regexp):
        # Lucene's regexp over the whole keyword value; the syntax was checked to be the subset
        # both stores read alike (query/regexp.py), so Lucene's optional operators never occur
        return {"regexp": {q.field: {"value": q.source, "flags": "ALL"}}}
    if isinstance(q, Exists):
        return {"exists": {"field": q.field}}
    if isinstance(q, TimeRange):
        spec: dict = {"format": "epoch_millis"}
        if q.start is not None:
            spec["gte"] = q.start
        if q.end is not None:
            spec["lt"] = q.end
        return {"range": {TIME_FIELD: spec}}
    if isinstance(q, Range):
        spec = {}
        if q.low is not None:
            spec["gte" if q.include_low else "gt"] = _es_bound(q.low)
        if q.high is not None:
            spec["lte" if q.include_high else "lt"] = _es_bound(q.high)
        return {"range": {q.field: spec}}
    raise TypeError(f"unknown query node {q!r}")


def _es_bound(value: str):
    n = numeric(value)
    return value if n is None else n


def es_interval(ms: int) -> str:
    """An Elasticsearch fixed_interval for a number of milliseconds."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def build_query(request: SearchRequest, now: datetime | None = None) -> dict:
    """The full ES query of a request: the Lucene query plus its time window."""
    query = to_es(request.query or "*", now)
    window: dict = {}
    if request.start is not None:
        window["gte"] = epoch_ms(request.start)
    if request.end is not None:
        window["lt"] = epoch_ms(request.end)
    if not window:
        return query
    window["format"] = "epoch_millis"
    return {"bool": {"filter": [query, {"range": {TIME_FIELD: window}}]}}


def _call(what: str, fn, **kwargs):
    """Run a client call, turning ES failures into errors a person can act on."""
    try:
        import elasticsearch
    except ImportError:  # pragma: no cover - the indexer extra is missing
        raise StoreError("the elasticsearch package is not installed "
                        "(pip install 'logpipe[indexer]')", permanent=True) from None
    budget = budgets.current()
    hook = contextlib.nullcontext()
    if budget is not None:
        budget.check()
        fn, hook = _budgeted(fn, budget, kwargs)
    try:
        with hook:
            resp = fn(**kwargs)
        if budget is not None and hasattr(resp, "get") and resp.get("timed_out"):
            raise budget.error()
        return resp
    except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
        if budget is not None and (budget.stopped
                                   or isinstance(exc, elasticsearch.ConnectionTimeout)):
            raise budget.error() from None
        from logpipe.store.elasticsearch.connection import describe_failure
        clear = describe_failure(exc, "the store")
        if clear:  # credentials or TLS: a configuration mistake, said plainly
            raise StoreError(clear, permanent=True) from None
        if isinstance(exc, elasticsearch.BadRequestError):
            raise QueryError(f"Elasticsearch rejected the {what}: "
                             f"{exception_reason(exc)}") from None
        if isinstance(exc, elasticsearch.ApiError):
            raise StoreError(f"Elasticsearch {what} failed ({exc.meta.status}): "
                            f"{exception_reason(exc)}") from None
        raise StoreError(f"cannot reach Elasticsearch for the {what}: {exc}") from None


def _budgeted(fn, budget, kwargs: dict):
    """The client call under the budget: a search's ``timeout``, the request's deadline and
    opaque id; and the hook that cancels its task when the budget is cancelled."""
    name = getattr(fn, "__name__", "")
    client = getattr(fn, "__self__", None)
    remaining = budget.remaining()
    if name == "search" and remaining is not None:
        kwargs["timeout"] = f"{max(1, int(remaining * 1000))}ms"
    if client is None or not hasattr(client, "options"):
        return fn, contextlib.nullcontext()
    options: dict = {"opaque_id": budget.id}
    if remaining is not None:
        options["request_timeout"] = remaining + 1.0
    return (getattr(client.options(**options), name),
            budget.hook(lambda: _cancel_later(client, budget.id)))


def _cancel_later(client, opaque_id: str) -> None:
    """Cancel the search tasks carrying ``opaque_id``, on a thread of its own (the budget is
    cancelled from the web server's event loop)."""
    threading.Thread(target=cancel_tasks, args=(client, opaque_id), daemon=True,
                     name="logpipe-es-cancel").start()


def cancel_tasks(client, opaque_id: str) -> int:
    """Cancel the running search tasks whose X-Opaque-Id is ``opaque_id``; how many."""
    quick = client.options(request_timeout=5)
    found = 0
    try:
        listing = quick.tasks.list(detailed=True, actions="indices:data/read/*")
        for node in (listing.get("nodes") or {}).values():
            for task_id, task in (node.get("tasks") or {}).items():
                if (task.get("headers") or {}).get("X-Opaque-Id") == opaque_id \
                        and task.get("cancellable"):
                    quick.tasks.cancel(task_id=task_id)
                    found += 1
    except Exception:  # gone already, or no permission: its own timeout still ends it
        pass
    return found


RESULT_WINDOW = 10_000  # index.max_result_window: the most one search request may return



PIT_KEEP_ALIVE = "2m"  # how long the snapshot lives between two pages


def _sort(desc: bool, in_pit: bool) -> list:
    """The keyset's order: @timestamp, then the event id's doc-value copy (``_id`` itself
    cannot be sorted on). Events indexed before the copy existed lack it; for them the index
    and the sequence number (unique in a one-shard index, which the template makes) tell
    events of one millisecond apart, and within a point in time ``_shard_doc`` always does."""
    order = "desc" if desc else "asc"
    missing = "_last" if desc else "_first"  # as the embedded store sorts NULL
    keys: list = [{TIME_FIELD: {"order": order, "unmapped_type": "date", "missing": missing}},
                  {ID_FIELD: {"order": order, "unmapped_type": "keyword", "missing": missing}},
                  {"_index": order}, {"_seq_no": order}]
    if in_pit:
        keys.append({"_shard_doc": order})
    return keys


def _keyset_hits(client, query: dict, desc: bool, size: int, after: list | None,
                 index: str | None = None, pit: dict | None = None,
                 track_total: int | bool = False) -> tuple[list, dict]:
    """The keyset primitive of :func:`search_page` and :func:`stream`: up to ``size`` hits
    after the sort values ``after``, by ``search_after`` (no ``from``: no 10,000-hit window).
    Either an index pattern (stateless: the web's pages) or a point in time (one view).
    ``track_total``: count the matches up to that many in the same request."""
    extra: dict = {"search_after": after} if after is not None else {}
    if pit is not None:
        extra["pit"] = pit
    else:
        extra.update(index=index, **_COMMON)
    resp = _call("search", client.search, query=query, sort=_sort(desc, pit is not None),
                 size=size, track_total_hits=track_total, **extra)
    return resp["hits"]["hits"], resp


def _event(hit: dict) -> dict:
    event = dict(hit.get("_source") or {})
    event.pop(ID_FIELD, None)
    event["_id"] = hit["_id"]
    return event


def _tiebreak_ok(value) -> bool:
    """An Elasticsearch cursor's tiebreak: [event id or None, index, sequence number]."""
    return (isinstance(value, list) and len(value) == 3
            and (value[0] is None or isinstance(value[0], str))
            and isinstance(value[1], str) and type(value[2]) is int)


def search_page(client, index_pattern: str, request: SearchRequest, after: str | None = None,
                with_total: bool = True) -> Page:
    """One page after a cursor by ``search_after`` in :func:`_sort`'s order: stateless (no
    point in time to keep alive), and the cursor is the last event's position (ms, [id,
    index, sequence number]), however many events share a millisecond."""
    position = decode_cursor(after, _tiebreak_ok)
    desc = str(request.order).lower() != "asc"
    limit = max(0, int(request.limit or 0))
    search_after = None
    if position is not None:
        if position[0] is None:  # every event on Elasticsearch has a time
            raise QueryError("the page cursor (after=) is damaged or from another store; "
                             "start again from the first page")
        search_after = [position[0], *position[1]]
    # the total comes with the page (counted up to TRACK_TOTAL_HITS, as Elasticsearch does
    # by default): one request
    hits, resp = _keyset_hits(client, build_query(request), desc, limit + 1, search_after,
                              index=index_pattern,
                              track_total=TRACK_TOTAL_HITS if with_total else False)
    total, relation = None, "eq"
    if with_total:
        found = resp["hits"].get("total") or {}
        total, relation = int(found.get("value", 0)), str(found.get("relation", "eq"))
        if relation == "gte":  # past the tracking limit: at least this many
            total = TRACK_TOTAL_HITS
    if not limit:
        return Page(total, [], None, relation)
    more = len(hits) > limit
    hits = hits[:limit]
    cursor = None
    if more and hits:
        ts, eid, index, seq_no = hits[-1]["sort"][:4]
        cursor = encode_cursor(ts, [eid, index, seq_no])
    return Page(total, [_event(h) for h in hits], cursor, relation)


def stream(client, index_pattern: str, request: SearchRequest,
           page_size: int = 1000) -> Iterator[dict]:
    """Every match in order, a page at a time: the keyset of :func:`search_page` inside a
    point in time (one consistent view of the indices for the whole stream), so memory holds
    one page. The point in time is closed at the end, or when the consumer stops early."""
    desc = str(request.order).lower() != "asc"
    remaining = None if request.limit is None else max(0, int(request.limit))
    if remaining == 0:
        return
    page_size = max(1, int(page_size))
    query = build_query(request)
    opened = _call("search", client.open_point_in_time, index=index_pattern,
                   keep_alive=PIT_KEEP_ALIVE, ignore_unavailable=True)
    pit = opened["id"]
    after = None
    try:
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            hits, resp = _keyset_hits(client, query, desc, size, after,
                                      pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE})
            pit = resp.get("pit_id", pit)
            for hit in hits:
                yield _event(hit)
            if remaining is not None:
                remaining -= len(hits)
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
    finally:
        try:
            client.close_point_in_time(id=pit)
        except Exception:  # the snapshot expires by itself; nothing to tell the reader
            pass


def count(client, index_pattern: str, request: SearchRequest) -> int:
    resp = _call("count", client.count, index=index_pattern, query=build_query(request),
                 **_COMMON)
    return int(resp["count"])


def histogram(client, index_pattern: str, request: SearchRequest,
              interval: str) -> list[tuple[datetime, int]]:
    step = parse_interval(interval)
    aggs = {"h": {"date_histogram": {"field": TIME_FIELD, "fixed_interval": es_interval(step),
                                     "min_doc_count": 1}}}
    resp = _call("histogram", client.search, index=index_pattern, query=build_query(request),
                 size=0, aggs=aggs, track_total_hits=False, **_COMMON)
    buckets = (resp.get("aggregations") or {}).get("h", {}).get("buckets", [])
    return fill_buckets([(b["key"], b["doc_count"]) for b in buckets], step)


# Top values are exact on any number of shards (every daily index is one): a terms
# aggregation is exact only when no shard had to cut its list of terms at ``shard_size``, and
# Elasticsearch says so with doc_count_error_upper_bound == 0; then its top ``size`` (by count,
# then value) are the true ones. When some shard holds more than TERMS_SHARD_SIZE distinct values
# the bound is not 0, and a composite aggregation walks every bucket (exact counts, a page of
# COMPOSITE_PAGE values at a time) keeping the best ``size`` here: slower, never wrong.
TERMS_SHARD_SIZE = 10_000
COMPOSITE_PAGE = 1000


def top(client, index_pattern: str, request: SearchRequest, field: str,
        size: int = 10) -> list[tuple[str, int]]:
    target = TEXT_KEYWORD if field == TEXT_FIELD else field
    size = max(1, int(size))
    query = build_query(request)

    def search(aggs: dict) -> dict:
        resp = _call("top-values query", client.search, index=index_pattern, query=query,
                     size=0, aggs=aggs, track_total_hits=False, **_COMMON)
        return (resp.get("aggregations") or {}).get("t", {})

    def exact(name: str) -> list[tuple[str, int]]:
        terms = search({"t": {"terms": {
            "field": name, "size": size, "shard_size": max(TERMS_SHARD_SIZE, size),
            "order": [{"_count": "desc"}, {"_key": "asc"}]}}})
        if terms.get("doc_count_error_upper_bound", 0) == 0:
            return [(_key(b), int(b["doc_count"])) for b in terms.get("buckets", [])]
        # composite buckets come in ascending key order, so the walk's position ranks keys:
        # (count, -position) orders as (count desc, key asc) does
        best: list = []   # a min-heap of the best `size` (count, -position, key)
        position, after = 0, None
        while True:
            composite: dict = {"size": COMPOSITE_PAGE,
                               "sources": [{"v": {"terms": {"field": name}}}]}
            if after is not None:
                composite["after"] = after
            page = search({"t": {"composite": composite}})
            buckets = page.get("buckets", [])
            for b in buckets:
                position += 1
                entry = (int(b["doc_count"]), -position, b["key"]["v"])
                if len(best) < size:
                    heapq.heappush(best, entry)
                elif entry > best[0]:
                    heapq.heapreplace(best, entry)
            after = page.get("after_key")
            if not buckets or after is None:
                break
        best.sort(reverse=True)
        return [(bucket_key(key), n) for n, _, key in best]

    try:
        return exact(target)
    except QueryError as exc:
        # a text field: its keyword sub-field holds the whole values
        if "fielddata" not in str(exc).lower() and "text field" not in str(exc).lower():
            raise
        return exact(target + ".keyword")


def _key(bucket) -> str:
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    return bucket_key(bucket["key"])


# --- single events, for the web page (search/web/data.py) -------------------------------

def get_event(client, index_pattern: str, event_id: str) -> dict | None:
    resp = _call("search", client.search, index=index_pattern,
                 query={"ids": {"values": [event_id]}}, size=1, **_COMMON)
    hits = resp["hits"]["hits"]
    if not hits:
        return None
    return _event(hits[0])
