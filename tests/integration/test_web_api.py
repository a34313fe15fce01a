"""``logpipe ui``'s pages and JSON API against the real stores (the embedded store always, the
Elasticsearch node for the same-as-the-CLI check) and a real Valkey for dead letters and health."""

from __future__ import annotations

import os
import re
import time
import warnings

import orjson
import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.cli import main as cli_main
from logpipe.common.record import Record, encode
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore
from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from tests.support.web import HOSTILE, mail_events, start_ui, stop_ui

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "test-token-0123456789abcdef"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def events():
    return mail_events(400, hostile=True)


@pytest.fixture(scope="module")
def sqlite_url(events, tmp_path_factory):
    url = "sqlite:///" + str(tmp_path_factory.mktemp("web") / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    assert all(o.done for o in sink.write(events))
    sink.close()
    return url


def client_for(store_url: str, redis_url: str | None = None, login: bool = True) -> TestClient:
    client = TestClient(create_app(Data(store_url, redis_url), TOKEN))
    if login:
        r = client.get(f"/?token={TOKEN}", follow_redirects=False)
        assert r.status_code == 303 and "logpipe_ui=" in r.headers["set-cookie"]
    return client


@pytest.fixture
def web(sqlite_url):
    with client_for(sqlite_url) as client:
        yield client


def _delete(url: str, *ids: str) -> None:
    """Take test events out of the shared module store again (their full-text rows stay, and
    match nothing without the row)."""
    import sqlite3
    conn = sqlite3.connect(url[len("sqlite:///"):])
    conn.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
    conn.commit()
    conn.close()


def csrf_of(client: TestClient) -> str:
    html = client.get("/").text
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', html).group(1)


# ------------------------------------------------------------------ access

@pytest.mark.parametrize("path", ["/", "/trace/x", "/dlq", "/health", "/api/search?q=*",
                                  "/api/histogram", "/api/top?field=host", "/api/trace/x",
                                  "/api/tail", "/static/app.js"])
def test_no_token_no_data(sqlite_url, path):
    client = client_for(sqlite_url, login=False)
    r = client.get(path)
    assert r.status_code == 401
    assert "sendmail" not in r.text and "mail1" not in r.text
    wrong = client.get(path, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    client.cookies.set("logpipe_ui", "0" * 64)
    assert client.get(path).status_code == 401


def test_token_in_the_address_becomes_a_cookie_and_leaves_the_address(sqlite_url):
    client = client_for(sqlite_url, login=False)
    r = client.get(f"/?q=program:sendmail&token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/?q=program%3Asendmail"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert client.get("/").status_code == 200


def test_bearer_token_works_for_the_api(sqlite_url):
    client = client_for(sqlite_url, login=False)
    r = client.get("/api/search?q=*&size=1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["total"] == 401


def test_every_response_carries_a_strict_csp(web):
    for path in ("/", "/api/search", "/static/app.css", "/trace/none"):
        csp = web.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_pages_have_no_inline_script(web, events):
    qid = next(e.doc["qid"] for e in events if e.doc.get("stat", "").startswith("Sent"))
    for path in ("/", f"/trace/{qid}", "/health", "/dlq"):
        html = web.get(path).text
        for tag in re.findall(r"<script[^>]*>", html):
            assert 'src="/static/' in tag, tag
        assert all(not body.strip() for body in
                   re.findall(r"<script[^>]*>(.*?)</script>", html, re.S)), path
        assert not re.search(r"<[^>]+\son\w+=", html), path  # no inline event handlers


# ------------------------------------------------------------------ search

def test_search_api_newest_first_with_fields(web, events):
    r = web.get("/api/search?q=program:sendmail&size=5")
    assert r.status_code == 200
    body = r.json()
    # newest first; events of one millisecond in the store's tiebreak (the order written)
    expected = [e for _, e in sorted(((n, e) for n, e in enumerate(events)
                                      if e.doc.get("program") == "sendmail"),
                                     key=lambda p: (p[1].doc["@timestamp"], p[0]), reverse=True)]
    assert body["total"] == len(expected)
    assert [h["id"] for h in body["hits"]] == [e.id for e in expected[:5]]
    first = body["hits"][0]
    assert list(first)[:2] == ["id", "@timestamp"] and "message" in first and "qid" in first
    assert body["next"]


def test_keyset_paging_walks_everything_once(web, events):
    seen, after, pages = [], None, 0
    while True:
        url = "/api/search?q=*&size=37" + (f"&after={after}" if after else "")
        body = web.get(url).json()
        seen += [h["id"] for h in body["hits"]]
        pages += 1
        after = body["next"]
        if not after:
            break
    assert pages == -(-len(events) // 37)
    assert len(seen) == len(set(seen)) == len(events)


def test_keyset_paging_through_one_millisecond(tmp_path):
    """Many events with the same @timestamp: no page boundary loses or repeats one."""
    url = "sqlite:///" + str(tmp_path / "same.db")
    sink = SqliteStore(url)
    sink.prepare()
    sink.write([Event(f"e{i:03d}", {"@timestamp": "2026-11-28T10:00:00.000Z", "host": "h",
                                    "message": f"line {i}"}) for i in range(50)])
    sink.close()
    with client_for(url) as client:
        got, after = [], ""
        while True:
            body = client.get(f"/api/search?size=7&after={after}").json()
            got += [h["id"] for h in body["hits"]]
            after = body["next"]
            if not after:
                break
    assert sorted(got) == [f"e{i:03d}" for i in range(50)]


def test_bad_query_is_a_clear_error(web):
    r = web.get("/api/search?q=program:(sendmail")
    assert r.status_code == 400
    assert "error" in r.json() and "^" in r.json()["error"]
    page = web.get("/?q=program:(sendmail")
    assert page.status_code == 400
    assert 'id="query-error"' in page.text
    assert web.get("/api/search?after=!!notacursor").status_code == 400
    bad_window = web.get("/api/search?from=2013-05-16&to=2013-05-15")
    assert bad_window.status_code == 400 and "is not before" in bad_window.json()["error"]
    assert web.get("/api/histogram?from=yesterday-ish").status_code == 400


def test_histogram_has_about_a_hundred_buckets_over_the_window(web):
    body = web.get("/api/histogram?q=*&from=2013-05-15T02:00:00Z&to=2013-05-15T04:00:00Z")
    b = body.json()
    assert b["interval"] == "2m"
    assert len(b["buckets"]) == 60
    assert sum(x["count"] for x in b["buckets"]) == 401
    page = web.get("/?from=2013-05-15T02:00:00Z&to=2013-05-15T04:00:00Z").text
    assert page.count('<rect class="bar') == 60


def test_top_values_count_the_whole_result_and_build_filters(web, events):
    body = web.get("/api/top?q=*&field=program&size=3").json()
    counts = {}
    for e in events:
        counts[e.doc.get("program")] = counts.get(e.doc.get("program"), 0) + 1
    top = sorted(((v, n) for v, n in counts.items() if v), key=lambda x: (-x[1], x[0]))[:3]
    assert [(v["value"], v["count"]) for v in body["values"]] == top
    assert body["total"] == 401
    assert body["values"][0]["plus"] == f'program:"{top[0][0]}"'
    assert web.get("/api/search?q=" + body["values"][0]["minus"]).json()["total"] == \
        401 - top[0][1]


def test_page_cuts_long_lines_and_links_queue_ids(tmp_path):
    url = "sqlite:///" + str(tmp_path / "long.db")
    sink = SqliteStore(url)
    sink.prepare()
    long = "x" * 5000
    sink.write([Event("long1", {"@timestamp": "2026-11-28T10:00:00.000Z", "host": "h",
                                "qid": "r4F2abcD012345",
                                "message": f"r4F2abcD012345: {long}"})])
    sink.close()
    with client_for(url) as client:
        html = client.get("/?columns=@timestamp,qid,message").text
        assert long not in html and "x" * 250 in html
        assert html.count('href="/trace/r4F2abcD012345"') == 2
        full = client.get("/api/event/long1?field=message").text
        assert full.endswith(long) and full.startswith("r4F2abcD012345: ")


def test_surrounding_lines_come_from_the_same_host_and_program(web, events):
    target = next(e for e in events[200:] if e.doc.get("program") == "sendmail")
    body = web.get(f"/api/surrounding/{target.id}?lines=3").json()
    ids = [h["id"] for h in body["hits"]]
    assert target.id in ids
    assert all(h["host"] == target.doc["host"] and h["program"] == "sendmail"
               for h in body["hits"])
    same = sorted((e for e in events if e.doc.get("host") == target.doc["host"]
                   and e.doc.get("program") == "sendmail"), key=lambda e: e.doc["@timestamp"])
    at = [e.id for e in same].index(target.id)
    assert ids == [e.id for e in same[max(0, at - 3):at + 4]]


def test_hostile_line_is_escaped(web):
    html = web.get("/?q=qid:h0st1leQ000001").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# ------------------------------------------------------------------ same as the CLI, both stores

@pytest.fixture
def es_store_url(es_url, events):
    from tests.fixtures.elasticsearch import es_loaded

    with es_loaded(es_url, events) as url:
        yield url


def same_order(got: list, want: list, whole: bool = False) -> None:
    """The same events newest first; events sharing a timestamp may come in any order (a
    store orders only by time), and a page cut inside such a group may keep other members."""
    assert [t for t, _ in got] == [t for t, _ in want]
    groups_got, groups_want = {}, {}
    for t, m in got:
        groups_got.setdefault(t, []).append(m)
    for t, m in want:
        groups_want.setdefault(t, []).append(m)
    last = got[-1][0] if got else None
    for t in groups_want:
        if t != last or whole:
            assert sorted(groups_got[t]) == sorted(groups_want[t]), t


def _cli(capsys, *args) -> str:
    capsys.readouterr()
    assert cli_main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("store", ["sqlite", "elasticsearch"])
def test_a_total_past_the_tracking_limit_says_at_least(store, request, monkeypatch):
    """Totals are counted up to a limit (10,000; 100 here), as Elasticsearch does: past it the
    API says "total_relation": "gte" and the page "100+ hits"; the top values' percentages
    rest on an exact count."""
    from logpipe.store.elasticsearch import reader as es_reader
    from logpipe.store.sqlite import paging as lite_reader

    monkeypatch.setattr(es_reader, "TRACK_TOTAL_HITS", 100)
    monkeypatch.setattr(lite_reader, "TRACK_TOTAL_HITS", 100)
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "es_store_url")
    with client_for(url) as web:
        many = web.get("/api/search", params={"q": "*", "size": 5}).json()
        assert (many["total"], many["total_relation"]) == (100, "gte")
        few = web.get("/api/search", params={"q": "greylist", "size": 5}).json()
        assert few["total_relation"] == "eq" and 0 < few["total"] < 100
        html = web.get("/", params={"q": "*"}).text
        assert re.search(r'id="total"[^>]*title="more than 100 match[^"]*"><b>100\+</b> hits',
                         html), html[:2000]
        assert f"<b>{few['total']}</b> hit" in web.get("/", params={"q": "greylist"}).text
        top = web.get("/api/top", params={"q": "*", "field": "program"}).json()
        assert top["total"] == 401


@pytest.mark.parametrize("store", ["sqlite", "elasticsearch"])
@pytest.mark.parametrize("query", ["*", "program:sendmail AND stat:Deferred*", "greylist",
                                   "size:[100000 TO *]"])
def test_same_results_as_the_cli_on_both_stores(store, query, request, capsys):
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "es_store_url")
    with client_for(url) as web:
        api = web.get("/api/search", params={"q": query, "size": 30}).json()
        cli = [orjson.loads(line) for line in
               _cli(capsys, "search", "--store", url, "--json", "-n", "30", query).splitlines()]
        same_order([(h["@timestamp"], h["message"]) for h in api["hits"]],
                   [(c["@timestamp"], c["message"]) for c in cli])
        assert api["total"] >= len(cli) > 0
        # every page of the keyset walk: the CLI's whole result in the same order
        walked, after = [], ""
        while True:
            page = web.get("/api/search", params={"q": query, "size": 50, "after": after}).json()
            walked += [(h["@timestamp"], h["message"]) for h in page["hits"]]
            after = page["next"]
            if not after:
                break
        everything = [(d["@timestamp"], d["message"]) for d in map(orjson.loads, _cli(
            capsys, "search", "--store", url, "--json", "-n", "10000", query).splitlines())]
        assert len(walked) == len(everything) == api["total"]
        same_order(walked, everything, whole=True)
        hist = web.get("/api/histogram", params={"q": query, "interval": "5m"}).json()
        cli_hist = [line.split("\t") for line in _cli(
            capsys, "search", "--store", url, "--histogram", "5m", query).splitlines()]
        nonzero = [(b["time"], b["count"]) for b in hist["buckets"] if b["count"]]
        assert nonzero == [(t, int(n)) for t, n in cli_hist if int(n)]
        top = web.get("/api/top", params={"q": query, "field": "host", "size": 5}).json()
        cli_top = [line.split("\t") for line in _cli(
            capsys, "search", "--store", url, "--top", "host", "-n", "5", query).splitlines()]
        assert [(v["value"], v["count"]) for v in top["values"]] == \
            [(v, int(n)) for v, n in cli_top]


@pytest.mark.parametrize("store", ["sqlite", "elasticsearch"])
def test_trace_follows_the_hand_off_on_both_stores(store, request, events):
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "es_store_url")
    handed = next(e for e in events if "Message accepted" in str(e.doc.get("stat", "")))
    qid = handed.doc["qid"]
    next_qid = re.search(r"\((\w+) Message accepted", handed.doc["stat"]).group(1)
    extra = [Event("hop-1", {"@timestamp": "2013-05-15T04:00:00.000Z", "host": "relay2",
                             "program": "sendmail", "qid": next_qid,
                             "from": "<a@example.org>", "size": 1234,
                             "message": f"{next_qid}: from=<a@example.org>, size=1234"}),
             Event("hop-2", {"@timestamp": "2013-05-15T04:00:01.000Z", "host": "relay2",
                             "program": "sendmail", "qid": next_qid, "to": "<b@example.net>",
                             "stat": "Deferred: Connection refused", "dsn": "4.0.0",
                             "message": f"{next_qid}: to=<b@example.net>, stat=Deferred"})]
    from logpipe.store import open_store
    sink = open_store(url)
    sink.write(extra)
    if hasattr(sink, "refresh"):
        sink.refresh()
    try:
        with client_for(url) as web:
            body = web.get(f"/api/trace/{qid}").json()
            assert "stories" in body, body
            assert [s["qid"] for s in body["stories"]] == [qid, next_qid]
            first = body["stories"][0]
            kinds = [s["kind"] for s in first["steps"]]
            assert kinds[0] == "received" and "delivery" in kinds
            assert first["verdict"] == "sent"
            assert body["verdict"] == "deferred"
            html = web.get(f"/trace/{qid}").text
            assert f'href="/trace/{next_qid}"' in html and "delivery attempt" in html
            assert web.get("/api/trace/nosuchqid").status_code == 404
    finally:
        if url.startswith("sqlite"):
            _delete(url, "hop-1", "hop-2")
        sink.close()


# ------------------------------------------------------------------ dead letters and health

def _letters(redis_url):
    client = connect(redis_url)
    dlq = DeadLetterQueue(client, Keys())
    good = Record(id="good-1", line="May 15 02:00:03 relay sendmail[1]: p4F210QG076036: "
                  "from=<ivan75@gmail.com>, size=124472, class=0, nrcpts=1, msgid=<a@b>, "
                  "proto=ESMTP, daemon=MTA, relay=aspmx.l.google.com [173.103.200.78]",
                  host="relay", path="/var/log/maillog", offset=1, type="mail",
                  received_at=time.time())
    dlq.add(encode(good), "good-1", "index", "mapper_parsing_exception: relayip")
    for i in range(3):
        bad = Record(id=f"bad-{i}", line=f"garbage line {i}", host="relay", type="mail",
                     received_at=time.time())
        dlq.add(encode(bad), f"bad-{i}", "parse", "ValueError: no date")
    dlq.add(b"\xff\xfe not text", "undecodable", "decode", "DecodeError: not UTF-8")
    return client, dlq


def test_dead_letters_page_counts_and_shows_records(sqlite_url, redis_url):
    client, dlq = _letters(redis_url)
    with client_for(sqlite_url, redis_url) as web:
        html = web.get("/dlq").text
        assert "ValueError: no date" in html and "garbage line 1" in html
        assert re.search(r"parse</a></td><td class=\"num\">3<", html)
        assert web.get("/api/dlq/count?stage=parse").json() == {"count": 3}
        assert web.get("/api/dlq/count?stage=bogus").status_code == 400
        entry = next(l.entry_id for l in dlq.iter(stage="parse"))
        letter = web.get(f"/dlq/{entry}").text
        assert "Closest pattern" in letter
    client.close()


def test_changes_need_csrf_and_origin(sqlite_url, redis_url):
    client, dlq = _letters(redis_url)
    with client_for(sqlite_url, redis_url) as web:
        csrf = csrf_of(web)
        body = {"filter": {"stage": "index"}}
        assert web.post("/api/dlq/replay", json=body).status_code == 403
        assert web.post("/api/dlq/replay", json=body, headers={
            "X-CSRF-Token": csrf, "Origin": "http://evil.example"}).status_code == 403
        assert web.post("/api/dlq/replay", json=body, headers={
            "X-CSRF-Token": "0" * 64, "Origin": "http://testserver"}).status_code == 403
        assert web.get("/api/dlq/replay").status_code == 405
        assert len(dlq) == 5
        r = web.post("/api/dlq/replay", json=body, headers={"X-CSRF-Token": csrf,
                                                             "Origin": "http://testserver"})
        assert r.status_code == 200, r.text
        assert r.json()["indexed"] == 1 and r.json()["replayed"] == 1
        assert len(dlq) == 4
        found = web.get("/api/search?q=qid:p4F210QG076036").json()
        assert found["total"] == 1 and found["hits"][0]["id"] == "good-1"
    client.close()
    _delete(sqlite_url, "good-1")


def test_purge_only_with_the_typed_count_and_logged(sqlite_url, redis_url, capfd):
    client, dlq = _letters(redis_url)
    with client_for(sqlite_url, redis_url, login=False) as web:
        auth = {"Authorization": f"Bearer {TOKEN}"}   # API clients: no CSRF needed
        r = web.post("/api/dlq/purge", json={"filter": {"stage": "parse"}}, headers=auth)
        assert r.status_code == 409 and r.json()["count"] == 3
        r = web.post("/api/dlq/purge", json={"filter": {"stage": "parse"}, "confirm": "2"},
                     headers=auth)
        assert r.status_code == 409 and len(dlq) == 5
        r = web.post("/api/dlq/purge", json={"filter": {"stage": "parse"}, "confirm": "3"},
                     headers=auth)
        assert r.status_code == 200 and r.json() == {"purged": 3}
        assert len(dlq) == 2
        entry = next(l.entry_id for l in dlq.iter(stage="decode"))
        r = web.post("/api/dlq/replay", json={"entries": [entry]}, headers=auth)
        assert r.json()["still_failing"] == 1
    err = capfd.readouterr().err
    assert "event=ui_purge" in err and "stage=parse" in err and "purged=3" in err
    assert "event=ui_replay" in err and TOKEN not in err
    client.close()


def test_health_page_flags_a_silent_shipper(sqlite_url, redis_url):
    client = connect(redis_url)
    keys = Keys()
    now = time.time()
    client.hset(keys.stats("shippers"), mapping={
        "mail1:/var/lib/a": orjson.dumps({"host": "mail1", "updated": now, "lines": 10}),
        "mail2:/var/lib/b": orjson.dumps({"host": "mail2", "updated": now - 900, "lines": 5}),
    })
    with client_for(sqlite_url, redis_url) as web:
        html = web.get("/health").text
    rows = re.findall(r"<tr class=\"(silent)?\"><td>([^<]+)</td>", html)
    assert ("silent", "mail2:/var/lib/b") in rows and ("", "mail1:/var/lib/a") in rows
    assert "raw list depth" in html and "live workers" in html
    client.close()


def test_pages_without_a_broker_say_so(sqlite_url):
    with client_for(sqlite_url) as web:
        r = web.get("/dlq")
        assert r.status_code == 503 and "broker" in r.text
        assert web.get("/health").status_code == 503
        assert web.get("/").status_code == 200


def test_every_page_shows_its_cli_command(web):
    html = web.get("/?q=program:sendmail&from=now-1h&columns=@timestamp,qid").text
    assert "$ logpipe search --from now-1h --fields @timestamp,qid program:sendmail" in html
    assert "$ logpipe trace abc" in web.get("/trace/abc").text
    assert "$ logpipe stats" in web.get("/health").text


# ------------------------------------------------------------------ the command

def test_ui_command_serves_and_streams_new_matches(sqlite_url, tmp_path):
    import httpx

    token_file = tmp_path / "secret" / "token"
    proc, address = start_ui("--store", sqlite_url, "--token-file", str(token_file))
    try:
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        assert address.endswith(f"/?token={token}")
        base = address.split("/?")[0]
        assert httpx.get(base + "/api/search").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", base + "/api/tail", params={"q": "program:tailtest"},
                          headers=auth, timeout=60) as stream:
            sink = SqliteStore(sqlite_url)
            soon = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 60))
            sink.write([Event("tail-1", {"@timestamp": soon,
                                         "host": "h", "program": "tailtest",
                                         "message": "<b>new</b> line"})])
            sink.close()
            got, deadline = None, time.monotonic() + 60
            for line in stream.iter_lines():
                assert time.monotonic() < deadline, "no new match streamed within 60 s"
                if line.startswith("data: "):
                    got = orjson.loads(line[6:])
                    break
        assert got["id"] == "tail-1" and got["message"] == "<b>new</b> line"
    finally:
        stop_ui(proc)
        _delete(sqlite_url, "tail-1")
    assert proc.returncode == 0


def test_ui_refuses_open_token_file_and_open_bind_without_one(tmp_path, capsys):
    loose = tmp_path / "token"
    loose.write_text("a-token-of-enough-length\n")
    os.chmod(loose, 0o644)
    assert cli_main(["ui", "--token-file", str(loose), "--bind", "127.0.0.1:0"]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert cli_main(["ui", "--bind", "0.0.0.0:0"]) == 2
    assert "--token-file" in capsys.readouterr().err
    assert cli_main(["ui", "--bind", "nonsense"]) == 2
