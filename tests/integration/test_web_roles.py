"""Roles and health over the real broker (Valkey) and the real stores: an operator replays a dead
letter a viewer may not; the health page's broker memory, last-hour history and store size are
the broker's and the store's own figures; and the same in Debian's chromium (Playwright,
executable_path): a viewer signed in by a one-time link sees no replay button, an operator
replays, the admin's Audit view shows both; the browser tests run on each store in turn."""

from __future__ import annotations

import os
import re
import shutil
import time
import warnings

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record, encode
from logpipe.indexer import stats
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.search.web.accounts import AccountStore
from logpipe.search.web.app import create_app
from logpipe.search.web.audit import AuditLog
from logpipe.search.web.data import Data
from logpipe.store.sqlite import SqliteStore
from tests.support.web import mail_events, start_ui, stop_ui

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "roles-integration-token-0123456789"
ORIGIN = {"Origin": "http://testserver"}
CHROMIUM = os.environ.get("LOGPIPE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def events():
    return mail_events(40)


@pytest.fixture
def sqlite_url(events, tmp_path):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    assert all(o.done for o in sink.write(events))
    sink.close()
    return url


def _letter(redis_url) -> DeadLetterQueue:
    dlq = DeadLetterQueue(connect(redis_url), Keys())
    good = Record(id="good-1", line="May 15 02:00:03 relay sendmail[1]: p4F210QG076036: "
                  "from=<ivan75@gmail.com>, size=124472, class=0, nrcpts=1, msgid=<a@b>, "
                  "proto=ESMTP, daemon=MTA, relay=aspmx.l.google.com [173.103.200.78]",
                  host="relay", path="/var/log/maillog", offset=1, type="mail",
                  received_at=time.time())
    dlq.add(encode(good), "good-1", "index", "mapper_parsing_exception: relayip")
    return dlq


def _signed_in(app, accounts: AccountStore, name: str, role: str) -> TestClient:
    token = accounts.add(name, role)
    client = TestClient(app)
    r = client.post("/signin", data={"link": token}, headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303
    return client


def _csrf(client) -> str:
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', client.get("/dlq").text).group(1)


def test_an_operator_replays_a_dead_letter_a_viewer_may_not(sqlite_url, redis_url, tmp_path):
    dlq = _letter(redis_url)
    accounts = AccountStore(tmp_path / "state" / "accounts.db")
    audit = AuditLog(tmp_path / "state" / "audit.log")
    app = create_app(Data(sqlite_url, redis_url), TOKEN, accounts_store=accounts,
                     audit_log=audit)
    body = {"filter": {"stage": "index"}}
    viewer = _signed_in(app, accounts, "vic", "viewer")   # no lifespan: the app stays open
    if True:
        page = viewer.get("/dlq").text
        assert "mapper_parsing_exception" in page and 'id="replay-all"' not in page
        assert "replay-one" not in page
        r = viewer.post("/api/dlq/replay", json=body, headers={"X-CSRF-Token": _csrf(viewer),
                                                               **ORIGIN})
        assert r.status_code == 403 and "operator" in r.json()["error"]
        r = viewer.post("/api/dlq/purge", json={**body, "confirm": "1"},
                        headers={"X-CSRF-Token": _csrf(viewer), **ORIGIN})
        assert r.status_code == 403
        assert len(dlq) == 1
    with _signed_in(app, accounts, "ola", "operator") as operator:
        assert 'id="replay-all"' in operator.get("/dlq").text
        r = operator.post("/api/dlq/replay", json=body,
                          headers={"X-CSRF-Token": _csrf(operator), **ORIGIN})
        assert r.status_code == 200 and r.json()["replayed"] == 1, r.text
        assert len(dlq) == 0
        found = operator.get("/api/search?q=qid:p4F210QG076036").json()
        assert found.get("total") == 1, found
    entries = [(e["who"], e["action"], e["ok"]) for e in audit.entries()]
    assert ("vic", "replay", False) in entries and ("vic", "purge", False) in entries
    replay = next(e for e in audit.entries() if e["who"] == "ola" and e["action"] == "replay")
    assert replay["ok"] and replay["what"]["answer"]["replayed"] == 1
    assert replay["what"]["request"] == {"filter": {"stage": "index"}}
    accounts.close()


# ------------------------------------------------------------------ health

@pytest.fixture(params=["sqlite", "elasticsearch"])
def any_store(request, events, tmp_path):
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    from tests.fixtures.elasticsearch import es_loaded
    with es_loaded(request.getfixturevalue("es_url"), events) as url:
        yield url


def _truth(store_url: str) -> tuple[int, int]:
    """(events, bytes) as the store itself says, asked directly."""
    if store_url.startswith("sqlite:"):
        import sqlite3
        path = store_url[len("sqlite:///"):]
        conn = sqlite3.connect(path)
        n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
        size = sum(os.path.getsize(path + s) for s in ("", "-wal", "-shm")
                   if os.path.exists(path + s))
        return n, size
    from elasticsearch import Elasticsearch
    es = Elasticsearch(store_url)
    rows = es.cat.indices(index="logstash-*", format="json", bytes="b")
    es.close()
    return (sum(int(r["docs.count"]) for r in rows), sum(int(r["store.size"]) for r in rows))


def test_health_shows_broker_memory_history_and_store_size(any_store, redis_url, events):
    client = connect(redis_url)
    keys = Keys()
    now = time.time()
    for back in (3, 2, 1):
        stats.record_in(client, keys, 60 * back, now=now - back * 60)
    client.rpush(keys.raw, *[b'{"line": "waiting"}'] * 5)
    with TestClient(create_app(Data(any_store, redis_url), TOKEN)) as web:
        web.get(f"/?token={TOKEN}")
        html = web.get("/health").text
    info = client.info("memory")
    used = int(re.search(r'id="memory-used" data-bytes="(\d+)"', html).group(1))
    assert abs(used - info["used_memory"]) < 4 * 1024 * 1024        # the broker's own figure
    assert re.search(r'id="memory-max" data-bytes="(\d+)"', html).group(1) == \
        str(info["maxmemory"])
    n, size = _truth(any_store)
    assert n == len(events)
    assert re.search(r'id="store-events">([\d,]+)<', html).group(1).replace(",", "") == str(n)
    shown = int(re.search(r'id="store-bytes" data-bytes="(\d+)"', html).group(1))
    assert shown > 0 and abs(shown - size) <= max(64 * 1024, size // 10)
    spark_in = re.search(r'id="spark-in_per_s" data-samples="(\d+)" data-peak="([\d.]+)"', html)
    assert spark_in.group(1) == "60" and float(spark_in.group(2)) == 3.0   # 180 in a minute
    depth = re.search(r'id="spark-depth" data-samples="(\d+)".*?class="last">(\d+)<', html, re.S)
    assert depth.group(1) == "1" and depth.group(2) == "5"
    assert client.get(keys.depth(int(time.time()) // 60)) == b"5"
    client.close()


# ------------------------------------------------------------------ the browser

@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./run tests` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.mark.slow
def test_browser_viewer_and_operator_by_one_time_links_and_the_audit(any_store, redis_url,
                                                                     tmp_path, browser, events):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    dlq = _letter(redis_url)
    accounts = AccountStore(home / "accounts.db")
    viewer_link, operator_link = accounts.add("vic", "viewer"), accounts.add("ola", "operator")
    accounts.close()
    proc, address = start_ui("--store", any_store,
                             env={"LOGPIPE_HOME": str(home), "LOGPIPE_REDIS_URL": redis_url})
    base = address.split("/?")[0]
    errors: list[str] = []
    try:
        for name, link in (("vic", viewer_link), ("ola", operator_link)):
            context = browser.new_context()
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: d.accept())
            page.goto(f"{base}/signin?link={link}")
            page.click("#signin-button")
            page.wait_for_load_state()
            assert page.url == f"{base}/account", page.content()[:1500]
            assert name in page.inner_text("#whoami")
            page.goto(f"{base}/dlq")
            assert "mapper_parsing_exception" in page.inner_text("#letters")
            if name == "vic":
                page.goto(f"{base}/?q=*")                    # a viewer searches the store
                shown = page.locator("#total b").inner_text().replace(",", "")
                assert shown == str(len(events))
                page.goto(f"{base}/dlq")
                assert page.locator("button.replay-one").count() == 0
                assert page.locator("#replay-all").count() == 0
                assert page.locator("#nav-audit").count() == 0
            else:
                page.click("button.replay-one")
                page.click("#confirm-go")
                page.locator("#dlq-result", has_text="replayed=1").wait_for()
                assert len(dlq) == 0
            context.close()
            # the link worked once
            again = browser.new_context()
            p2 = again.new_page()
            p2.goto(f"{base}/signin?link={link}")
            p2.click("#signin-button")
            assert "already used" in p2.inner_text("#signin-error")
            again.close()
        context = browser.new_context()
        page = context.new_page()
        page.goto(address)
        page.click("#nav-audit")
        rows = page.inner_text("#audit")
        assert re.search(r"ola\s+operator\s+\S+\s+replay", rows)
        assert re.search(r"vic\s+viewer\s+\S+\s+sign_in", rows)
        assert rows.count("this sign-in link was already used") == 2      # the second tries
        assert viewer_link not in rows and operator_link not in rows
        assert page.locator("#accounts tr[data-account]").count() == 2
        context.close()
    finally:
        stop_ui(proc)
    assert not errors, errors


@pytest.mark.slow
def test_browser_health_page_on_both_stores(any_store, redis_url, browser, tmp_path, events):
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    client = connect(redis_url)
    stats.record_in(client, Keys(), 120)
    client.close()
    proc, address = start_ui("--store", any_store,
                             env={"LOGPIPE_HOME": str(home), "LOGPIPE_REDIS_URL": redis_url})
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(address)
        page.goto(address.split("/?")[0] + "/health")
        assert page.inner_text("#store-events").replace(",", "") == str(len(events))
        assert page.locator("#memory-used").inner_text().endswith("B")
        assert page.locator("#spark-in_per_s polyline").count() == 1
        assert page.locator("#spark-in_per_s").get_attribute("data-samples") == "60"
        context.close()
    finally:
        stop_ui(proc)
