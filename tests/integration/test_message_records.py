"""Message records (issue 23): one per mail transaction, the same whatever the number of
workers, the batch sizes, the order of the lines and a worker killed half-way; on both stores.

Real services only: Valkey, the embedded store, the Elasticsearch node, `logpipe index` with its
RQ worker processes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest

from logpipe.common.broker import Broker, Keys, connect
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.jobs import BatchProcessor, JobSettings
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline
from logpipe.search.report import percentile, summarise
from logpipe.services.loggen import generate
from logpipe.store import open_store

pytestmark = pytest.mark.integration

# Delivery into mailboxes by dovecot LMTP: dovecot's lines carry no queue id, only the msgid; one
# recipient also has postfix's lmtp line, the other only dovecot's. The same msgid on another host
# is another message's record, which the deliveries do not touch.
DOVECOT = """\
Nov 28 09:00:00 relay postfix/smtpd[22]: 9F0A1B2C3D: client=ext.example.com[192.0.2.20]
Nov 28 09:00:00 relay postfix/cleanup[23]: 9F0A1B2C3D: message-id=<20261128090000.ABC@example.org>
Nov 28 09:00:01 relay postfix/qmgr[21]: 9F0A1B2C3D: from=<alice@example.com>, size=20480, nrcpt=2 (queue active)
Nov 28 09:00:02 relay dovecot: lmtp(heidi)<12345><AbCdEf>: sieve: msgid=<20261128090000.ABC@example.org>: stored mail into mailbox 'Junk'
Nov 28 09:00:02 relay dovecot: lmtp(ivan@example.org)<12346><BcDeFg>: msgid=<20261128090000.ABC@example.org>: saved mail to INBOX
Nov 28 09:00:02 relay postfix/lmtp[20]: 9F0A1B2C3D: to=<heidi@example.org>, relay=relay.example.org[private/dovecot-lmtp], delay=1.1, delays=0.1/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 <heidi@example.org> AbCdEf Saved)
Nov 28 09:00:03 relay postfix/qmgr[21]: 9F0A1B2C3D: removed
Nov 28 09:10:00 mx postfix/cleanup[11]: 0A1B2C3D4F: message-id=<20261128090000.ABC@example.org>
Nov 28 09:10:01 mx postfix/qmgr[12]: 0A1B2C3D4F: from=<alice@example.com>, size=20480, nrcpt=1 (queue active)
"""

# Two hosts, a hand-off between them (amavis on mx, then the relay), a day boundary, a bounce
# ("User unknown" with its DSN), an expiry, a NOQUEUE reject, a milter reject, dovecot LMTP.
POSTFIX = """\
Nov 27 23:59:58 mx postfix/smtpd[10]: 4A1B2C3D4E: client=mail.example.com[192.0.2.10]
Nov 27 23:59:59 mx postfix/cleanup[11]: 4A1B2C3D4E: message-id=<m1@example.com>
Nov 28 00:00:00 mx postfix/qmgr[12]: 4A1B2C3D4E: from=<Bob@Example.com>, size=4321, nrcpt=3 (queue active)
Nov 28 00:00:01 mx amavis[13]: (01234-05) Passed CLEAN {RelayedInbound}, [192.0.2.10]:4123 <bob@example.com> -> <dave@example.org>, Queue-ID: 4A1B2C3D4E, Message-ID: <m1@example.com>, mail_id: abc, Hits: 1.5, size: 4321, queued_as: 5B6C7D8E9F, 120 ms
Nov 28 00:00:02 mx postfix/smtp[14]: 4A1B2C3D4E: to=<dave@example.org>, relay=127.0.0.1[127.0.0.1]:10024, delay=4, delays=1/0/0/3, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 5B6C7D8E9F)
Nov 28 00:00:02 mx postfix/smtp[14]: 4A1B2C3D4E: to=<Eve@Example.net>, relay=mx.example.net[198.51.100.7]:25, delay=4, delays=1/0/1/2, dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.7] said: 550 5.1.1 <eve@example.net>: User unknown (in reply to RCPT TO command))
Nov 28 00:00:02 mx postfix/smtp[14]: 4A1B2C3D4E: to=<frank@example.org>, relay=none, delay=4, delays=1/0/3/0, dsn=4.4.1, status=deferred (connect to mx.example.org[203.0.113.5]:25: Connection timed out)
Nov 28 00:00:03 mx postfix/bounce[15]: 4A1B2C3D4E: sender non-delivery notification: 6C7D8E9F0A
Nov 28 05:00:02 mx postfix/smtp[14]: 4A1B2C3D4E: to=<frank@example.org>, relay=mx.example.org[203.0.113.5]:25, delay=18004, delays=1/0/3/18000, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABCDEF0123)
Nov 28 05:00:03 mx postfix/qmgr[12]: 4A1B2C3D4E: removed
Nov 28 00:00:03 relay postfix/lmtp[20]: 5B6C7D8E9F: to=<dave@example.org>, relay=relay.example.org[private/dovecot-lmtp], delay=0.2, delays=0/0/0/0.2, dsn=2.0.0, status=sent (250 2.0.0 <dave@example.org> nGsvDk Saved)
Nov 28 00:00:02 relay postfix/qmgr[21]: 5B6C7D8E9F: from=<bob@example.com>, size=4500, nrcpt=1 (queue active)
Nov 28 01:00:00 mx postfix/smtpd[10]: NOQUEUE: reject: RCPT from unknown[203.0.113.99]: 554 5.7.1 <x@example.org>: Relay access denied; from=<spam@bad.example> to=<x@example.org> proto=ESMTP helo=<bad>
Nov 28 01:00:05 mx postfix/smtpd[10]: 7D8E9F0A1B: client=unknown[203.0.113.98]
Nov 28 01:00:06 mx postfix/cleanup[11]: 7D8E9F0A1B: milter-reject: END-OF-MESSAGE from unknown[203.0.113.98]: 5.7.1 Spam message rejected; from=<a@spam.example> to=<c@example.org> proto=ESMTP helo=<x>
Nov 23 08:00:00 mx postfix/qmgr[12]: 8E9F0A1B2C: from=<carol@example.com>, size=999, nrcpt=1 (queue active)
Nov 23 08:00:01 mx postfix/smtp[14]: 8E9F0A1B2C: to=<gone@example.net>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to example.net[192.0.2.1]:25: Connection refused)
Nov 28 08:00:02 mx postfix/qmgr[12]: 8E9F0A1B2C: from=<carol@example.com>, status=expired, returned to sender
""" + DOVECOT



def lines_to_records(text: str, host: str, path: str, start: int = 0) -> list[Record]:
    out, offset = [], start
    for line in text.splitlines():
        out.append(Record(id=record_id(host, path, offset), line=line, host=host, path=path,
                          offset=offset, type="mail", received_at=1764288000.0))
        offset += len(line.encode()) + 1
    return out


def corpus_records(mail_lines: int = 1500) -> list[Record]:
    generated = "\n".join(generate("mail", mail_lines, seed=23,
                                   start="2026-11-27T22:00:00+00:00"))
    return (lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log")
            + lines_to_records(generated, "shipper-b", "/var/log/maillog"))


def records_of(url: str) -> list[dict]:
    sink = open_store(url)
    try:
        if hasattr(sink, "refresh_messages"):
            sink.refresh_messages()
        found = list(sink.stream_messages("*", order="asc"))
    finally:
        sink.close()
    return sorted(found, key=lambda r: (r["host"], r["qid"], r["first_seen"] or ""))


def embedded_reference(redis_client, records: list[Record], tmp_path) -> list[dict]:
    """The embedded store's records of ``records`` indexed in order: what every store, every
    order and every split of the work must give."""
    url = f"sqlite:///{tmp_path}/reference.db"
    index_in_order(redis_client, records, url)
    return records_of(url)


def index_in_order(redis_client, records: list[Record], url: str) -> None:
    """The reference: one worker, one batch, every line in order."""
    keys = Keys()
    redis_client.rpush(keys.raw, *[encode(r) for r in records])
    key, n = Broker(redis_client, keys).claim_batch(100_000)
    assert n == len(records)
    sink = open_store(url)
    sink.prepare()
    settings = JobSettings(redis_url="unused", store_url=url)
    result = BatchProcessor(redis_client, settings, sink, Pipeline(load_pipeline(None))).run(key)
    assert result.dead_lettered == 0
    sink.close()


def logpipe(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def shuffled_items(records: list[Record], seed: int) -> list[bytes]:
    items = [encode(r) for r in records]
    random.Random(seed).shuffle(items)
    return items


@pytest.fixture(scope="module")
def corpus():
    return corpus_records()


@pytest.fixture
def reference(redis_url, tmp_path, corpus):
    url = f"sqlite:///{tmp_path}/reference.db"
    client = connect(redis_url)
    index_in_order(client, corpus, url)
    client.flushall()
    client.close()
    return records_of(url)


def by_key(records):
    return {(r["host"], r["qid"] if r["qid"] != "NOQUEUE" else r["first_seen"]): r
            for r in records}


# ------------------------------------------------------------------------ what a record says

def test_postfix_transactions_become_records(redis_client, tmp_path):
    url = f"sqlite:///{tmp_path}/one.db"
    index_in_order(redis_client, lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log"), url)
    recs = by_key(records_of(url))
    m = recs[("mx", "4A1B2C3D4E")]  # host from the syslog header, not the shipper
    assert m["from"] == "bob@example.com" and m["from_raw"] == "Bob@Example.com"
    assert m["size"] == 4321 and m["msgid"] == "m1@example.com"
    assert m["client"] == {"hostname": "mail.example.com", "ip": "192.0.2.10"}
    rc = {r["to"]: r for r in m["recipients"]}
    assert set(rc) == {"dave@example.org", "eve@example.net", "frank@example.org"}
    assert rc["eve@example.net"]["to_raw"] == "Eve@Example.net"
    assert rc["eve@example.net"]["status"] == "bounced" and rc["eve@example.net"]["dsn"] == "5.1.1"
    assert "User unknown" in rc["eve@example.net"]["reason"]
    # frank: deferred first, sent five hours later: the latest line wins
    assert rc["frank@example.org"]["status"] == "sent"
    assert rc["frank@example.org"]["delay"] == 18004.0
    assert m["status"] == "partial" and m["delay_s"] == 18004.0
    assert m["first_seen"].endswith("23:59:58.000Z") and m["last_seen"].endswith("05:00:03.000Z")
    assert m["spam"] == {"verdict": "ham", "score": 1.5}
    assert m["lines"] == 10
    nxt = {(n["qid"], n["host"]) for n in m["next"]}
    assert ("5B6C7D8E9F", "mx") in nxt and ("6C7D8E9F0A", "mx") in nxt
    assert ("ABCDEF0123", "mx.example.org") in nxt
    # the hand-off to the relay: its own record, linked back
    r = recs[("relay", "5B6C7D8E9F")]
    assert r["status"] == "delivered" and r["recipients"][0]["relay"] == "relay.example.org"
    assert {"qid": "4A1B2C3D4E", "host": "mx"} in r["prev"]
    noq = [x for x in recs.values() if x["qid"] == "NOQUEUE"]
    assert len(noq) == 1 and noq[0]["status"] == "rejected"
    assert noq[0]["recipients"][0] == {"to": "x@example.org", "to_raw": "x@example.org",
                                       "status": "rejected", "dsn": "5.7.1", "relay": None,
                                       "delay": None,
                                       "reason": "554 5.7.1 <x@example.org>: Relay access denied"}
    assert recs[("mx", "7D8E9F0A1B")]["status"] == "rejected"
    exp = recs[("mx", "8E9F0A1B2C")]
    assert exp["status"] == "expired" and exp["recipients"][0]["status"] == "expired"


def index_batches(redis_client, batches: list[list[Record]], url: str) -> None:
    """One worker, the batches one after the other, each line in the order given."""
    for batch in batches:
        index_in_order(redis_client, batch, url)
        redis_client.flushall()


def dovecot_orders() -> dict[str, list[list[Record]]]:
    lines = lines_to_records(DOVECOT, "shipper-a", "/var/log/mail.log")
    lmtp = [r for r in lines if "dovecot:" in r.line]
    rest = [r for r in lines if "dovecot:" not in r.line]
    return {"in order, one batch": [lines],
            "deliveries first": [lmtp, rest],
            "deliveries last": [rest, lmtp],
            "one line a batch, reversed": [[r] for r in reversed(lines)]}


def assert_dovecot_joined(recs: dict) -> None:
    m = recs[("relay", "9F0A1B2C3D")]
    assert m["msgid"] == "20261128090000.ABC@example.org" and m["status"] == "delivered"
    rc = {r["to"]: r for r in m["recipients"]}
    assert rc["heidi@example.org"]["status"] == "sent"
    assert rc["heidi@example.org"]["mailbox"] == "Junk"  # sieve's, from dovecot's line
    assert rc["heidi@example.org"]["relay"] == "relay.example.org"  # postfix's line
    assert rc["ivan@example.org"]["status"] == "sent"  # dovecot's line only
    assert rc["ivan@example.org"]["mailbox"] == "INBOX"
    assert m["lines"] == 7 and m["last_seen"].endswith("09:00:03.000Z")
    other = recs[("mx", "0A1B2C3D4F")]  # same msgid, another host: not joined
    assert other["recipients"] == [] and other["lines"] == 2 and other["status"] == "queued"


def test_dovecot_lmtp_lines_join_their_message_in_any_order(redis_client, tmp_path):
    got = {}
    for i, (name, batches) in enumerate(dovecot_orders().items()):
        url = f"sqlite:///{tmp_path}/order{i}.db"
        index_batches(redis_client, batches, url)
        got[name] = records_of(url)
        assert_dovecot_joined(by_key(got[name]))
    first = got["in order, one batch"]
    assert all(records == first for records in got.values())
    out = logpipe("messages", "--store", f"sqlite:///{tmp_path}/order1.db", "--json",
                  "msgid:20261128090000.ABC@example.org AND host:relay")
    assert out.returncode == 0, out.stderr
    assert [orjson.loads(x)["qid"] for x in out.stdout.splitlines()] == ["9F0A1B2C3D"]


def test_dovecot_lmtp_lines_join_on_elasticsearch_in_any_order(redis_client, es_url,
                                                               es_client, tmp_path):
    reference_url = f"sqlite:///{tmp_path}/reference.db"
    index_batches(redis_client, dovecot_orders()["in order, one batch"], reference_url)
    reference = records_of(reference_url)
    for name, batches in dovecot_orders().items():
        index_batches(redis_client, batches, es_url)
        got = records_of(es_url)
        assert_dovecot_joined(by_key(got))
        assert got == reference, name
        from tests.fixtures.elasticsearch import _clean
        _clean(es_client)


# a message whose lines' months span two indices (its first line within a week of October)
EARLY_NOVEMBER = """\
Nov  3 10:00:00 mx postfix/qmgr[12]: 1A2B3C4D5E: from=<x@example.com>, size=1, nrcpt=1 (queue active)
Nov  3 10:00:01 mx postfix/smtp[14]: 1A2B3C4D5E: to=<y@example.org>, relay=mx.example.org[203.0.113.5]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
"""


def test_elasticsearch_reads_a_record_after_its_write_only_across_two_months(
        redis_client, es_url, tmp_path):
    """A record this process has not seen, whose lines name one month's index, is created
    without a read (the node refuses the create if it exists); one read from one index and
    written back there is done when its conditional write succeeds. One whose lines may sit in
    two months' indices is read before and again after its write (two workers may each have
    written a copy). Either way the records equal the embedded store's."""
    records = lines_to_records(POSTFIX + EARLY_NOVEMBER, "shipper-a", "/var/log/mail.log")
    reference = embedded_reference(redis_client, records, tmp_path)
    redis_client.flushall()
    sink = open_store(es_url)
    sink.prepare()
    reads: dict[str, int] = {}
    real_mget = sink.client.mget

    def counted_mget(**kwargs):
        for doc in kwargs["docs"]:
            if doc["_index"].startswith("logpipe-messages-"):
                reads[doc["_id"]] = reads.get(doc["_id"], 0) + 1
        return real_mget(**kwargs)

    sink.client.mget = counted_mget
    keys = Keys()
    redis_client.rpush(keys.raw, *[encode(r) for r in records])
    key, _ = Broker(redis_client, keys).claim_batch(100_000)
    settings = JobSettings(redis_url="unused", store_url=es_url)
    assert BatchProcessor(redis_client, settings, sink,
                          Pipeline(load_pipeline(None))).run(key).dead_lettered == 0
    sink.close()
    assert records_of(es_url) == reference
    assert reads.pop("mx/1A2B3C4D5E") == 4  # two indices, read before and after the write
    # created unread, then read once to merge dovecot's held parts into it
    assert reads.pop("relay/9F0A1B2C3D") == 1
    assert not reads, reads  # every other record: created, never read


