"""An Elasticsearch cluster that loses a node (issue 15): three nodes on loopback, one killed with -9 while
``logpipe index`` writes 50,000 records. Every record ends in the store exactly once (count by ``_id``), nothing
waits forever, and the dead-letter queue holds exactly the unindexable records."""

from __future__ import annotations

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.store.registry import open_store
from logpipe.store.elasticsearch.client import es_client
from logpipe.indexer.stats import totals
from tests.integration.test_indexer_faults import start_indexer, stop, wait_drained, wait_until
from tests.support.mail import mail_records

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS = 50_000


def _clean(client) -> None:
    names = list(client.indices.get(index="logstash-*", allow_no_indices=True, ignore_unavailable=True))
    if names:
        client.indices.delete(index=",".join(names), ignore_unavailable=True)


def test_store_url_lists_every_node_and_indices_get_a_replica(es_cluster):
    url = es_cluster.url + "/?index=clustercheck"
    sink = open_store(url)
    nodes = sorted(str(n.base_url) for n in sink.client.transport.node_pool.all())
    assert nodes == sorted(node.url for node in es_cluster.nodes)
    sink.prepare()
    template = sink.client.indices.get_index_template(name="logpipe-clustercheck")["index_templates"][0]
    assert template["index_template"]["template"]["settings"]["index"]["number_of_replicas"] == "1"
    sink.close()


def _primary_node(client, index_pattern: str) -> str:
    shards = client.cat.shards(index=index_pattern, format="json")
    return next(s["node"] for s in shards if s["prirep"] == "p" and s["state"] == "STARTED")


def _ids(client) -> list[str]:
    ids: list[str] = []
    page = client.search(index="logstash-*", scroll="2m", size=10_000, _source=False, sort=["_doc"],
                         query={"match_all": {}})
    try:
        while page["hits"]["hits"]:
            ids.extend(h["_id"] for h in page["hits"]["hits"])
            page = client.scroll(scroll_id=page["_scroll_id"], scroll="2m")
    finally:
        client.clear_scroll(scroll_id=page["_scroll_id"])
    return ids


def test_node_killed_with_sigkill_during_ingest(es_cluster, redis_url, tmp_path):
    es = es_client(es_cluster.url)
    _clean(es)
    client = connect(redis_url)
    items, bad = mail_records(RECORDS)
    client.rpush(Keys().raw, *items)
    indexer = start_indexer(redis_url, es_cluster.url, tmp_path / "indexer.log", workers=2, batch=1000)
    killed = None
    try:
        wait_until(lambda: int(totals(client, Keys()).get("indexed", 0)) >= RECORDS // 4,
                   "a quarter of the records indexed", indexer=indexer, timeout=300)
        # the node holding the daily index's primary shard: its replica must take over
        name = _primary_node(es, "logstash-*")
        killed = next(node for node in es_cluster.nodes if node.node_name == name)
        at_kill = int(totals(client, Keys()).get("indexed", 0))
        killed.kill()
        assert at_kill < RECORDS - len(bad), "everything was in before the kill: the test proves nothing"
        wait_drained(client, timeout=600)
    finally:
        out = stop(indexer)
    survivors = es_client(",".join(node.url for node in es_cluster.alive()))
    es_cluster.wait_nodes(2)
    survivors.indices.refresh(index="logstash-*")
    ids = _ids(survivors)
    assert len(ids) == len(set(ids)), "a record was stored twice"
    assert len(ids) == RECORDS - len(bad), out[-3000:]
    assert not set(ids) & bad
    letters = list(DeadLetterQueue(client).iter())
    assert sorted(letter.record_id for letter in letters) == sorted(bad)
    assert all(letter.stage == "index" and "depth" in letter.reason for letter in letters)
    client.close()
