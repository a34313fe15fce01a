"""The page's Alerts view in Debian's chromium (Playwright, executable_path): an alert fired by
the evaluator (injected clock, real embedded store) arrives in a real local SMTP server's
mailbox and shows on the page, which acknowledges it, mutes its rule, adds a rule and shows the
history; a change without the page's CSRF token is refused. On each store in turn: the embedded
one, then the session's Elasticsearch node (cleaned before and after: it is shared)."""

from __future__ import annotations

import os
import shutil

import pytest

from logpipe.search.alerts.book import AlertBook
from logpipe.search.alerts.daemon import AlertsDaemon
from logpipe.store import open_store
from tests.integration.test_alerts import T0, Clock, bounce, sent
from tests.support.receivers import smtp_server
from tests.support.web import start_ui, stop_ui

CHROMIUM = os.environ.get("LOGPIPE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./run tests` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


EVENTS = [bounce(i, 20 * i) for i in range(5)] + [sent(i, 20 * i + 3) for i in range(5)]


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path / "events.db")
        sink = open_store(url)
        sink.prepare()
        assert all(o.done for o in sink.write(EVENTS))
        sink.close()
        yield url
        return
    from tests.fixtures.elasticsearch import es_loaded
    with es_loaded(request.getfixturevalue("es_url"), EVENTS) as url:
        yield url


def test_alert_mail_arrives_and_the_page_acknowledges_mutes_and_adds(tmp_path, browser,
                                                                     store_url):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    url = store_url
    sink = open_store(url)
    with smtp_server() as (port, box):
        (home / "alerts.toml").write_text(
            '[evaluate]\npage_url = "http://127.0.0.1:5601/alerts"\n'
            f'[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
            'from = "logpipe@example.org"\nto = ["postmaster@example.org"]\n'
            '[[rules]]\nname = "bounce-spike"\nquery = "dsn:5*"\nwindow = "15m"\nthreshold = 3\n'
            '[[rules]]\nname = "quiet-mx9"\nkind = "silence"\nhost = "mx9"\nwindow = "15m"\n')
        os.environ["LOGPIPE_HOME"], saved = str(home), os.environ.get("LOGPIPE_HOME")
        try:
            book = AlertBook()
            daemon = AlertsDaemon(sink, None, book, clock=Clock(T0 + 100))
            fired = daemon.once()
        finally:
            os.environ.pop("LOGPIPE_HOME") if saved is None else \
                os.environ.update(LOGPIPE_HOME=saved)
        assert sorted(n.rule for n in fired.notices) == ["bounce-spike", "quiet-mx9"]
        mails = box.wait_for(2)
        subjects = sorted(m["Subject"] for m in mails)
        assert subjects == ["[logpipe] FIRING: bounce-spike", "[logpipe] FIRING: quiet-mx9"]
        spike = next(m for m in mails if "bounce-spike" in m["Subject"])
        assert "5 events of [dsn:5*]" in spike.get_content()
        assert "http://127.0.0.1:5601/alerts" in spike.get_content()

    proc, address = start_ui("--store", url, env={"LOGPIPE_HOME": str(home)})
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a Content-Security-Policy violation (anything inline) shows up as a console error (the
    # refused rule's 400 is a console error too, and expected)
    page.on("console", lambda m: m.type == "error" and ("Content Security Policy" in m.text
                                                        or "Refused" in m.text)
            and errors.append(m.text))
    page.on("dialog", lambda d: d.accept())
    try:
        page.goto(address)
        page.click("nav a[href='/alerts']")
        page.wait_for_url("**/alerts")
        firing = page.locator("#incidents tr.incident")
        assert firing.count() == 2
        row = page.locator("#incidents tr[data-rule='bounce-spike']")
        assert "5 events of [dsn:5*]" in row.inner_text()
        assert "firing (1)" in page.locator("#rules tr[data-rule='bounce-spike'] .state").inner_text()

        row.locator("button.ack").click()
        # the table is drawn again after the click: the cell may be absent for a moment (a
        # locator's expectation, not a JavaScript predicate: the page's CSP refuses eval)
        from playwright.sync_api import expect

        expect(page.locator("#incidents tr[data-rule='bounce-spike'] .acked")).to_contain_text(
            "by ", timeout=30_000)
        assert row.locator("button.ack").count() == 0

        page.locator("#rules tr[data-rule='quiet-mx9'] button.mute").click()
        page.wait_for_selector("#rules tr[data-rule='quiet-mx9'] button.unmute")
        assert "until" in page.locator("#rules tr[data-rule='quiet-mx9'] .muted").inner_text()

        page.click("#new-rule summary")
        page.fill("#rule-name", "deferred")
        page.fill("#rule-query", "stat:Deferred*")
        page.fill("#rule-threshold", "10")
        page.click("#rule-form button[type=submit]")
        page.wait_for_selector("#rules tr[data-rule='deferred']")
        assert "page" in page.locator("#rules tr[data-rule='deferred']").inner_text()

        page.click("#new-rule summary")             # the reload folded the form
        page.fill("#rule-name", "broken")
        page.fill("#rule-query", "program:(sendmail")
        page.click("#rule-form button[type=submit]")
        page.wait_for_selector("#alerts-result.bad")
        assert "broken" in page.locator("#alerts-result").inner_text()

        history = page.locator("#history").inner_text()
        for event in ("firing", "delivered", "acknowledged", "muted", "rule_saved"):
            assert event in history, event
        page.screenshot(path=str(tmp_path / "alerts.png"))
        assert "5 events of [dsn:5*]" in page.locator("#incidents").inner_text()

        # the same change without the page's CSRF token: refused, nothing changed
        forged = page.request.post(address.split("/?")[0] + "/api/alerts/mute",
                                   data={"rule": "bounce-spike", "minutes": 60})
        assert forged.status == 403
        assert not errors, errors
    finally:
        context.close()
        stop_ui(proc)
        sink.close()
    check = AlertBook(home / "alerts.db")
    assert check.muted_until("bounce-spike", T0) is None and check.muted_until("quiet-mx9", T0)
    assert [r.name for r in check.page_rules()] == ["deferred"]
    assert [i["acked_by"] is not None for i in check.incidents() if i["rule"] == "bounce-spike"] == [True]
    check.close()