def test_elasticsearch_record_created_elsewhere_is_merged_once_its_create_is_refused(
        redis_client, es_url, es_client, tmp_path):
    """Two stores (two workers) each given half of every message's lines: the second knows none
    of the records, creates them unread, is refused for each (the first wrote them), reads them
    and merges. The records equal the embedded store's, and every refusal was read again."""
    from logpipe.indexer.messages import keep, parts_of
    from logpipe.store.messages import is_held

    records = lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log")
    reference = embedded_reference(redis_client, records, tmp_path)
    pipeline = Pipeline(load_pipeline(None))
    events = [pipeline.process(r) for r in records]
    first, second = open_store(es_url), open_store(es_url)
    refused: list[str] = []
    real_bulk = second._message_bulk

    def counted_bulk(lines, owners):
        ok, contended = real_bulk(lines, owners)
        refused.extend(contended)
        return ok, contended

    second._message_bulk = counted_bulk
    try:
        for sink, half in ((first, events[0::2]), (second, events[1::2])):
            sink.prepare()
            assert all(o.status.value == "indexed" for o in sink.write(half))
            keep(sink, half)
    finally:
        first.close()
        second.close()
    shared = {k for k, (_, qid, _) in parts_of(events[0::2]).items() if not is_held(qid)} & \
        set(parts_of(events[1::2]))
    assert shared and set(refused) == shared
    assert records_of(es_url) == reference


