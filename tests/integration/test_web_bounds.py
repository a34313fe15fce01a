"""What ``logpipe ui`` sends is bounded whatever the data holds: a record of 100,000 fields, lines
of megabytes, a page of many large hits, a dead letter of megabytes. Sizes of the answers are
asserted (bytes), over the real app, the embedded store and a real Valkey."""

from __future__ import annotations

import re
import time
import warnings

import orjson
import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record, encode
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.search.web import data as D
from logpipe.search.web.app import FIELD_LIST, FIELD_LIST_MORE, create_app
from logpipe.search.web.data import Data
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration
TOKEN = "bounds-token-0123456789abcdef"
KB, MB = 1024, 1024 * 1024


def store(tmp_path, events) -> str:
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    assert all(o.done for o in sink.write(events))
    sink.close()
    return url


def client(url, redis_url=None) -> TestClient:
    web = TestClient(create_app(Data(url, redis_url), TOKEN))
    assert web.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
    return web


def normal(i: int) -> Event:
    return Event(f"n{i:03d}", {"@timestamp": f"2026-11-28T09:{i % 60:02d}:00.000Z", "host": "h",
                               "program": "p", "message": f"normal line {i}"})


def test_a_record_of_100000_fields(tmp_path):
    many = {f"f{i:06d}": i for i in range(100_000)}
    wide = Event("wide", {"@timestamp": "2026-11-28T10:00:00.000Z", "host": "h",
                          "message": "wide record", **many})
    url = store(tmp_path, [wide] + [normal(i) for i in range(20)])
    with client(url) as web:
        page = web.get("/")
        assert page.status_code == 200
        assert len(page.content) < 400 * KB, len(page.content)
        listed = re.findall(r'<li class="field" data-field="([^"]*)"', page.text)
        assert len(listed) == FIELD_LIST + FIELD_LIST_MORE
        sidebar = page.text.split('id="more-fields"')[0]
        assert sidebar.count('<li class="field"') == FIELD_LIST
        assert {"@timestamp", "host", "message"} <= set(listed)
        assert re.search(r'id="unlisted-fields">and \d+ more', page.text)
        assert "An event here has 100,003 fields" in page.text

        api = web.get("/api/search", params={"q": "*", "size": 100})
        assert len(api.content) < 100 * KB, len(api.content)
        body = api.json()
        hit = next(h for h in body["hits"] if h["id"] == "wide")
        assert len(hit) == D.HIT_FIELDS_MAX + 1
        assert body["cut"]["wide"]["omitted_fields"] == 100_003 - D.HIT_FIELDS_MAX
        assert body["cut"]["wide"]["fields_total"] == 100_003
        assert body["total"] == 21 and len(body["hits"]) == 21 and not body["capped"]

        event = web.get("/api/event/wide")
        assert len(event.content) < 100 * KB
        assert orjson.loads(event.headers["x-logpipe-cut"])["omitted_fields"] > 99_000
        whole = web.get("/api/event/wide", params={"download": "1"})
        assert "attachment" in whole.headers["content-disposition"]
        assert len(whole.json()) == 100_004 and whole.json()["f099999"] == 99_999
        assert web.get("/api/event/wide", params={"field": "f099999"}).json() == 99_999


def test_lines_of_megabytes(tmp_path):
    big = 6 * MB
    huge = [Event(f"big{i}", {"@timestamp": f"2026-11-28T10:00:0{i}.000Z", "host": "h",
                              "message": f"{i}" + "x" * big, "other": "y" * (big // 2)})
            for i in range(2)]
    url = store(tmp_path, huge + [normal(i) for i in range(5)])
    with client(url) as web:
        api = web.get("/api/search", params={"q": "*"})
        assert len(api.content) < 64 * KB, len(api.content)
        body = api.json()
        for i in range(2):
            hit = next(h for h in body["hits"] if h["id"] == f"big{i}")
            assert len(hit["message"]) == D.VALUE_MAX and hit["message"].startswith(f"{i}x")
            assert sorted(body["cut"][f"big{i}"]["fields"]) == ["message", "other"]
        page = web.get("/")
        assert page.status_code == 200 and len(page.content) < 128 * KB
        assert len(web.get("/api/event/big1").content) < 64 * KB
        assert len(web.get("/api/surrounding/big1").content) < 128 * KB
        whole = web.get("/api/event/big1", params={"field": "message"})
        assert whole.headers["content-type"].startswith("text/plain")
        assert whole.text == "1" + "x" * big


def test_a_page_stops_at_its_byte_limit_and_the_cursor_goes_on(tmp_path):
    # 100 hits of ~40 KB: 4 MB, twice the limit of one page
    events = [Event(f"e{i:03d}", {"@timestamp": f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}.000Z",
                                  "host": "h", "message": f"event {i}",
                                  **{f"v{k}": chr(97 + k) * 4000 for k in range(10)}})
              for i in range(100)]
    url = store(tmp_path, events)
    with client(url) as web:
        seen, after, pages = [], "", 0
        while True:
            r = web.get("/api/search", params={"q": "*", "size": 100, "after": after})
            assert len(r.content) <= D.PAGE_BYTES + 16 * KB, len(r.content)
            body = r.json()
            if pages == 0:
                assert body["capped"] and 0 < len(body["hits"]) < 100 and body["next"]
                assert "2 MB" in body["note"]
            seen += [h["id"] for h in body["hits"]]
            pages += 1
            after = body["next"]
            if not after:
                break
        assert pages >= 2
        assert seen == [f"e{i:03d}" for i in reversed(range(100))]      # each once, in order
        page = web.get("/").text
        assert 'id="page-capped"' in page and 'id="next-page"' in page


def test_a_dead_letter_of_megabytes_opens_bounded(tmp_path, redis_url):
    url = store(tmp_path, [normal(i) for i in range(3)])
    line = "May 15 02:00:03 relay sendmail[1]: " + "z" * (2 * MB)
    record = Record(id="huge-1", line=line, host="relay", type="mail", received_at=time.time())
    raw = encode(record)
    conn = connect(redis_url)
    dlq = DeadLetterQueue(conn, Keys())
    dlq.add(raw, "huge-1", "parse", "ValueError: no date")
    entry = next(letter.entry_id for letter in dlq.iter())
    with client(url, redis_url) as web:
        letter = web.get(f"/dlq/{entry}")
        assert letter.status_code == 200
        assert len(letter.content) < D.LETTER_PREVIEW + 64 * KB, len(letter.content)
        assert "Closest pattern" in letter.text and 'id="record-cut"' in letter.text
        listing = web.get("/dlq")
        assert listing.status_code == 200 and len(listing.content) < 64 * KB
        download = web.get(f"/dlq/{entry}/raw")
        assert download.content == raw
        assert "attachment" in download.headers["content-disposition"]
        assert web.get("/dlq/0-1/raw").status_code == 404
        assert web.get("/dlq/not-an-entry/raw").status_code == 404
    conn.close()
