"""The embedded Elasticsearch node answers the Python client like a real cluster (it is one)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

INDEX = "logstash-2026.11.28"
TEMPLATE = {
    "index_patterns": ["logstash-*"],
    "priority": 200,
    "template": {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {
            "dynamic_templates": [{"strings_as_keywords": {
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": 1024}}}],
            "properties": {
                "@timestamp": {"type": "date"},
                "message": {"type": "text"},
                "host": {"type": "keyword"},
                "clientip": {"type": "ip"},
                "bytes": {"type": "long"},
            },
        },
    },
}


def _docs():
    """24 hourly events on 2026-11-28: 3 hosts, sendmail on even hours, sshd on odd hours."""
    hosts = ["mail-1", "mail-2", "web-1"]
    for hour in range(24):
        program = "sendmail" if hour % 2 == 0 else "sshd"
        doc = {
            "@timestamp": f"2026-11-28T{hour:02d}:15:00Z",
            "host": hosts[hour % 3],
            "program": program,
            "clientip": f"10.0.{hour}.1" if hour < 12 else f"192.168.1.{hour}",
            "bytes": 100 * hour,
            "message": f"{program}[{1000 + hour}]: stat=Sent hour {hour}" if program == "sendmail"
            else f"{program}[{1000 + hour}]: Accepted publickey for user{hour}",
        }
        if hour % 4 == 0:
            doc["qid"] = f"Q{hour:04d}"
        yield f"ev-{hour:02d}", doc


def _bulk_create(client, refresh="wait_for"):
    operations = []
    for doc_id, doc in _docs():
        operations.append({"create": {"_index": INDEX, "_id": doc_id}})
        operations.append(doc)
    return client.bulk(operations=operations, refresh=refresh)


def test_info_and_product_check(es_client):
    info = es_client.info()  # raises UnsupportedProductError unless X-Elastic-Product is right
    assert info["tagline"] == "You Know, for Search"
    assert int(info["version"]["number"].split(".")[0]) >= 8
    assert es_client.ping()
    health = es_client.cluster.health()
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] == 1


def test_index_template_applies_mappings(es_client):
    es_client.indices.put_index_template(name="logpipe-test", **TEMPLATE)
    assert es_client.indices.get_index_template(name="logpipe-test")["index_templates"]

    es_client.index(index=INDEX, id="one", refresh="wait_for", document={
        "@timestamp": "2026-11-28T10:00:00Z", "host": "mail-1", "clientip": "10.1.2.3",
        "program": "postfix", "message": "hello world", "bytes": 42})
    props = es_client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["host"]["type"] == "keyword"
    assert props["clientip"]["type"] == "ip"
    assert props["bytes"]["type"] == "long"
    assert props["message"]["type"] == "text"
    assert props["program"]["type"] == "keyword"  # from the dynamic template
    settings = es_client.indices.get_settings(index=INDEX)[INDEX]["settings"]["index"]
    assert settings["number_of_replicas"] == "0"

    # the ip mapping is live: CIDR term query
    assert es_client.count(index=INDEX, query={"term": {"clientip": "10.0.0.0/8"}})["count"] == 1
    # a malformed IP is rejected per document (what the sink turns into a dead letter)
    from elasticsearch import BadRequestError
    with pytest.raises(BadRequestError):
        es_client.index(index=INDEX, id="bad", document={"@timestamp": "2026-11-28T10:00:00Z",
                                                         "clientip": "not-an-ip"})


def test_bulk_create_then_conflict(es_client):
    es_client.indices.put_index_template(name="logpipe-test", **TEMPLATE)
    first = _bulk_create(es_client)
    assert first["errors"] is False
    assert [item["create"]["status"] for item in first["items"]] == [201] * 24
    assert es_client.count(index=INDEX)["count"] == 24

    again = _bulk_create(es_client)
    assert again["errors"] is True
    statuses = [item["create"]["status"] for item in again["items"]]
    assert statuses == [409] * 24
    assert {item["create"]["error"]["type"] for item in again["items"]} == \
        {"version_conflict_engine_exception"}
    assert es_client.count(index=INDEX)["count"] == 24

    # raw NDJSON through perform_request, as store/elasticsearch/writer.py sends it
    body = b'{"create":{"_index":"%s","_id":"ev-00"}}\n{"host":"x","@timestamp":"2026-11-28T00:00:00Z"}\n' \
        % INDEX.encode()
    raw = es_client.perform_request("POST", "/_bulk", body=body, headers={
        "content-type": "application/x-ndjson", "accept": "application/json"})
    assert raw["items"][0]["create"]["status"] == 409


def test_queries_and_aggregations(es_client):
    es_client.indices.put_index_template(name="logpipe-test", **TEMPLATE)
    assert _bulk_create(es_client)["errors"] is False

    def count(query):
        return es_client.count(index="logstash-*", query=query)["count"]

    assert count({"query_string": {"query": "program:sendmail AND host:mail-1"}}) == 4
    assert count({"query_string": {"query": "message:Sent"}}) == 12
    assert count({"query_string": {"query": "program:ssh* AND NOT host:web-1"}}) == 8
    assert count({"query_string": {"query": "_exists_:qid"}}) == 6
    assert count({"exists": {"field": "qid"}}) == 6
    assert count({"wildcard": {"host": {"value": "mail-*"}}}) == 16
    assert count({"range": {"@timestamp": {"gte": "2026-11-28T06:00:00Z",
                                           "lt": "2026-11-28T12:00:00Z"}}}) == 6
    assert count({"range": {"bytes": {"gt": 1000}}}) == 13
    assert count({"bool": {
        "must": [{"term": {"program": "sendmail"}}],
        "filter": [{"range": {"@timestamp": {"gte": "2026-11-28T12:00:00Z"}}}],
        "must_not": [{"term": {"host": "web-1"}}],
    }}) == 4
    assert count({"term": {"clientip": "192.168.0.0/16"}}) == 12

    result = es_client.search(
        index="logstash-*", size=3, sort=[{"@timestamp": "desc"}],
        query={"query_string": {"query": "program:sendmail", "default_operator": "AND"}},
        aggs={
            "hosts": {"terms": {"field": "host", "size": 10}},
            "per_6h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "6h"}},
            "per_day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"}},
        })
    assert result["hits"]["total"]["value"] == 12
    assert [hit["_id"] for hit in result["hits"]["hits"]] == ["ev-22", "ev-20", "ev-18"]
    hosts = {b["key"]: b["doc_count"] for b in result["aggregations"]["hosts"]["buckets"]}
    assert hosts == {"mail-1": 4, "mail-2": 4, "web-1": 4}
    per_6h = [b["doc_count"] for b in result["aggregations"]["per_6h"]["buckets"]]
    assert per_6h == [3, 3, 3, 3]
    assert result["aggregations"]["per_6h"]["buckets"][0]["key_as_string"] == "2026-11-28T00:00:00.000Z"
    assert [b["doc_count"] for b in result["aggregations"]["per_day"]["buckets"]] == [12]
