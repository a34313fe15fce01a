"""The web page in a real browser: Debian's chromium driven by Playwright (never
``playwright install``), against a real ``logpipe ui`` process and Valkey, once on the embedded
store and once on the Elasticsearch node (the module's tests run against each in turn).

Screenshots go to tests/artifacts/ (not committed)."""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record, encode
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.store.base import Event
from logpipe.store.registry import open_store
from tests.support.web import mail_events, start_ui, stop_ui

CHROMIUM = os.environ.get("LOGPIPE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
GOOD_LINE = ("May 15 02:00:03 relay sendmail[1]: q4F210QG076036: from=<ivan75@gmail.com>, "
             "size=124472, class=0, nrcpts=1, msgid=<a@b>, proto=ESMTP, daemon=MTA, "
             "relay=aspmx.l.google.com [173.103.200.78]")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./run tests` installs Debian's chromium "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@contextmanager
def _loaded_store(kind: str, base: Path, request):
    """A store of ``kind`` holding the sample maillog (and one hostile line); yields its URL."""
    events = mail_events(600, hostile=True)
    if kind == "elasticsearch":
        from tests.fixtures.elasticsearch import es_loaded

        with es_loaded(request.getfixturevalue("es_url"), events) as url:
            yield url
        return
    url = "sqlite:///" + str(base / "events.db")
    store_now(url, *events)
    yield url


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def site(request, tmp_path_factory, valkey_server):
    """``logpipe ui`` on a store with the sample maillog (and one hostile line) and one dead letter."""
    kind = request.param
    base = tmp_path_factory.mktemp(f"browser-{kind}")
    with _loaded_store(kind, base, request) as url:
        client = connect(valkey_server.url)
        client.flushall()
        dlq = DeadLetterQueue(client, Keys())
        good = Record(id="replay-me", line=GOOD_LINE, host="relay", path="/var/log/maillog",
                      offset=1, type="mail", received_at=time.time())
        dlq.add(encode(good), "replay-me", "index", "mapper_parsing_exception: failed to parse")
        proc, address = start_ui("--store", url, "--redis", valkey_server.url,
                                 env={"LOGPIPE_HOME": str(base / "home")})
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"address": address, "base": address.split("/?")[0], "store": url, "dlq": dlq,
               "kind": kind}
        stop_ui(proc)
        client.close()


def store_now(url: str, *events: Event) -> None:
    """Write events into the store at ``url``, as an indexer would."""
    sink = open_store(url)
    sink.prepare()
    assert all(o.done for o in sink.write(list(events)))
    sink.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.store_kind = site["kind"]
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    # a Content-Security-Policy violation (anything inline) shows up as a console error
    page.on("console", lambda m: m.type == "error" and ("Content Security Policy" in m.text
                                                        or "Refused" in m.text)
            and page.errors.append(m.text))
    page.goto(site["address"])
    assert "token=" not in page.url  # swapped for the cookie
    yield page
    context.close()


def shot(page, name: str) -> Path:
    """A screenshot in tests/artifacts/ (named by store: <name>.png for the embedded store)."""
    suffix = "" if page.store_kind == "sqlite" else f"-{page.store_kind}"
    path = ARTIFACTS / f"{name}{suffix}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def total(page) -> int:
    return int(page.locator("#total b").inner_text().replace(",", ""))


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_type_a_query_see_hits_and_histogram(page, site):
    everything = total(page)
    page.fill("#q", "program:sendmail AND stat:Deferred*")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"q=program"))
    assert 0 < total(page) < everything
    rows = page.locator("#hits tr.hit")
    assert rows.count() == min(total(page), 100)
    assert "Deferred" in rows.first.inner_text()
    assert page.locator("#histogram rect.bar:not(.empty)").count() > 0
    # the page's default columns show the event's own host (logsource) first: the command says so
    assert ("logpipe search --fields @timestamp,logsource,host,type,message "
            "'program:sendmail AND stat:Deferred*'") in page.locator("#cli-command").inner_text()
    shot(page, "search-query")
    page.fill("#q", "program:(sendmail")
    page.press("#q", "Enter")
    assert "position" in page.locator("#query-error").inner_text() or \
        "^" in page.locator("#query-error").inner_text()
    assert not page.errors


def test_brush_the_histogram_and_go_back(page):
    before_url, before_total = page.url, total(page)
    box = page.locator("#histogram").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.05, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.35, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=.*to="))
    q = query_of(page.url)
    assert q["from"] < q["to"]
    assert 0 < total(page) < before_total
    shot(page, "search-brushed")
    # a click on a bar narrows to that bar
    brushed_total = total(page)
    bar = page.locator("#histogram rect.bar:not(.empty)").first
    expected = int(bar.get_attribute("data-count"))
    bar_from, current = bar.get_attribute("data-from"), page.url
    bar.click()
    page.wait_for_url(lambda url: url != current)
    assert query_of(page.url)["from"] == bar_from
    assert total(page) == expected <= brushed_total
    page.go_back()
    page.wait_for_url(re.compile(r"from="))
    assert total(page) == brushed_total
    page.go_back()
    page.wait_for_url(before_url)
    assert total(page) == before_total


def test_zoom_out_and_shift_are_navigations(page):
    page.goto(page.url.split("?")[0] + "?from=2013-05-15T02:10:00Z&to=2013-05-15T02:20:00Z")
    narrow = total(page)
    page.click("#zoom-out")
    page.wait_for_url(re.compile(r"from=2013-05-15T02%3A05"))
    assert total(page) >= narrow
    page.click("#shift-earlier")
    page.wait_for_url(re.compile(r"from=2013-05-15T01%3A55"))
    page.go_back()
    page.wait_for_url(re.compile(r"from=2013-05-15T02%3A05"))


def test_click_a_top_value_applies_the_filter(page):
    page.locator('#fields li[data-field="program"] .field-name').click()
    first = page.locator('#fields li[data-field="program"] li.top-value').first
    first.wait_for()
    value = first.locator(".v").inner_text()
    count = int(first.locator(".n").inner_text().split()[0])
    shot(page, "search-top-values")
    first.locator("a.plus").click()
    page.wait_for_url(re.compile(r"q=program"))
    assert query_of(page.url)["q"] == f'program:"{value}"'
    assert total(page) == count
    page.locator('#fields li[data-field="program"] .field-name').click()
    page.locator('#fields li[data-field="program"] li.top-value').first.wait_for()
    page.locator('#fields li[data-field="program"] li.top-value a.minus').first.click()
    page.wait_for_url(re.compile(r"NOT"))
    assert f'NOT program:"{value}"' in query_of(page.url)["q"]
    assert total(page) == 0


def test_keyboard_and_row_expansion(page):
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    selected = page.locator("#hits tr.hit.selected")
    assert selected.count() == 1
    assert selected.get_attribute("data-id") == \
        page.locator("#hits tr.hit").nth(1).get_attribute("data-id")
    page.keyboard.press("k")
    page.keyboard.press("o")
    detail = page.locator("#hits tr.detail")
    detail.locator("pre.raw").wait_for()
    assert "fname" in detail.inner_html()
    detail.locator("button.surround").click()
    detail.locator("ol.surrounding li.here").wait_for()
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    shot(page, "search-expanded")
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    assert not page.errors


def test_open_a_trace_from_the_hit_table(page):
    page.fill("#q", "stat:Sent*")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"q=stat"))
    link = page.locator("#hits a.qid").first
    qid = link.inner_text()
    link.click()
    page.wait_for_url(re.compile(f"/trace/{qid}"))
    story = page.locator(f"#story-{qid}")
    assert story.locator(".k-received").count() >= 1
    assert story.locator(".k-delivery").count() >= 1
    assert story.locator(".verdict").first.inner_text() == "sent"
    assert f"logpipe trace {qid}" in page.locator("#cli-command").inner_text()
    shot(page, "trace")


def test_replay_a_dead_letter(page, site):
    page.goto(site["base"] + "/dlq")
    row = page.locator('#letters tr.letter')
    assert row.count() == 1 and "mapper_parsing_exception" in row.inner_text()
    shot(page, "dlq")
    page.click("#replay-all")
    confirm = page.locator("#confirm")
    confirm.wait_for()
    assert "Replay 1 dead letter" in page.locator("#confirm-text").inner_text()
    page.click("#confirm-go")
    page.locator("#dlq-result").wait_for()
    assert "indexed=1" in page.locator("#dlq-result").inner_text()
    page.wait_for_load_state()
    page.locator("p.empty").wait_for(timeout=15000)
    assert len(site["dlq"]) == 0
    deadline = time.monotonic() + 30   # Elasticsearch shows a write after its next refresh
    while True:
        page.goto(site["base"] + "/?q=qid:q4F210QG076036")
        if total(page) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert total(page) == 1
    assert not page.dialogs


def test_hostile_line_is_text_and_runs_nothing(page, site):
    page.goto(site["base"] + "/?q=qid:h0st1leQ000001&columns=@timestamp,from,msgid,message")
    row = page.locator("#hits tr.hit")
    assert row.count() == 1
    text = row.inner_text()
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(2)>" in text
    assert page.locator("#hits script, #hits img").count() == 0
    row.locator("button.expand").click()
    page.locator("#hits tr.detail pre.raw").wait_for()
    assert "<script>alert(1)</script>" in page.locator("#hits tr.detail pre.raw").inner_text()
    page.locator('#fields li[data-field="from"] .field-name').click()
    page.locator('#fields li[data-field="from"] li.top-value').first.wait_for()
    assert page.locator("#fields script, #fields img").count() == 0
    page.goto(site["base"] + "/trace/h0st1leQ000001")
    assert "<script>alert(1)</script>" in page.locator(".timeline").inner_text()
    page.wait_for_timeout(300)   # let anything that would run, run
    assert page.dialogs == [] and page.errors == []
    shot(page, "hostile")
    # and the policy is in force: an inline script put into the page does not run
    ran = page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__inline_ran = true'; document.body.appendChild(s);
        return window.__inline_ran === true; }""")
    page.wait_for_timeout(200)
    assert ran is False
    assert any("Content Security Policy" in e for e in page.errors)


def test_live_tail_shows_new_matches(page, site):
    page.goto(site["base"] + "/?q=program:livetail")
    page.click("#tail")
    page.locator("#tail-status").filter(has_text="following").wait_for()
    soon = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 30))
    store_now(site["store"], Event("live-1", {"@timestamp": soon, "host": "mail9", "program": "livetail",
                                     "type": "mail", "message": "a line that arrived just now"}))
    page.locator('#hits tr.hit[data-id="live-1"]').wait_for(timeout=30000)
    assert "arrived just now" in page.locator('#hits tr.hit[data-id="live-1"]').inner_text()


def test_sample_maillog_screenshot(page, site):
    page.goto(site["base"] + "/?from=2013-05-15T02:00:00Z&to=2013-05-15T02:10:00Z"
              "&columns=@timestamp,host,program,qid,message")
    page.locator('#fields li[data-field="program"] .field-name').click()
    page.locator('#fields li[data-field="program"] li.top-value').first.wait_for()
    assert shot(page, "ui-search").stat().st_size > 10000


def _letters(site, reason: str, n: int) -> list[str]:
    """``n`` dead letters whose reason says ``reason`` (filterable apart from the others)."""
    entries = []
    for i in range(n):
        record = Record(id=f"{reason}-{i}", line=f"{reason} line {i}", host="relay",
                        path="/var/log/maillog", offset=i, type="mail", received_at=time.time())
        site["dlq"].add(encode(record), record.id, "parse", f"{reason}: no pattern matched")
        entries.append(record.id)
    return entries


def _in_dlq(site, reason: str) -> int:
    return sum(1 for _ in site["dlq"].iter(reason=reason))


def test_replay_one_asks_first_with_the_count(page, site):
    _letters(site, "replayonecheck", 2)
    page.goto(site["base"] + "/dlq?reason=replayonecheck")
    rows = page.locator("#letters tr.letter")
    assert rows.count() == 2
    rows.first.locator("button.replay-one").click()
    page.locator("#confirm").wait_for()
    assert "Replay 1 dead letter" in page.locator("#confirm-text").inner_text()
    assert "replayonecheck" in page.locator("#confirm-text").inner_text()
    page.click("#confirm-cancel")
    assert page.locator("#confirm").is_hidden() and page.locator("#dlq-result").is_hidden()
    assert _in_dlq(site, "replayonecheck") == 2          # cancelled: nothing happened
    rows.first.locator("button.replay-one").click()
    page.locator("#confirm").wait_for()
    page.click("#confirm-go")
    page.locator("#dlq-result").wait_for()
    # the line matches no pattern, so the replay dead-letters it again: one went through
    assert "replay:" in page.locator("#dlq-result").inner_text()
    page.locator("#letters tr.letter").first.wait_for()  # no JavaScript predicate: CSP, no eval
    assert not page.dialogs and not page.errors


def test_purge_from_the_browser_needs_the_count_typed(page, site):
    _letters(site, "purgecheck", 3)
    page.goto(site["base"] + "/dlq?reason=purgecheck")
    assert page.locator("#letters tr.letter").count() == 3
    page.click("#purge-all")
    page.locator("#confirm").wait_for()
    assert "Delete 3 dead letters" in page.locator("#confirm-text").inner_text()
    go = page.locator("#confirm-go")
    assert go.is_disabled()
    page.fill("#confirm-count", "2")
    assert go.is_disabled()                               # the wrong count does nothing
    assert _in_dlq(site, "purgecheck") == 3
    page.fill("#confirm-count", "3")
    assert go.is_enabled()
    shot(page, "dlq-purge-confirm")
    go.click()
    page.locator("#dlq-result").filter(has_text="purged 3").wait_for()
    page.locator("p.empty").wait_for(timeout=15000)       # reloaded: none left
    assert _in_dlq(site, "purgecheck") == 0
    assert not page.dialogs and not page.errors


def test_live_tail_pauses_while_scrolled_down(page, site):
    page.goto(site["base"] + "/?q=*")
    assert page.locator("#hits tr.hit").count() == 100    # a page taller than the window
    page.click("#tail")
    status = page.locator("#tail-status")
    status.filter(has_text="following").wait_for()
    page.evaluate("() => window.scrollTo(0, 800)")
    status.filter(has_text="paused while scrolled").wait_for()
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 60))
    store_now(site["store"], Event("live-paused", {"@timestamp": later, "host": "mail9",
                                          "program": "pausetail", "type": "mail",
                                          "message": "held while the reader scrolls"}))
    status.filter(has_text="1 new (paused while scrolled").wait_for(timeout=30000)
    assert page.locator('#hits tr.hit[data-id="live-paused"]').count() == 0
    assert page.evaluate("() => window.scrollY") >= 800   # nothing moved the reader
    page.evaluate("() => window.scrollTo(0, 0)")
    page.locator('#hits tr.hit[data-id="live-paused"]').wait_for()
    assert "held while the reader scrolls" in \
        page.locator('#hits tr.hit[data-id="live-paused"]').inner_text()
    status.filter(has_text="following new matches").wait_for()
    assert not page.errors
