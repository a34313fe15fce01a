"""The search page's time, values, saved searches and export (issue 24) in Debian's chromium
(Playwright with ``executable_path``), against a real ``logpipe ui`` on each store in turn.

Lean on Elasticsearch (the node is shared): a small sample, one module-wide load."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from logpipe.store.base import Event
from tests.integration.test_web_browser import (ARTIFACTS, CHROMIUM, FLAGS, browser,  # noqa: F401
                                                store_now)
from tests.support.web import mail_events, start_ui, stop_ui

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZONE = "Asia/Kolkata"          # +05:30 all year: a local time that is never the UTC one
FORMULA = '=HYPERLINK("http://evil.example/","click")'
# a relay logged with the root's trailing dot, and the same relay without it
DOTTED = ["May 15 03:00:02 mail1 sendmail[4243]: d0tt3dQ000001: to=<a@example.net>, delay=00:00:01, "
          "mailer=esmtp, pri=1, relay=mx.example.net. [10.6.6.8], dsn=2.0.0, stat=Sent (ok)",
          "May 15 03:00:03 mail1 sendmail[4243]: d0tt3dQ000002: to=<b@example.net>, delay=00:00:01, "
          "mailer=esmtp, pri=1, relay=mx.example.net [10.6.6.8], dsn=2.0.0, stat=Sent (ok)"]


def _events() -> list:
    from logpipe.common.record import Record, record_id
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline

    events = mail_events(150, seed=11)
    pipeline = Pipeline(load_pipeline())
    for n, line in enumerate(DOTTED):
        events.append(pipeline.process(Record(
            id=record_id("mail1", "dotted", n), line=line, host="mail1", path="/var/log/maillog",
            offset=n, type="mail", received_at=1368586800.0 + n)))
    events.append(Event("formula-1", {"@timestamp": "2013-05-15T03:00:05Z", "message": FORMULA,
                                      "host": "evil", "type": "syslog", "tags": []}))
    return events


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def site(request, tmp_path_factory, valkey_server):
    kind = request.param
    base = tmp_path_factory.mktemp(f"page-{kind}")
    events = _events()
    home = base / "home"
    if kind == "elasticsearch":
        from tests.fixtures.elasticsearch import es_loaded

        ctx = es_loaded(request.getfixturevalue("es_url"), events)
        url = ctx.__enter__()
    else:
        ctx, url = None, "sqlite:///" + str(base / "events.db")
        store_now(url, *events)
    proc, address = start_ui("--store", url, "--redis", valkey_server.url,
                             env={"LOGPIPE_HOME": str(home)})
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield {"address": address, "base": address.split("/?")[0], "kind": kind, "home": home,
               "events": events}
    finally:
        stop_ui(proc)
        if ctx is not None:
            ctx.__exit__(None, None, None)


@pytest.fixture
def context(browser, site):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id=ZONE,
                              accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, site):
    page = context.new_page()
    page.store_kind = site["kind"]
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and ("Content Security Policy" in m.text
                                                        or "Refused" in m.text)
            and page.errors.append(m.text))
    page.goto(site["address"])
    page.evaluate("() => localStorage.removeItem('logpipe.zone')")
    yield page
    assert not page.errors


def shot(page, name: str) -> None:
    suffix = "" if page.store_kind == "sqlite" else f"-{page.store_kind}"
    page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"))


def open_(page, site, **params) -> None:
    from urllib.parse import urlencode

    page.goto(site["base"] + "/?" + urlencode(params))


def total(page) -> int:
    return int(page.locator("#total b").inner_text().replace(",", ""))


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def api_count(page, site, **params) -> int:
    r = page.request.get(site["base"] + "/api/search", params={**params, "size": "0"})
    assert r.ok, r.text()
    return r.json()["total"]


def local(iso: str, zone_hours: float) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(hours=zone_hours)
    return t.strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------ time
def test_times_show_in_the_viewers_zone_and_utc_is_remembered(page, site):
    open_(page, site, q="program:sendmail")
    cell = page.locator("#hits tr.hit td.c-timestamp time").first
    iso = cell.get_attribute("datetime")
    assert cell.inner_text() == local(iso, 5.5)          # the browser's zone, not raw ISO
    assert page.locator("#tz-switch").inner_text().startswith("zone: Asia/")  # Kolkata or Calcutta
    page.click("#tz-switch")
    assert cell.inner_text() == local(iso, 0)
    assert page.locator("#tz-switch").inner_text() == "zone: UTC"
    page.reload()                                          # stored per browser
    assert page.locator("#hits tr.hit td.c-timestamp time").first.inner_text() == local(iso, 0)
    window = page.locator("#window-text time").first
    assert window.inner_text() == local(window.get_attribute("datetime"), 0)
    page.click("#tz-switch")
    assert page.locator("#hits tr.hit td.c-timestamp time").first.inner_text() == local(iso, 5.5)


def shown(iso: str, zone_hours: float) -> str:
    """What time.js shows for ``iso`` (milliseconds only when there are some)."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(hours=zone_hours)
    ms = t.microsecond // 1000
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{ms:03d}" if ms else "")