def test_elasticsearch_records_written_with_parts_as_an_object_take_new_lines(
        redis_client, es_url, es_client, tmp_path):
    """A record's parts are written as one JSON text (the node stores it unparsed); documents
    written before hold them as an object. A record in that older form, given its message's
    later lines, merges them with its stored parts: the records equal the embedded store's."""
    from logpipe.store.elasticsearch.messages import PATTERN

    records = lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log")
    reference = embedded_reference(redis_client, records, tmp_path)
    redis_client.flushall()
    half = 5  # mid-way through mx's 4A1B2C3D4E: its record is in both halves
    index_batches(redis_client, [records[:half]], es_url)
    es_client.indices.refresh(index=PATTERN)
    stored = es_client.search(index=PATTERN, size=100, seq_no_primary_term=True)["hits"]["hits"]
    assert stored and all(isinstance(h["_source"]["parts"], str) for h in stored)
    for hit in stored:  # each document back to the older form, parts as an object
        source = {**hit["_source"], "parts": orjson.loads(hit["_source"]["parts"])}
        es_client.index(index=hit["_index"], id=hit["_id"], document=source,
                        if_seq_no=hit["_seq_no"], if_primary_term=hit["_primary_term"])
    es_client.indices.refresh(index=PATTERN)
    index_batches(redis_client, [records[half:]], es_url)
    assert records_of(es_url) == reference
    es_client.indices.refresh(index=PATTERN)
    rewritten = es_client.search(index=PATTERN, size=100)["hits"]["hits"]
    # the older record, which the later lines touched, is written again in the newer form
    assert len(rewritten) == len(reference)
    assert all(isinstance(h["_source"]["parts"], str) for h in rewritten)


