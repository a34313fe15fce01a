"""The Messages view, the report page and the trace's recipient states (issue 23), on a real
embedded store filled by the pipeline's own code; hostile log text stays text."""

from __future__ import annotations

import pytest

from logpipe.indexer.messages import keep
from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from logpipe.store.sqlite import SqliteStore
from starlette.testclient import TestClient

from tests.fixtures.elasticsearch import es_loaded
from tests.support.web import HOSTILE, mail_events

pytestmark = pytest.mark.integration
TOKEN = "messages-view-token-0123456789abcdef"


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def store(request, tmp_path_factory):
    """The same mail events and their records on each store (the real ES node: the view and
    its facets must read both stores the same way)."""
    events = mail_events(1500, hostile=True)
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("msgweb") / "events.db")
        sink = SqliteStore(url)
        sink.prepare()
        assert all(o.done for o in sink.write(events))
        keep(sink, events)
        records = list(sink.stream_messages("*"))
        sink.close()
        yield url, records
        return
    from logpipe.store.elasticsearch import ElasticsearchStore

    url = request.getfixturevalue("es_url")
    with es_loaded(url, events):
        sink = ElasticsearchStore(url)
        keep(sink, events)
        sink.refresh_messages()
        records = list(sink.stream_messages("*"))
        sink.close()
        yield url, records


@pytest.fixture
def web(store):
    client = TestClient(create_app(Data(store[0]), TOKEN))
    r = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303
    with client:
        yield client


def test_messages_view_lists_records_with_facets(web, store):
    records = store[1]
    r = web.get("/messages", params={"q": "status:bounced"})
    assert r.status_code == 200
    bounced = [x for x in records if x["status"] == "bounced"]
    assert bounced and f"{len(bounced):,} message" in r.text
    assert 'id="facet-status"' in r.text and 'id="facet-domain"' in r.text
    assert f'/trace/{bounced[0]["qid"]}' in r.text
    api = web.get("/api/messages", params={"q": "status:bounced", "size": 5}).json()
    assert api["total"] == len(bounced) and len(api["messages"]) == 5


def test_hostile_sender_is_escaped(web):
    r = web.get("/messages", params={"q": "qid:h0st1leQ000001"})
    assert r.status_code == 200
    assert "alert(1)</script>" not in r.text and "alert(1)&lt;/script&gt;" in r.text
    assert "h0st1leQ000001" in HOSTILE


def test_trace_shows_final_states_and_unknown_handoffs(web, store):
    expired = next(x for x in store[1] if x["status"] == "expired" and x["next"])
    r = web.get(f"/trace/{expired['qid']}")
    assert r.status_code == 200
    assert "expired" in r.text and "not in the store" in r.text
    bounced = next(x for x in store[1] if any(rc["reason"] == "User unknown"
                                              for rc in x["recipients"]))
    page = web.get(f"/trace/{bounced['qid']}").text
    assert "5.1.1" in page and "User unknown" in page


def test_bad_query_is_a_400_with_the_reason(web):
    r = web.get("/messages", params={"q": "status:(bounced"})
    assert r.status_code == 400 and 'class="error"' in r.text


def test_report_page(web):
    r = web.get("/messages/report", params={"since": "36500d"})
    assert r.status_code == 200 and "Grand totals" in r.text and "Bounce reasons" in r.text