def test_every_page_follows_the_same_zone_setting(page, site, valkey_server):
    """time.js comes from base.html: the trace and dead-letter pages show their times in the
    viewer's zone, each page has the zone switch, and the choice made on one page holds on all."""
    from logpipe.common.broker import Keys, connect
    from logpipe.indexer.dlq import DeadLetterQueue

    client = connect(valkey_server.url)
    dlq = DeadLetterQueue(client, Keys())
    dlq.add(b'{"id": "zone-1"}', "zone-1", "index", "mapper_parsing_exception: zone test")
    try:
        qid = next(e.doc["qid"] for e in site["events"] if e.doc.get("qid"))
        page.goto(site["base"] + "/trace/" + qid)
        step = page.locator(".timeline .when time.t").first
        iso = step.get_attribute("datetime")
        assert step.inner_text() == shown(iso, 5.5)               # not the raw ISO UTC text
        switch = page.locator("#tz-switch")
        assert switch.count() == 1 and switch.inner_text().startswith("zone: Asia/")
        switch.click()
        assert step.inner_text() == shown(iso, 0) and switch.inner_text() == "zone: UTC"

        open_(page, site, q="program:sendmail")                   # the setting holds on search
        assert page.locator("#tz-switch").count() == 1            # its own switch, not two
        cell = page.locator("#hits tr.hit td.c-timestamp time").first
        assert cell.inner_text() == shown(cell.get_attribute("datetime"), 0)

        page.goto(site["base"] + "/dlq")
        when = page.locator("#letters time.t").first
        assert when.inner_text() == shown(when.get_attribute("datetime"), 0)
        page.click("#tz-switch")                                  # back to the zone, here
        assert when.inner_text() == shown(when.get_attribute("datetime"), 5.5)
        page.goto(site["base"] + "/trace/" + qid)
        assert page.locator(".timeline .when time.t").first.inner_text() == shown(iso, 5.5)

        page.goto(site["base"] + "/health")                       # a page without times
        assert page.locator("#tz-switch").inner_text().startswith("zone: Asia/")
        shot(page, "zone-health")
    finally:
        dlq.purge()
        client.close()


@pytest.mark.parametrize("window,pattern,at_least", [
    (("2013-05-15T02:10:00Z", "2013-05-15T02:11:00Z"), r"^(May 15 )?\d\d:\d\d:\d\d$", 4),
    (("2013-05-15T02:10:00Z", "2013-05-15T02:20:00Z"), r"^(May 15 )?\d\d:\d\d$", 4),
    (("2013-05-14T00:00:00Z", "2013-05-17T00:00:00Z"), r"^(May \d\d )?\d\d:\d\d$", 4),
    (("2013-03-01T00:00:00Z", "2013-08-01T00:00:00Z"), r"^(Mar|Apr|May|Jun|Jul|Aug)( \d+)?(, 2013)?$", 4),
    (("2009-01-01T00:00:00Z", "2016-01-01T00:00:00Z"), r"^20(09|1\d)$", 5),
])
def test_the_histogram_axis_reads_at_every_zoom(page, site, window, pattern, at_least):
    page.evaluate("() => localStorage.setItem('logpipe.zone', 'utc')")
    open_(page, site, **{"from": window[0], "to": window[1]})
    ticks = page.locator("#axis .tick")
    labels = ticks.all_inner_texts()
    assert len(labels) >= at_least, labels
    assert all(re.match(pattern, t) for t in labels), labels
    boxes = [ticks.nth(i).bounding_box() for i in range(ticks.count())]
    for a, b in zip(boxes, boxes[1:]):                      # in order, none over the next
        assert a["x"] + a["width"] <= b["x"]
    axis = page.locator("#axis").bounding_box()
    assert all(axis["x"] <= b["x"] and b["x"] + b["width"] <= axis["x"] + axis["width"] + 1
               for b in boxes[:-1])
    if window[0].startswith("2013-05-15T02:10"):
        shot(page, "search-axis")


def test_the_from_placeholder_fits(page, site):
    fits = page.evaluate("""() => ['from', 'to'].every(id => {
        const input = document.getElementById(id);
        const style = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = style.font;
        const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return ctx.measureText(input.placeholder).width <= room;
    })""")
    assert fits