def test_elasticsearch_delivery_written_between_a_records_read_and_write_joins_it(
        redis_client, es_url, es_client, tmp_path):
    """The race the held parts' protocol orders: a worker reads a record's held parts (none),
    another writes dovecot's delivery of that msgid (finding no record yet), then the first
    writes the record. The record reads its held parts again after its write and merges the
    delivery: the records equal the embedded store's. (The worker wrote the records' first
    lines before, so it reads them before its write: a record it does not know is created
    unread, and its held parts are read only after the write.)"""
    from logpipe.indexer.messages import keep
    from logpipe.store.elasticsearch.messages import HELD_INDEX

    records = lines_to_records(DOVECOT, "shipper-a", "/var/log/mail.log")
    reference = embedded_reference(redis_client, records, tmp_path)
    pipeline = Pipeline(load_pipeline(None))
    events = [pipeline.process(r) for r in records]
    deliveries = [e for e in events if "dovecot:" in e.doc["message"]]
    rest = [e for e in events if "dovecot:" not in e.doc["message"]]
    first, second = open_store(es_url), open_store(es_url)
    for sink in (first, second):
        sink.prepare()
        assert all(o.status.value == "indexed" for o in sink.write(
            deliveries if sink is second else rest))
    real_mget = first._mget
    raced = []

    def mget_then_race(wanted):
        found = real_mget(wanted)
        if not raced and any(index == HELD_INDEX for index, _ in wanted):
            raced.append(keep(second, deliveries))  # after the read, before the write
        return found

    leading = list({e.doc["qid"]: e for e in reversed(rest)}.values())
    keep(first, leading)  # each record's first line: the records are known from now on
    first._mget = mget_then_race
    keep(first, [e for e in rest if e not in leading])
    assert raced, "the held parts were never read"
    for sink in (first, second):
        sink.close()
    got = records_of(es_url)
    assert_dovecot_joined(by_key(got))
    assert got == reference


