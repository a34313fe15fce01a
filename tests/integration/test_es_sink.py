"""The Elasticsearch sink against the real node: template, outcomes per item, indices, prune."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from logpipe.store import open_store
from logpipe.store.base import Event, SearchRequest, Status
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration


def event(i: int, day: str = "2026-11-28", **extra) -> Event:
    doc = {"@timestamp": f"{day}T10:00:{i % 60:02d}.000Z", "message": f"line {i}",
           "host": "mx1", "type": "mail", "tags": [], "qid": f"r4F{i:011d}", "size": i,
           "relayip": "10.0.0.1"}
    doc.update(extra)
    return Event(f"id-{day}-{i}", doc)


def deep(levels: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(levels):
        value = {"down": value}
    return value


def test_outcomes_template_indices_and_prune(es_url, es_client):
    sink = open_store(es_url + "/?index=mailtest")
    sink.prepare()
    first = sink.write([event(i) for i in range(5)] + [event(0, "2026-10-01")])
    assert [o.status for o in first] == [Status.INDEXED] * 6
    # a masked address is stored (as text, not indexed as an IP, tagged); only what ES truly
    # cannot take (deeper than index.mapping.depth.limit) is rejected
    again = sink.write([event(1), event(7, relayip="123.456.789.1"), event(8, trace=deep(21))])
    assert again[0].status is Status.DUPLICATE
    assert again[1].status is Status.INDEXED
    assert again[2].status is Status.REJECTED and "depth" in again[2].reason
    es_client.indices.refresh(index="mailtest-*")
    assert sorted(es_client.indices.get(index="mailtest-*")) == \
        ["mailtest-2026.10.01", "mailtest-2026.11.28"]
    mapping = es_client.indices.get_mapping(index="mailtest-2026.11.28")
    props = mapping["mailtest-2026.11.28"]["mappings"]["properties"]
    assert props["qid"]["type"] == "keyword" and props["relayip"]["type"] == "ip"
    assert props["message"]["type"] == "text" and props["@timestamp"]["type"] == "date"
    found = store_search(sink, SearchRequest(query="qid:r4F0000000000*", limit=10))
    assert found.total == 7
    [masked] = store_search(sink, SearchRequest(query="tags:_malformed_field", limit=10)).events
    assert (masked["relayip"], masked["_malformed"]) == ("123.456.789.1", ["relayip"])
    assert sink.prune(datetime(2026, 11, 1, tzinfo=timezone.utc)) == 1
    assert sorted(es_client.indices.get(index="mailtest-*")) == ["mailtest-2026.11.28"]
    for name in es_client.indices.get(index="mailtest-*"):
        es_client.indices.delete(index=name)


def test_store_down_is_retry_not_loss():
    sink = open_store("http://127.0.0.1:9")  # nothing listens on the discard port
    outcomes = sink.write([event(1), event(2)])
    assert [o.status for o in outcomes] == [Status.RETRY, Status.RETRY]
    assert "unreachable" in outcomes[0].reason