def test_time_picker_relative_absolute_and_now(page, site):
    page.click("#time-picker summary")
    page.fill("#rel-n", "3")
    page.select_option("#rel-unit", "h")
    page.click("#rel-apply")
    page.wait_for_url(re.compile(r"from=now-3h"))
    assert "to" not in query_of(page.url)
    # absolute, from the calendar fields, read in the viewer's zone (+05:30)
    page.click("#time-picker summary")
    page.fill("#abs-from", "2013-05-15T07:30")
    page.fill("#abs-to", "2013-05-15T07:31")
    page.click("#abs-apply")
    page.wait_for_url(re.compile(r"to="))
    q = query_of(page.url)
    assert (q["from"], q["to"]) == ("2013-05-15T02:00:00.000Z", "2013-05-15T02:01:00.000Z")
    assert total(page) == api_count(page, site, **{"from": q["from"], "to": q["to"]}) > 0
    # the picker shows the window it is in, in the chosen zone
    page.click("#time-picker summary")
    assert page.input_value("#abs-from") == "2013-05-15T07:30"
    page.click("#tz-switch")
    assert page.input_value("#abs-from") == "2013-05-15T02:00"
    # "end now": the same start, the end at the present
    page.click("#to-now")
    page.wait_for_url(lambda url: "to=" not in url)
    assert query_of(page.url)["from"] == "2013-05-15T02:00:00.000Z"
    assert total(page) == api_count(page, site, **{"from": "2013-05-15T02:00:00.000Z"})


def test_auto_refresh_reloads_the_same_view(page, site):
    page.clock.install()
    open_(page, site, q="program:sendmail")
    page.select_option("#refresh", "10s")
    page.wait_for_url(re.compile(r"refresh=10s"))
    assert query_of(page.url)["q"] == "program:sendmail"
    assert page.input_value("#refresh") == "10s"
    page.evaluate("() => { window.__before = 1; }")
    page.clock.run_for(9000)
    assert page.evaluate("() => window.__before") == 1     # not yet
    with page.expect_navigation():
        page.clock.run_for(2000)
    assert page.evaluate("() => window.__before") is None  # reloaded
    assert query_of(page.url)["refresh"] == "10s"
    page.select_option("#refresh", "")
    page.wait_for_url(lambda url: "refresh" not in url)