def test_messages_command_queries_record_fields(redis_client, tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    index_in_order(redis_client, lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log"), url)

    def qids(*query):
        out = logpipe("messages", "--store", url, "--all", "--json", *query)
        assert out.returncode == 0, out.stderr
        return sorted(orjson.loads(line)["qid"] for line in out.stdout.splitlines())

    assert qids("status:partial AND from:*@example.com AND delay_s:>3600") == ["4A1B2C3D4E"]
    assert qids("recipients.to:dave@example.org") == ["4A1B2C3D4E", "5B6C7D8E9F"]
    assert qids("to:\"<Eve@EXAMPLE.net>\"") == ["4A1B2C3D4E"]
    assert qids("status:expired") == ["8E9F0A1B2C"]
    assert qids("status:rejected") == ["7D8E9F0A1B", "NOQUEUE"]
    assert qids("domain:example.net AND NOT status:delivered") == ["4A1B2C3D4E", "8E9F0A1B2C"]
    assert qids('"relay access denied"') == ["NOQUEUE"]
    counted = logpipe("messages", "--store", url, "--count", "size:[1000 TO 5000]")
    assert counted.stdout.strip() == "2"  # 4321 and 4500; 999 is below


def test_a_regular_expression_on_records_is_refused_alike_by_both_stores(redis_client, es_url,
                                                                          tmp_path):
    """The embedded store cannot run a regular expression on a record; Elasticsearch ran it on
    fields as stored (``recipients.domain`` is not indexed there): both now refuse it with the
    same message, and the command says it without a traceback."""
    from logpipe.common.errors import QueryError

    records = lines_to_records(POSTFIX, "shipper-a", "/var/log/mail.log")
    embedded = f"sqlite:///{tmp_path}/cli.db"
    for url in (embedded, es_url):
        index_in_order(redis_client, records, url)
        store = open_store(url)
        try:
            assert [r["qid"] for r in store.stream_messages("recipients.domain:example.net")]
            for query in ("recipients.domain:/example\\.n.*/", "status:/bou.*/ OR qid:X"):
                with pytest.raises(QueryError, match="regular expressions search log lines"):
                    list(store.stream_messages(query))
                with pytest.raises(QueryError, match="regular expressions search log lines"):
                    store.count_messages(query)
        finally:
            store.close()
        redis_client.flushall()
    out = logpipe("messages", "--store", embedded, "status:/bou.*/")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "status:/bou.*/: regular expressions search log lines" in out.stderr


# ------------------------------------------------------------------------ order independence

def test_four_workers_on_shuffled_small_batches_give_identical_records(redis_url, tmp_path,
                                                                       corpus, reference):
    client = connect(redis_url)
    client.rpush(Keys().raw, *shuffled_items(corpus, seed=5))
    url = f"sqlite:///{tmp_path}/shuffled.db"
    out = logpipe("index", "--redis", redis_url, "--store", url, "--workers", "4", "--burst",
                  "--batch-size", "37")
    assert out.returncode == 0, out.stderr
    got = records_of(url)
    assert len(got) == len(reference) > 300
    assert got == reference


def test_worker_killed_mid_run_gives_identical_records(redis_url, tmp_path, corpus, reference):
    from rq import Queue, Worker
    from rq.registry import StartedJobRegistry

    client = connect(redis_url)
    client.rpush(Keys().raw, *shuffled_items(corpus, seed=9))
    url = f"sqlite:///{tmp_path}/killed.db"
    log = tmp_path / "index.log"
    with open(log, "wb") as sink_out:
        proc = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "index", "--redis",
                                 redis_url, "--store", url, "--workers", "4", "--batch-size",
                                 "29"], stdout=sink_out, stderr=subprocess.STDOUT)
    try:
        queue = Queue("logpipe", connection=client)
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            for job_id in StartedJobRegistry(queue=queue).get_job_ids():
                job = queue.fetch_job(job_id)
                worker = job and job.worker_name and Worker.find_by_key(
                    Worker.redis_worker_namespace_prefix + job.worker_name, connection=client)
                if worker and worker.pid:
                    os.kill(worker.pid, signal.SIGKILL)
                    killed = worker.pid
                    break
            time.sleep(0.002)
        assert killed, "no job was seen running"
        keys = Keys()
        deadline = time.monotonic() + 300
        while not (client.llen(keys.raw) == 0 and client.zcard(keys.batches) == 0):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the pipeline did not drain"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "worker_died" in log.read_text()
    assert records_of(url) == reference


