"""What monitoring shows about shippers and workers is true (issue 20 items 5 and 8, issue 21
item 4), against a real Valkey: entries in the shippers' hash that are not a shipper's figures
are listed as invalid and counted by ``logpipe stats`` (text and JSON), the Prometheus exporter
and the web page's /health, never crashing them; a finished ``ship --once`` is "finished", not
"silent"; shippers are named by host and inputs; ``stats --forget`` needs the indexer's user;
only live RQ workers are counted."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from urllib.parse import urlsplit

import orjson
import pytest

from logpipe.common.broker import Keys
from logpipe.common.private import write_private
from logpipe.indexer import stats
from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from logpipe.shipper.config import InputSpec
from logpipe.shipper.status import shipper_name
from logpipe.store.sqlite import SqliteStore
from tests.fixtures.secrets import register_secret
from tests.support.mail import logpipe

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration
TOKEN = "test-token-status-0123456789"
HUGE_NAME = b"h" * 5000

# name -> what a broken or hostile shipper host could write (the shipper user may HSET here)
MALFORMED = {
    b"evil": b'{"updated":"yesterday"}',
    b"not-json": b"this is not json {",
    b"wrong-types": orjson.dumps({"updated": time.time(), "lines": "many", "host": "x"}),
    b"array": b"[1, 2, 3]",
    b"bad-state": orjson.dumps({"updated": time.time(), "state": "<script>x</script>"}),
    b"huge": orjson.dumps({"updated": time.time(), "host": "x" * 200_000}),
    b"negative": b'{"updated": -5, "lines": 1}',
    HUGE_NAME: orjson.dumps({"updated": time.time()}),
}


def _fill(client, now: float) -> None:
    client.hset(Keys().shippers, mapping={
        **MALFORMED,
        b"mail1: /var/log/maillog": orjson.dumps({"host": "mail1", "updated": now, "lines": 7,
                                                  "bytes": 700, "lines_per_s": 1.5,
                                                  "lag_bytes": 0, "state": "running"}),
        b"web1: /var/log/apache2/access.log": orjson.dumps(
            {"host": "web1", "updated": now - 900, "lines": 3, "state": "running"}),
        b"batch1: /srv/old.log": orjson.dumps(
            {"host": "batch1", "updated": now - 900, "lines": 40, "state": "finished"}),
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int, server: subprocess.Popen) -> str:
    deadline = time.monotonic() + 120  # a hang guard: the exporter answers once it is up
    while time.monotonic() < deadline:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                          timeout=30).read().decode()
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"the metrics server exited with {server.returncode}: "
                                     f"{server.stderr.read()[-2000:]}")
            time.sleep(0.1)
    raise AssertionError("no metrics served")


# ------------------------------------------------------------------ malformed entries

def test_malformed_entries_are_listed_as_invalid_by_stats(redis_url, redis_client):
    _fill(redis_client, time.time())
    run = logpipe("stats", "--redis", redis_url, "--json")
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    names = {s["name"]: s for s in figures["shippers"]}
    assert set(names) == {"mail1: /var/log/maillog", "web1: /var/log/apache2/access.log",
                          "batch1: /srv/old.log"}
    assert names["mail1: /var/log/maillog"]["lines"] == 7
    invalid = {s["name"]: s["reason"] for s in figures["shippers_invalid"]}
    assert len(invalid) == len(MALFORMED) == 8
    assert "'updated' must be seconds since the epoch" in invalid["evil"]
    assert invalid["not-json"] == "not JSON"
    assert "'lines' must be a count" in invalid["wrong-types"]
    assert "not an object" in invalid["array"]
    assert "'state' must be one of" in invalid["bad-state"]
    assert "more than 4096" in invalid["huge"]
    assert "'updated'" in invalid["negative"]
    long_name = next(n for n in invalid if n.startswith("hhhh"))
    assert len(long_name) < 120 and "(5000 bytes)" in long_name
    # no figure of an invalid entry leaks into the output
    assert "x" * 300 not in run.stdout and "<script>" not in run.stdout

    text = logpipe("stats", "--redis", redis_url)
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
    rows = dict(line.split("\t", 1) for line in text.stdout.splitlines())
    assert rows["shipper evil"].startswith("INVALID entry: 'updated' must be seconds")
    assert "--forget" in rows["shipper evil"]
    assert rows["shipper mail1: /var/log/maillog"] == "7 lines, 1.5/s, lag 0 bytes"
    # (the reports were written 900 s before "now": the ages read 900 s or a little more)
    assert re.fullmatch(r"3 lines, 0/s, lag 0 bytes, SILENT for 9\d\d s",
                        rows["shipper web1: /var/log/apache2/access.log"])
    assert re.fullmatch(r"40 lines, finished 9\d\d s ago", rows["shipper batch1: /srv/old.log"])


def test_the_exporter_counts_invalid_entries_and_serves_the_rest(redis_url, redis_client):
    _fill(redis_client, time.time())
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "stats", "--redis",
                               redis_url, "--metrics-port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        body = scrape(port, server)
    finally:
        server.terminate()
        server.wait(10)
    assert "logpipe_shipper_invalid_entries 8.0" in body
    lines = [x for x in body.splitlines() if x.startswith("logpipe_shipper_lines_total")]
    assert len(lines) == 3
    assert 'logpipe_shipper_lines_total{host="mail1",shipper="mail1: /var/log/maillog"} 7.0' \
        in lines
    assert 'logpipe_shipper_running{host="batch1",shipper="batch1: /srv/old.log"} 0.0' in body
    assert "evil" not in body and "Traceback" not in (server.stderr.read() or "")


def test_health_page_shows_invalid_entries_and_still_answers_200(redis_url, redis_client,
                                                               tmp_path):
    _fill(redis_client, time.time())
    redis_client.hset(Keys().shippers, "<b>bold</b>", b'{"updated": "<i>x</i>"}')
    store = "sqlite:///" + str(tmp_path / "events.db")
    SqliteStore(store).close()
    with TestClient(create_app(Data(store, redis_url), TOKEN)) as web:
        r = web.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text[-2000:]
    rows = re.findall(r'<tr class="([a-z]*)"><td>([^<]+)</td>', r.text)
    assert ("invalid", "evil") in rows and ("invalid", "not-json") in rows
    assert ("invalid", "&lt;b&gt;bold&lt;/b&gt;") in rows and "<b>bold" not in r.text
    assert sum(1 for cls, _ in rows if cls == "invalid") == 9
    assert ("", "mail1: /var/log/maillog") in rows
    assert ("silent", "web1: /var/log/apache2/access.log") in rows
    assert ("finished", "batch1: /srv/old.log") in rows


# ------------------------------------------------------------------ finished, naming

def test_a_finished_once_run_is_finished_not_silent_and_named_by_host_and_inputs(
        redis_url, redis_client, tmp_path):
    log = tmp_path / "maillog"
    log.write_text("".join(f"Nov 28 10:00:{i:02d} mail1 app[1]: line {i}\n" for i in range(12)))
    run = logpipe("ship", "--redis", redis_url, "--once", "--host", "mail1", "--registry",
                  str(tmp_path / "state" / "reg.json"), str(log))
    assert run.returncode == 0, run.stderr
    figures = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)
    (mine,) = figures["shippers"]
    assert mine["name"] == f"mail1: {log}" and "reg.json" not in mine["name"]
    assert mine["state"] == "finished" and mine["silent"] is False and mine["lines"] == 12
    # ...and stays "finished", not "silent", long after it ended (its report aged by hand)
    blob = orjson.loads(redis_client.hget(Keys().shippers, mine["name"]))
    redis_client.hset(Keys().shippers, mine["name"],
                      orjson.dumps({**blob, "updated": blob["updated"] - 3600}))
    (aged,) = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)["shippers"]
    assert aged["state"] == "finished" and aged["silent"] is False and aged["age_s"] >= 3600


def test_a_stopped_agent_says_stopped(redis_url, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\n")
    agent = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "ship", "--redis",
                              redis_url, "--host", "web9", "--registry", str(tmp_path / "r.json"),
                              str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 120  # a hang guard: wait for its first report
        mine: list = []
        while time.monotonic() < deadline and not mine:
            figures = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)
            mine = [s for s in figures["shippers"] if s["lines"] == 2]
            time.sleep(0.1)
        assert mine and mine[0]["state"] == "running", figures
    finally:
        agent.terminate()
        agent.wait(30)
    (after,) = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)["shippers"]
    assert after["name"] == f"web9: {log}" and after["state"] == "stopped"
    assert not after["silent"]


def test_names_list_host_and_inputs():
    specs = [InputSpec(input="file", paths=["/var/log/maillog"]),
             InputSpec(input="syslog", listen=["udp://:5514"])]
    assert shipper_name("mail1", specs) == "mail1: /var/log/maillog, syslog udp://:5514"
    many = [InputSpec(input="file", paths=[f"/var/log/app/service-{i}.log" for i in range(40)])]
    other = [InputSpec(input="file", paths=[f"/var/log/app/service-{i}.log" for i in range(41)])]
    long_a, long_b = shipper_name("web1", many), shipper_name("web1", other)
    assert len(long_a.encode()) <= 160 and long_a.startswith("web1: /var/log/app/service-0.log")
    assert long_a != long_b  # cut names stay distinct
    assert len(long_a.encode()) <= stats.MAX_NAME_BYTES


# ------------------------------------------------------------------ --forget

@pytest.fixture
def acl_urls(redis_url, tmp_path):
    admin_file = write_private(tmp_path / "admin.url", redis_url)
    out = tmp_path / "creds"
    setup = logpipe("acl", "setup", "--redis", str(admin_file), "--dir", str(out))
    assert setup.returncode == 0, setup.stderr
    for role in ("shipper", "indexer"):
        register_secret(urlsplit((out / f"{role}.url").read_text().strip()).password)
    return out / "shipper.url", out / "indexer.url"


def test_forget_removes_one_entry_with_the_indexers_rights_only(redis_url, redis_client,
                                                               acl_urls):
    shipper_file, indexer_file = acl_urls
    _fill(redis_client, time.time())
    refused = logpipe("stats", "--redis", str(shipper_file), "--forget", "evil")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "indexer.url" in refused.stderr and redis_client.hexists(Keys().shippers, "evil")

    gone = logpipe("stats", "--redis", str(indexer_file), "--forget", "evil")
    assert gone.returncode == 0, gone.stderr
    assert not redis_client.hexists(Keys().shippers, "evil")
    assert redis_client.hlen(Keys().shippers) == len(MALFORMED) + 3 - 1
    # a name too long to show is forgotten by the name stats shows for it
    shown = next(s["name"] for s in json.loads(logpipe(
        "stats", "--redis", str(indexer_file), "--json").stdout)["shippers_invalid"]
        if s["name"].startswith("hhhh"))
    assert logpipe("stats", "--redis", str(indexer_file), "--forget", shown).returncode == 0
    assert not redis_client.hexists(Keys().shippers, HUGE_NAME)

    unknown = logpipe("stats", "--redis", str(indexer_file), "--forget", "nobody: /x")
    assert unknown.returncode == 1 and "no shipper named 'nobody: /x'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


# ------------------------------------------------------------------ workers

def test_stats_counts_only_live_workers(redis_url, redis_client):
    from rq import Queue, SimpleWorker

    queue = Queue(Keys().queue, connection=redis_client)
    alive = SimpleWorker([queue], connection=redis_client, name="alive")
    alive.register_birth()
    # one killed on this host (its process is gone), one whose heartbeat stopped elsewhere
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    killed = SimpleWorker([queue], connection=redis_client, name="killed")
    killed.register_birth()
    redis_client.hset(killed.key, "pid", dead)
    quiet = SimpleWorker([queue], connection=redis_client, name="quiet")
    quiet.register_birth()
    redis_client.hset(quiet.key, mapping={"hostname": "elsewhere",
                                          "last_heartbeat": "2020-01-01T00:00:00.000000Z"})
    assert len(SimpleWorker.all(queue=queue)) == 3  # what stats counted before
    figures = json.loads(logpipe("stats", "--redis", redis_url, "--json").stdout)
    assert figures["workers"] == 1 and figures["workers_stale"] == 2
