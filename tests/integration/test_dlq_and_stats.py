"""Dead-letter queue commands and pipeline figures, against Valkey and the Elasticsearch node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from logpipe.common.broker import Keys, connect
from tests.support.mail import FIX_PIPELINE, BAD_EVERY, TOO_DEEP, logpipe, mail_records

pytestmark = pytest.mark.integration

FIX = FIX_PIPELINE  # tests/support/mail.py: drops the field ES cannot take


@pytest.fixture
def indexed_with_dead_letters(redis_url, es_url, es_client):
    items, bad = mail_records(600)
    connect(redis_url).rpush(Keys().raw, *items)
    run = logpipe("index", "--redis", redis_url, "--store", es_url, "--workers", "1", "--burst")
    assert run.returncode == 0, run.stderr
    return items, bad


def test_list_show_replay_after_a_fix(indexed_with_dead_letters, redis_url, es_url, es_client,
                                      tmp_path):
    items, bad = indexed_with_dead_letters
    listed = logpipe("dlq", "list", "--redis", redis_url, "--json")
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {l["id"] for l in letters} == bad
    assert all(l["stage"] == "index" and "depth" in l["reason"] for l in letters)
    shown = logpipe("dlq", "show", letters[0]["entry"], "--redis", redis_url)
    assert json.loads(shown.stdout)["record"].count('"via"') == TOO_DEEP
    plain = logpipe("dlq", "list", "--redis", redis_url, "--stage", "index", "-n", "2")
    assert len(plain.stdout.splitlines()) == 2
    recent = logpipe("dlq", "list", "--redis", redis_url, "--since", "now-1h")
    assert len(recent.stdout.splitlines()) == len(bad)
    future = logpipe("dlq", "list", "--redis", redis_url, "--since", "now+1h")
    assert future.returncode == 0 and future.stdout == ""
    wrong = logpipe("dlq", "list", "--redis", redis_url, "--since", "yesterday-ish")
    assert wrong.returncode == 2 and "--since 'yesterday-ish'" in wrong.stderr
    bogus = logpipe("dlq", "list", "--redis", redis_url, "--stage", "nope")
    assert bogus.returncode != 0 and "stage must be one of" in bogus.stderr
    assert "Traceback" not in bogus.stderr

    # Without a fix, a replay changes nothing and says so.
    same = logpipe("dlq", "replay", "--redis", redis_url, "--store", es_url)
    assert f"replayed={len(bad)} indexed=0 duplicate=0 still_failing={len(bad)}" in same.stdout
    fix = tmp_path / "fix.toml"
    fix.write_text(FIX)
    fixed = logpipe("dlq", "replay", "--redis", redis_url, "--store", es_url, "--config", str(fix))
    assert fixed.returncode == 0, fixed.stderr
    assert f"replayed={len(bad)} indexed={len(bad)} duplicate=0 still_failing=0" in fixed.stdout
    es_client.indices.refresh(index="logstash-*")
    assert es_client.count(index="logstash-*")["count"] == len(items)
    qid = json.loads(letters[0]["record"])["line"].split(": ")[1]
    doc = es_client.search(index="logstash-*", q=f"qid:{qid}", size=1)["hits"]["hits"][0]["_source"]
    assert doc["stat"].startswith("Sent") and "trace" not in doc
    again = logpipe("dlq", "replay", "--redis", redis_url, "--store", es_url, "--config", str(fix))
    assert "replayed=0" in again.stdout


def test_purge_with_filters(indexed_with_dead_letters, redis_url):
    _, bad = indexed_with_dead_letters
    purged = logpipe("dlq", "purge", "--redis", redis_url, "--type", "mail", "-n", "3", "--yes")
    assert purged.stdout.strip() == "purged=3"
    left = logpipe("dlq", "list", "--redis", redis_url)
    assert len(left.stdout.splitlines()) == len(bad) - 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int, server: subprocess.Popen | None = None, timeout: float = 120) -> str:
    """The exporter's page, once the server answers (it starts in the background; on a loaded
    machine that can take a while, so the deadline only guards against a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                          timeout=30).read().decode()
        except OSError:
            if server is not None and server.poll() is not None:
                raise AssertionError(f"the metrics server exited with {server.returncode}")
            time.sleep(0.1)
    raise AssertionError(f"no metrics served on port {port}")