def test_elasticsearch_records_equal_the_embedded_ones(redis_url, es_url, es_client, corpus,
                                                       reference, tmp_path):
    client = connect(redis_url)
    client.rpush(Keys().raw, *shuffled_items(corpus, seed=11))
    out = logpipe("index", "--redis", redis_url, "--store", es_url, "--workers", "4", "--burst",
                  "--batch-size", "41")
    assert out.returncode == 0, out.stderr
    es_client.indices.refresh(index="logpipe-messages-*")
    names = set(es_client.indices.get(index="logpipe-messages-*"))
    assert names == {"logpipe-messages-2025.11", "logpipe-messages-2026.11"} or \
        all(n.startswith("logpipe-messages-20") for n in names)
    got = records_of(es_url)
    assert got == reference
    found = logpipe("messages", "--store", es_url, "--all", "--json",
                    "status:partial AND from:*@example.com AND delay_s:>3600")
    assert found.returncode == 0, found.stderr
    assert [orjson.loads(x)["qid"] for x in found.stdout.splitlines()] == ["4A1B2C3D4E"]
    # the fields only searched keep no doc values on the node: every kind of query on them
    # still finds what the embedded store finds
    embedded, node = open_store(f"sqlite:///{tmp_path}/reference.db"), open_store(es_url)
    try:
        for query in SEARCHED_ONLY_QUERIES:
            want = sorted(r["qid"] for r in embedded.stream_messages(query))
            assert want, f"{query!r} finds nothing: it checks nothing"
            assert sorted(r["qid"] for r in node.stream_messages(query)) == want, query
    finally:
        embedded.close()
        node.close()


