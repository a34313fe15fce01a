"""A burst into Elasticsearch loads with a 30 s refresh interval and ends searchable (issue 27).

Real node: the store's bulk_load sets the interval on the event, message-record and held-part
indices, writes made meanwhile wait for a refresh, and ending it puts 1 s back and makes every
write searchable at once; ``logpipe index --burst`` ends that way.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from logpipe.common.broker import connect
from logpipe.common.record import Record
from logpipe.indexer.messages import keep
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline
from logpipe.store import open_store

pytestmark = pytest.mark.integration

LINES = [
    "Nov 28 09:00:01 mx sendmail[31539]: p4F220oB031539: from=<a@example.com>, size=12, class=0, "
    "nrcpts=1, msgid=<m1@example.com>, proto=ESMTP, daemon=MTA, relay=mx1.example.org [192.0.2.1]",
    "Nov 28 09:00:02 mx sendmail[31540]: p4F220oB031539: to=<b@example.org>, delay=00:00:01, "
    "xdelay=00:00:01, mailer=esmtp, pri=120, relay=mx.example.org. [192.0.2.2], dsn=2.0.0, "
    "stat=Sent (ok)",
    "Nov 28 09:00:03 mx dovecot: lmtp(b@example.org)<12346><BcDeFg>: msgid=<m1@example.com>: "
    "saved mail to INBOX",
]


def _events(start: int, n: int):
    pipeline = Pipeline(load_pipeline(None))
    return [pipeline.process(Record(id=f"bulk-load:{i}", line=LINES[i % len(LINES)], host="mx",
                                    path="/var/log/maillog", type="mail",
                                    received_at=1764288000.0, offset=i))
            for i in range(start, start + n)]


def _intervals(es_client, pattern: str) -> set[str]:
    found = es_client.indices.get_settings(index=pattern, name="index.refresh_interval",
                                           include_defaults=True)
    return {(s.get("settings") or s["defaults"])["index"]["refresh_interval"]
            for s in found.values()}


def test_a_bulk_load_refreshes_late_and_ends_searchable(es_url, es_client):
    sink = open_store(es_url)
    sink.prepare()
    first = _events(0, 3)
    assert all(o.status.value == "indexed" for o in sink.write(first))
    keep(sink, first)  # the month's record index and the held-parts index exist now
    assert es_client.indices.exists(index="logpipe-held-parts")
    sink.bulk_load(True)
    for pattern in ("logstash-*", "logpipe-messages-*", "logpipe-held-parts"):
        assert _intervals(es_client, pattern) == {"30s"}, pattern
    sink.refresh()
    more = _events(3, 20)
    sink.write(more)
    # written after the last refresh, with the next one 30 s away: not searchable yet
    assert es_client.count(index="logstash-*")["count"] == 3
    sink.bulk_load(False)
    for pattern in ("logstash-*", "logpipe-messages-*", "logpipe-held-parts"):
        assert _intervals(es_client, pattern) == {"1s"}, pattern
    assert es_client.count(index="logstash-*")["count"] == 23
    sink.close()


def test_a_burst_ends_with_its_indices_back_at_one_second_and_searchable(
        redis_url, es_url, es_client, tmp_path):
    log = tmp_path / "maillog"
    log.write_text("\n".join(LINES * 40) + "\n")
    cli = [sys.executable, "-m", "logpipe.common.cli"]
    shipped = subprocess.run([*cli, "ship", "--redis", redis_url, "--type", "mail", "--once",
                              str(log)], capture_output=True, text=True, timeout=300)
    assert shipped.returncode == 0, shipped.stderr
    indexed = subprocess.run([*cli, "index", "--redis", redis_url, "--store", es_url, "--burst",
                              "--workers", "2", "--batch-size", "30"],
                             capture_output=True, text=True, timeout=300)
    assert indexed.returncode == 0, indexed.stderr
    assert "bulk_load_refused" not in indexed.stdout + indexed.stderr
    # no refresh here: the burst's end made everything searchable
    assert es_client.count(index="logstash-*")["count"] == 120
    for pattern in ("logstash-*", "logpipe-messages-*", "logpipe-held-parts"):
        assert _intervals(es_client, pattern) == {"1s"}, pattern
    assert connect(redis_url).llen("logpipe:raw") == 0
