"""The page's one mapping of failures to answers (search/web/app.py, error_handlers): each
error class its status, the API a JSON {"error"}, the page its HTML, a 503 with retry-after;
over the real app and an embedded store."""

from __future__ import annotations

import warnings

import pytest

from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from logpipe.search.web.gate import QueryGate
from tests.support.stores import one_event_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "errors-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGPIPE_HOME", str(tmp_path / "home"))
    return one_event_store(tmp_path / "events.db")


def test_the_requests_fault_is_400_and_an_absent_broker_503(store_url):
    with TestClient(create_app(Data(store_url), TOKEN)) as web:
        for path in ("/api/search", "/api/histogram", "/api/tail", "/api/export"):
            r = web.get(path, params={"q": "a AND (b"}, headers=AUTH)
            assert r.status_code == 400, (path, r.text)
            assert "position 8" in r.json()["error"] and "retry-after" not in r.headers
        r = web.get("/api/search", params={"size": "many"}, headers=AUTH)
        assert (r.status_code, r.json()) == (400, {"error": "size must be a whole number, "
                                                            "not 'many'"})
        r = web.get("/", params={"q": "a AND (b"}, headers=AUTH)
        assert r.status_code == 400 and "position 8" in r.text and "<html" in r.text.lower()
        r = web.get("/api/dlq/count", headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json() == {"error": "no broker configured: pass --redis"}
        r = web.get("/no/such/page", headers=AUTH)
        assert (r.status_code, r.text) == (404, "not found")


def test_store_work_not_done_is_503_with_retry_after_on_the_api_and_the_page(store_url):
    gate = QueryGate()
    gate.close()          # its store threads are gone: every store request is refused
    with TestClient(create_app(Data(store_url), TOKEN, gate=gate)) as web:
        for path in ("/api/search", "/api/tail", "/api/export", "/api/trace/abc"):
            r = web.get(path, params={"q": "host:h"}, headers=AUTH)
            assert r.status_code == 503, (path, r.text)
            assert r.json() == {"error": "the page is shutting down"}
            assert r.headers["retry-after"] == "2"
        r = web.get("/", params={"q": "host:h"}, headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "the page is shutting down" in r.text
