"""No query freezes the page (issue 21): store queries have a time budget and stop when their
client goes; heavy queries cannot starve the rest; reads do not queue behind one lock.

Against the real embedded store with 20,000 generated mail lines, a real ``logpipe ui`` process
(and Valkey for its /health), and the Elasticsearch node for the budget on that store. The one
latency bound is the issue's own: /health and a term search under 500 ms p95 while the hostile
load runs (figures printed; bench/hostile_query_bench.py measures the same)."""

from __future__ import annotations

import threading
import warnings

import pytest

from logpipe.common.cli import main as cli_main
from logpipe.common.errors import QueryCancelled, QueryTooExpensive
from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from logpipe.search.web.gate import QueryGate, looks_heavy
from logpipe.store import open_store
from logpipe.store.base import SearchRequest
from logpipe.store.budget import Budget, applied
from logpipe.store.sqlite import SqliteStore
from tests.support import hostile
from tests.support.web import mail_events, start_ui, stop_ui

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration
TOKEN = "test-token-0123456789abcdef"
LINES = 20_000
BOUND_MS = 500.0


@pytest.fixture(scope="module")
def events():
    return mail_events(LINES)


@pytest.fixture(scope="module")
def store_url(events, tmp_path_factory):
    url = "sqlite:///" + str(tmp_path_factory.mktemp("budget") / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    assert all(o.done for o in sink.write(events))
    sink.refresh()
    sink.close()
    return url


def test_the_hostile_query_runs_out_of_budget_with_what_to_narrow(store_url):
    sink = open_store(store_url)
    try:
        with applied(Budget(1, knob="--timeout 60")):
            with pytest.raises(QueryTooExpensive) as caught:
                sink.search_page(SearchRequest(hostile.HOSTILE_QUERY, limit=100))
        text = str(caught.value)
        assert text.startswith("query too expensive: ") and "narrow it" in text
        assert "--timeout 60" in text and "\n" not in text
        # the same store answers the next query (the interrupted one left nothing behind)
        with applied(Budget(30)):
            assert sink.count(SearchRequest("program:sendmail")) > 0
    finally:
        sink.close()


def test_a_cancelled_budget_stops_a_running_query(store_url):
    sink = open_store(store_url)
    budget = Budget(60)
    outcome: dict = {}

    def run():
        try:
            with applied(budget):
                sink.search_page(SearchRequest(hostile.HOSTILE_QUERY, limit=100))
            outcome["done"] = True
        except QueryCancelled as exc:
            outcome["cancelled"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    threading.Timer(0.3, budget.cancel).start()
    worker.join(timeout=30)  # generous: the cancel lands within milliseconds
    try:
        assert not worker.is_alive() and "client went away" in outcome.get("cancelled", "")
    finally:
        sink.close()


def test_reads_run_side_by_side(store_url):
    """A term search finishes while a heavy query on the same store object is still running
    (one connection per reading thread: no lock between them)."""
    sink = open_store(store_url)
    budget = Budget(60)
    heavy_started, term_done = threading.Event(), threading.Event()
    seen: dict = {}

    def heavy():
        heavy_started.set()
        try:
            with applied(budget):
                sink.search_page(SearchRequest(hostile.HOSTILE_QUERY, limit=100))
        except QueryCancelled:
            seen["heavy_running_when_term_done"] = term_done.is_set()

    worker = threading.Thread(target=heavy)
    worker.start()
    heavy_started.wait()
    page = sink.search_page(SearchRequest("program:sendmail", limit=10))
    term_done.set()
    budget.cancel()
    worker.join(timeout=30)
    sink.close()
    assert page.hits and seen.get("heavy_running_when_term_done") is True


def test_cli_timeout_is_one_line(store_url, capsys):
    assert cli_main(["search", "--store", store_url, "--timeout", "1",
                     hostile.HOSTILE_QUERY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("logpipe: error: query too expensive: ") and "\n" not in err
    assert "1 s budget" in err and "--timeout" in err
    assert cli_main(["search", "--store", store_url, "--timeout", "30", "--count",
                     "program:sendmail"]) == 0
    assert int(capsys.readouterr().out) > 0


def test_heavy_shapes():
    assert looks_heavy("*a* *e*") and looks_heavy("qid:*abc") and looks_heavy("f?o")
    assert not looks_heavy("program:sendmail") and not looks_heavy("deferred")
    assert not looks_heavy("qid:r4F*") and not looks_heavy("") and not looks_heavy("(((")


def test_api_and_page_answer_too_expensive_and_the_tail_does_not_hang(store_url):
    app = create_app(Data(store_url), TOKEN, gate=QueryGate(timeout=1))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as web:
        r = web.get("/api/search", params={"q": hostile.HOSTILE_QUERY}, headers=auth)
        assert r.status_code == 422 and r.json()["error"].startswith("query too expensive: ")
        assert "--query-timeout" in r.json()["error"]
        r = web.get("/", params={"q": hostile.HOSTILE_QUERY}, headers=auth)
        assert r.status_code == 422 and "query too expensive" in r.text
        r = web.get("/api/tail", params={"q": hostile.HOSTILE_QUERY}, headers=auth)
        assert r.status_code == 422 and "query too expensive" in r.json()["error"]
        r = web.get("/api/search", params={"q": "program:sendmail"}, headers=auth)
        assert r.status_code == 200 and r.json()["hits"]


@pytest.mark.slow
def test_health_and_term_search_stay_fast_under_a_hostile_load(store_url, redis_url):
    """The issue's load: the 363-character AND of 80 wildcards, and 100 requests of ``*a* *e*``
    each abandoned by its client after a second, against ``logpipe ui`` (a 2 s budget);
    /health and a term search stay under 500 ms p95 meanwhile."""
    # A budget well under what the hostile query needs here (5-10 s): how long a query takes
    # depends on the machine, so the test gives the page a budget it cannot meet.
    proc, address = start_ui("--store", store_url, "--redis", redis_url, "--query-timeout", "2")
    try:
        figures = hostile.run(address, abandoned=100, abandon_after=1.0, spread=5.0)
    finally:
        stop_ui(proc)
    print("\n" + hostile.report(figures))
    assert figures["statuses"]["health"] == {200}
    assert figures["statuses"]["term"] == {200}
    assert len(figures["load"]["term"]) >= 20
    for name in ("health", "term"):
        p95 = hostile.pct(figures["load"][name], 95)
        assert p95 < BOUND_MS, f"{name} p95 {p95:.0f} ms under load\n{hostile.report(figures)}"
    answer = figures["hostile"]
    # stopped by its budget, or (a machine fast enough) answered within it: never longer
    assert ((answer["status"] == 422 and "query too expensive" in answer["body"])
            or (answer["status"] == 200 and answer["seconds"] < 2 + 1)), answer
    assert answer["seconds"] < 2 + 10  # the budget, and generous slack: never a hang


def test_elasticsearch_searches_carry_the_budget(es_url):
    from tests.fixtures.elasticsearch import es_loaded

    with es_loaded(es_url, mail_events(400)) as url:
        sink = open_store(url)
        try:
            request = SearchRequest("program:sendmail", limit=20)
            plain = sink.search_page(request)
            with applied(Budget(30)):   # timeout in the body, a deadline, an opaque id
                budgeted = sink.search_page(request)
                assert sink.count(request) == plain.total
                assert sink.histogram(request, "1h")
                assert sink.top(request, "host", 5)
            assert [e["_id"] for e in budgeted.hits] == [e["_id"] for e in plain.hits]
            spent = Budget(30)
            spent.cancel()
            with applied(spent), pytest.raises(QueryCancelled):
                sink.search_page(request)
        finally:
            sink.close()