def test_stats_and_prometheus_metrics(indexed_with_dead_letters, redis_url):
    items, bad = indexed_with_dead_letters
    connect(redis_url).rpush(Keys().raw, b"Nov 28 10:00:00 mx1 late line waiting")
    stats = logpipe("stats", "--redis", redis_url, "--json")
    figures = json.loads(stats.stdout)
    assert figures["raw_list"] == 1
    assert figures["totals"]["indexed"] == len(items) - len(bad)
    assert figures["totals"]["dead_lettered"] == len(bad) == len(range(5, 600, BAD_EVERY))
    assert figures["dead_letters"] == {"decode": 0, "parse": 0, "index": len(bad)}
    assert figures["lag_seconds"] >= 0
    table = logpipe("stats", "--redis", redis_url)
    assert "raw list\t1" in table.stdout

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "stats", "--redis", redis_url,
                               "--metrics-port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        body = scrape(port, server)
        assert "logpipe_raw_list_length 1.0" in body
        assert f'logpipe_dead_letters{{stage="index"}} {float(len(bad))}' in body
        assert f'logpipe_records_total{{outcome="indexed"}} {float(len(items) - len(bad))}' in body
    finally:
        server.terminate()
        server.wait(10)


def test_running_shippers_show_in_stats_and_metrics(redis_url, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"Nov 28 10:00:{i:02d} web1 app[1]: line {i}\n" for i in range(40)))
    shipper = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "ship", "--redis", redis_url,
                                "--host", "web1", "--registry", str(tmp_path / "reg.json"),
                                str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing check
        mine = []
        while time.monotonic() < deadline and not mine:
            figures = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)
            mine = [s for s in figures["shippers"] if s["host"] == "web1" and s["lines"] == 40]
            time.sleep(0.1)
        assert mine, figures["shippers"]
        assert mine[0]["lag_bytes"] == 0
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "stats", "--redis",
                                   redis_url, "--metrics-port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            body = scrape(port, server)
            line = next(l for l in body.splitlines() if l.startswith("logpipe_shipper_lines_total"))
            assert 'host="web1"' in line and line.endswith(" 40.0")
        finally:
            server.terminate()
            server.wait(10)
    finally:
        shipper.terminate()
        shipper.wait(10)


def test_stats_with_a_prefix_sees_a_shipper_started_with_that_prefix(redis_url, tmp_path):
    """``logpipe ship --prefix X`` publishes its figures under X's keys, where ``logpipe stats
    --prefix X`` reads them (the shipper once wrote under the default prefix whatever it was
    given, so stats with a prefix never saw any shipper)."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"Nov 28 10:00:{i:02d} web2 app[1]: line {i}\n" for i in range(25)))
    shipper = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "ship", "--redis", redis_url,
                                "--prefix", "team7", "--host", "web2", "--registry",
                                str(tmp_path / "reg.json"), str(log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        mine = []
        while time.monotonic() < deadline and not mine:
            run = logpipe("stats", "--redis", redis_url, "--prefix", "team7", "--json")
            assert run.returncode == 0, run.stderr
            mine = [s for s in json.loads(run.stdout)["shippers"]
                    if s["host"] == "web2" and s["lines"] == 25]
            time.sleep(0.5)
        assert mine, "logpipe stats --prefix team7 never saw the shipper started with it"
        assert connect(redis_url).hlen(Keys(prefix="team7").shippers) >= 1
        default = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)
        assert not [s for s in default["shippers"] if s["host"] == "web2"]
    finally:
        shipper.terminate()
        shipper.wait(10)