SEARCHED_ONLY_QUERIES = [
    "qid:4A1B*", "size:[1000 TO *]", "delay_s:>3600", "lines:>=3", "_exists_:reason",
    "spam.score:>1", "client.ip:192.0.2.*", "_exists_:client.hostname", "msgid:*example*",
    "recipients.dsn:5.*", "recipients.relay:mx*", "recipients.delay:>10", "next.qid:*",
    "_exists_:next.host", "first_seen:[2013-01-01 TO 2030-01-01]", "NOT _exists_:from_raw",
]


# ------------------------------------------------------------------------ the report

def test_report_agrees_with_the_records(reference, tmp_path, redis_client, corpus):
    url = f"sqlite:///{tmp_path}/report.db"
    index_in_order(redis_client, corpus, url)
    out = logpipe("report", "--store", url, "--since", "3650d", "--json",
                  "--html", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    figures = orjson.loads(out.stdout)
    # computed again here, the plain way, from the records
    rcpts = [x for r in reference for x in r["recipients"]]
    assert figures["received"] == sum(r["qid"] != "NOQUEUE" and r["from"] is not None
                                      for r in reference)
    assert figures["noqueue_rejected"] == sum(r["qid"] == "NOQUEUE" for r in reference)
    for status in ("deferred", "bounced", "rejected", "expired"):
        assert figures[status] == sum(x["status"] == status for x in rcpts), status
    assert figures["delivered"] == sum(x["status"] == "sent" for x in rcpts)
    assert figures["bytes_received"] == sum(r["size"] or 0 for r in reference
                                            if r["qid"] != "NOQUEUE" and r["from"] is not None)
    assert figures["bytes_delivered"] == sum((r["size"] or 0) for r in reference
                                             for x in r["recipients"] if x["status"] == "sent")
    delays = sorted(r["delay_s"] for r in reference if r["status"] in ("delivered", "partial"))
    assert figures["delay_percentiles"]["p100"] == delays[-1]
    assert figures["delay_percentiles"]["p50"] == percentile(delays, 50)
    senders: dict = {}
    for r in reference:
        if r["qid"] != "NOQUEUE" and r["from"] is not None:
            senders[r["from"] or "<>"] = senders.get(r["from"] or "<>", 0) + 1
    top = max(senders.values())
    assert figures["top_senders"][0][1] == top
    assert sum(h["received"] for h in figures["per_hour"]) == figures["received"]
    for status in ("expired", "rejected", "bounced", "deferred"):  # gen-logs shows them all
        assert figures[status] > 0, status
    assert sum(h["delivered"] for h in figures["per_hour"]) == figures["delivered"]
    # the lines agree too: every "stat=Sent"/"status=sent" line is one delivered recipient
    # (sendmail may list several recipients on one line)
    sent_lines = sum(1 for r in corpus if "stat=Sent" in r.line or "status=sent" in r.line)
    assert figures["delivered"] >= sent_lines - 1  # frank's deferral then delivery is one
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Bounce reasons</h2>" in page and "<script" not in page
    assert summarise([]) ["received"] == 0


def test_line_search_matches_addresses_however_the_log_wrote_them(redis_client, tmp_path):
    url = f"sqlite:///{tmp_path}/lines.db"
    lines = ("May 15 02:00:04 relay sendmail[76036]: p4F210QG076036: to=<dave@example.org>, "
             "ctladdr=<ivan@gmail.com> (1000/1000), delay=00:00:49, xdelay=00:00:49, "
             "mailer=esmtp, pri=212623, relay=smtp.example.com. [203.0.113.2], dsn=2.0.0, "
             "stat=Sent (9C004AE545 Message accepted for delivery)\n"
             "Nov 28 10:00:03 mx postfix/smtp[126]: 3F2A41C0A: to=<dave@example.org>, "
             "relay=mx.example.org[192.0.2.8]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
             "status=sent (250 2.0.0 Ok: queued as 9ABCDEF12)")
    index_in_order(redis_client, lines_to_records(lines, "shipper-a", "/var/log/mail.log"), url)
    for query in ("to:dave@example.org", 'to:"<dave@example.org>"', "to:*@example.org"):
        out = logpipe("search", "--store", url, "--count", query)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "2", query


def test_recipient_search_plan_follows_how_common_the_address_is(tmp_path, monkeypatch):
    """A common address is checked per record while reading newest first; a rare one is read
    through the address index; both give the records the plain index plan gives, in order."""
    from logpipe.store.sqlite import SqliteStore
    from logpipe.store.sqlite import messages as sqlite_messages

    monkeypatch.setattr(sqlite_messages, "COMMON", 30)
    sink = SqliteStore(f"sqlite:///{tmp_path}/plan.db")
    sink.prepare()
    grouped = {}
    for i in range(400):
        qid = f"Q{i:08d}"
        to = "postmaster@example.org" if i % 100 == 7 else f"<U{i % 4}@Example.org>"
        grouped[f"mx/{qid}"] = ("mx", qid, {f"{qid}-1": {
            "t": 1_764_000_000_000 + (i * 7919 % 400) * 1000, "o": 1,
            "rcpt": [{"to": to, "status": "sent", "dsn": "2.0.0", "relay": "r", "delay": 1.0,
                      "reason": None}]}})
    sink.write_messages(grouped)
    plans = {}
    for address, expected in (("u1@example.org", 100), ("postmaster@example.org", 4)):
        query = f"recipients.to:{address}"
        where, params = sqlite_messages.compile_messages(query, None, None,
                                                         common=sink.messages._common_value)
        plans[address] = " ".join(str(row[-1]) for row in sink.messages._message_rows(
            f"EXPLAIN QUERY PLAN SELECT m.rowid FROM messages m WHERE {where} "
            f"ORDER BY m.first_ms DESC, m.rowid DESC LIMIT 20", params))
        got = [r["qid"] for r in sink.stream_messages(query, page_size=7)]
        plain, plain_params = sqlite_messages.compile_messages(query, None, None)
        want = [row[0] for row in sink.messages._message_rows(
            f"SELECT m.qid FROM messages m WHERE {plain} ORDER BY m.first_ms DESC, "
            f"m.rowid DESC", plain_params)]
        assert got == want and len(got) == expected, address
        assert sink.count_messages(query) == expected
    assert "messages_first" in plans["u1@example.org"]
    assert "message_rcpts_mid" in plans["u1@example.org"]
    assert "message_rcpts_addr" in plans["postmaster@example.org"]
    assert "messages_first" not in plans["postmaster@example.org"]
    sink.close()
