"""The thinnest real slice: ship a real corpus file, index it with RQ workers, find it again.

Real services only: a Valkey server and, for the Elasticsearch variant, the embedded node.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import orjson
import pytest

from logpipe.common.broker import connect
from logpipe.indexer.dlq import DeadLetterQueue

from tests.conftest import corpus_file

pytestmark = pytest.mark.integration


def logpipe(*args, **kw):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=kw.pop("timeout", 300), **kw)


def ship_and_index(redis_url, store_url, path, rtype):
    shipped = logpipe("ship", "--redis", redis_url, "--type", rtype, "--once", str(path))
    assert shipped.returncode == 0, shipped.stderr
    indexed = logpipe("index", "--redis", redis_url, "--store", store_url, "--workers", "2",
                      "--burst", "--batch-size", "300")
    assert indexed.returncode == 0, indexed.stderr


def expected_lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def check_sendmail_fields(docs_by_message, lines):
    # A real sendmail delivery line must have come out with the 2013 config's field names.
    delivered = [l for l in lines if " sendmail[" in l and " to=" in l and "stat=Sent" in l]
    assert delivered, "corpus has sendmail deliveries"
    doc = docs_by_message[delivered[0]]
    assert doc["program"] == "sendmail"
    assert doc["stat"].startswith("Sent")
    assert doc["qid"] and doc["qid"] in delivered[0]
    assert doc["to"] in delivered[0]
    assert doc["type"] == "mail"
    assert "_grokparsefailure" not in doc["tags"]


def test_corpus_maillog_to_elasticsearch(redis_url, es_client, es_url):
    path = corpus_file("mail_extra.log")
    ship_and_index(redis_url, es_url, path, "mail")
    es_client.indices.refresh(index="logstash-*")
    hits = es_client.search(index="logstash-*", size=10_000, query={"match_all": {}})["hits"]
    docs = [h["_source"] for h in hits["hits"]]
    lines = expected_lines(path)
    # Every line is a document (issue 9): relays with masked or impossible addresses
    # ([123.456.789.1]) are stored too, the address kept as text and not indexed as an IP,
    # tagged _malformed_field with the field named in _malformed; nothing is dead-lettered.
    assert list(DeadLetterQueue(connect(redis_url)).iter()) == []
    assert Counter(d["message"] for d in docs) == Counter(lines)
    masked = [d for d in docs if "123.456.789.1" in d["message"] and d.get("relayip")]
    assert masked and all(d["relayip"] == "123.456.789.1" and d["_malformed"] == ["relayip"]
                          and "_malformed_field" in d["tags"] for d in masked)
    assert all("_malformed" not in d for d in docs if "123.456.789.1" not in d["message"]
               and "xxx" not in d["message"])
    assert all(h["_index"].startswith("logstash-20") for h in hits["hits"])
    check_sendmail_fields({d["message"]: d for d in docs}, lines)
    # qid is a keyword: one message's whole story by its queue id.
    qid = next(d["qid"] for d in docs if d.get("program") == "sendmail" and d.get("to"))
    story = es_client.search(index="logstash-*", q=f"qid:{qid}", size=100)["hits"]["hits"]
    assert len(story) >= 2 and all(h["_source"]["qid"] == qid for h in story)
    # The search command finds them too, newest first.
    found = logpipe("search", "--store", es_url, "--json", "--limit", "5", f"qid:{qid}")
    assert found.returncode == 0, found.stderr
    assert qid in found.stdout


def test_corpus_syslog_to_embedded_store(redis_url, tmp_path):
    path = corpus_file("linux.log")
    store = f"sqlite:///{tmp_path}/events.db"
    ship_and_index(redis_url, store, path, "syslog")
    found = logpipe("search", "--store", store, "--json", "--limit", "100000", "*")
    assert found.returncode == 0, found.stderr
    docs = [orjson.loads(line) for line in found.stdout.splitlines()]
    lines = expected_lines(path)
    assert Counter(d["message"] for d in docs) == Counter(lines)
    stamps = [d["@timestamp"] for d in docs]
    assert stamps == sorted(stamps, reverse=True), "newest first"
    parsed = [d for d in docs if "_grokparsefailure" not in d["tags"]]
    assert len(parsed) > 0.9 * len(docs)
    assert all(d.get("logsource") for d in parsed)
    # Lines such as "syslogd 1.4.1: restart." carry no program tag; all others have one.
    assert sum(1 for d in parsed if d.get("program")) > 0.99 * len(parsed)
    sshd = next(d for d in docs if d.get("program") == "sshd(pam_unix)")
    assert sshd["pid"] and sshd["logsource"] == "combo"