# ------------------------------------------------------------------------------------ values
def test_own_host_first_and_received_at_as_a_time(page, site):
    headers = page.locator("#hits thead th").all_inner_texts()
    assert headers[1:3] == ["@timestamp", "logsource"]
    open_(page, site, q="program:sendmail")
    page.locator("#hits tr.hit button.expand").first.click()
    row = page.locator(".detail tr[data-field='received_at']")
    row.wait_for()
    raw = row.get_attribute("data-raw")
    stamp = datetime.fromtimestamp(float(raw), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert row.locator("time").inner_text() == local(stamp, 5.5)


def test_filter_for_out_and_exists_on_every_value(page, site):
    everything = total(page)
    cell = page.locator("#hits tr.hit td.c-logsource[data-whole]").first
    value = cell.evaluate("td => td.firstChild.textContent")
    cell.hover()
    cell.locator("a.plus").click()
    page.wait_for_url(re.compile(r"q=logsource"))
    assert query_of(page.url)["q"] == f'logsource:"{value}"'
    kept = total(page)
    assert kept == api_count(page, site, q=f'logsource:"{value}"') > 0
    # filter out, from an expanded row's fields
    page.locator("#hits tr.hit button.expand").first.click()
    program = page.locator(".detail tr[data-field='program']")
    name = program.get_attribute("data-raw")
    program.locator("td.fvalue").hover()
    program.locator("a.minus").click()
    page.wait_for_url(re.compile(r"NOT"))
    assert query_of(page.url)["q"] == f'(logsource:"{value}") AND NOT program:"{name}"'
    assert total(page) == api_count(page, site, q=query_of(page.url)["q"]) < kept
    # exists, from the field list
    page.goto(site["base"] + "/")
    page.locator('#fields li[data-field="relay"] a.exists').click()
    page.wait_for_url(re.compile(r"_exists_"))
    assert query_of(page.url)["q"] == "_exists_:relay"
    assert 0 < total(page) == api_count(page, site, q="_exists_:relay") < everything
    shot(page, "search-value-actions")


def test_trailing_dot_hosts_count_as_one(page, site):
    open_(page, site, q="qid:d0tt3dQ*")
    page.locator('#fields li[data-field="relay"] .field-name').click()
    values = page.locator('#fields li[data-field="relay"] li.top-value')
    values.first.wait_for()
    assert values.count() == 1
    assert values.first.locator(".v").inner_text() == "mx.example.net"
    assert values.first.locator(".n").inner_text().startswith("2 ")
    page.locator("#hits tr.hit button.expand").last.click()  # the older: logged with the dot
    assert page.locator(".detail tr[data-field='relay_raw']").get_attribute("data-raw") == \
        "mx.example.net."


# ------------------------------------------------------------------------------ saved searches
def test_save_list_open_rename_delete(page, site):
    open_(page, site, q="program:sendmail", **{"from": "2013-05-15T02:00:00Z",
                                               "to": "2013-05-15T03:00:00Z"},
          columns="@timestamp,qid,relay", sort="asc")
    view = page.url
    page.click("#saved summary")
    page.fill("#save-name", "sendmail, oldest first")
    page.click("#save-search")
    item = page.locator('#saved-list li[data-name="sendmail, oldest first"]')
    item.wait_for()
    # the same name again is refused unless replacing
    page.fill("#save-name", "sendmail, oldest first")
    page.click("#save-search")
    page.locator("#saved-status.bad").wait_for()
    assert "already" in page.locator("#saved-status").inner_text()
    saved = site["home"] / "ui-saved-searches.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    page.goto(site["base"] + "/")
    page.click("#saved summary")
    page.locator('#saved-list li[data-name="sendmail, oldest first"] a.saved-link').click()
    page.wait_for_url(re.compile(r"sort=asc"))
    assert query_of(page.url) == query_of(view)             # the view, exactly
    assert page.locator("#hits thead th").all_inner_texts()[1:] == ["@timestamp", "qid", "relay"]
    assert page.locator("#sort").inner_text() == "oldest first"
    page.click("#saved summary")
    page.locator('#saved-list li[data-name="sendmail, oldest first"] button.rename').click()
    page.fill("#saved-list .rename-input", "mail <script>x</script>")
    page.click("#saved-list .rename-ok")
    renamed = page.locator("#saved-list li a.saved-link", has_text="mail <script>x</script>")
    renamed.wait_for()                                     # text, not markup
    shot(page, "search-saved")
    page.locator('#saved-list li[data-name="mail <script>x</script>"] button.delete').click()
    page.locator('#saved-list li[data-name="mail <script>x</script>"] button.delete.armed').click()
    page.locator("#saved-list li.none").wait_for()
    assert orjson.loads(saved.read_bytes()) == {"searches": []}
    # a change without the page's CSRF token is refused
    r = page.request.post(site["base"] + "/api/saved", data={"name": "x"})
    assert r.status == 403


# ------------------------------------------------------------------------------------ export
def _download(page, button: str) -> bytes:
    with page.expect_download() as info:
        page.click(button)
    return Path(info.value.path()).read_bytes()


def test_export_csv_and_ndjson_of_the_whole_result(page, site):
    open_(page, site, q="*", columns="@timestamp,host,message")
    expected = api_count(page, site, q="*")
    assert expected > 100                                   # more than one page of hits
    body = _download(page, "#export-csv").decode()
    rows = list(csv.reader(io.StringIO(body)))
    # a header is defused as any cell (a field name comes from the events too)
    assert rows[0] == ["'@timestamp", "host", "message"]
    assert len(rows) == expected + 1
    formula = [r for r in rows if r[1] == "evil"]
    assert formula and formula[0][2] == "'" + FORMULA       # defused for spreadsheets
    assert page.locator("#export-status").inner_text() == f"exported {expected} events"
    lines = _download(page, "#export-ndjson").decode().splitlines()
    docs = [orjson.loads(line) for line in lines]
    assert len(docs) == expected and next(iter(docs[0])) == "@timestamp"
    assert {d["message"] for d in docs} >= {FORMULA}
    shot(page, "search-export")


def test_export_shows_progress_and_cancels(page, site):
    held = []
    page.route("**/api/export*", lambda route: held.append(route))
    page.click("#export-csv")
    from playwright.sync_api import expect

    # a locator's expectation, not a JavaScript predicate: the page's CSP refuses eval
    expect(page.locator("#export-status")).to_have_text(re.compile(r"^exporting"), timeout=30_000)
    assert page.locator("#export-progress").is_visible()
    assert page.locator("#export-csv").is_disabled()
    page.click("#export-cancel")
    page.locator("#export-status.cancelled").wait_for()
    assert page.locator("#export-status").inner_text() == "export cancelled"
    assert not page.locator("#export-progress").is_visible()
    assert page.locator("#export-csv").is_enabled()
    page.unroute("**/api/export*")
    for route in held:
        try:
            route.abort()
        except Exception:  # the request is gone already (cancelled)
            pass
