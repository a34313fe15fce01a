"""Issue 21, item 5: the embedded store's value indexes (JSON_INDEX_LIMIT shared slots) are
built for searches only on fields the store holds, and one asked for by name (``logpipe
maintain --index``) is pinned: it takes an automatic one's place when the slots are full and
no wish ever evicts it."""

from __future__ import annotations

import sqlite3

import pytest

from logpipe.common.errors import QueryError
from logpipe.store.base import Event, SearchRequest
from logpipe.store.sqlite import SqliteStore
from logpipe.store.sqlite.schema import JSON_INDEX_LIMIT, json_index_name
from tests.support.stores import search as store_search


def ev(i: int, **fields) -> Event:
    doc = {"@timestamp": f"2026-11-28T10:{i % 60:02d}:00.000Z", "message": f"line {i}",
           "host": "mail1", "type": "mail", "tags": [], "relay": f"mx{i % 3}", **fields}
    return Event(f"id-{i}", doc)


def indexed_fields(path: str, fields) -> set[str]:
    db = sqlite3.connect(path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    return {f for f in fields if json_index_name(f) in names}


def idle(sink: SqliteStore) -> None:
    """What an idle indexer does: maintenance steps until nothing is left."""
    steps = 0
    while sink.maintain():
        steps += 1
        assert steps < 500


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i) for i in range(40)])
    yield sink, path
    sink.close()


GHOSTS = [f"zz{i}" for i in range(40)]


def test_a_search_of_fields_that_do_not_exist_builds_no_index(store):
    sink, path = store
    query = " OR ".join(f"{f}:1" for f in GHOSTS) + " OR relay:mx1"
    assert store_search(sink, SearchRequest(query=query)).total > 0
    assert set(sink.wanted_fields()) == set(GHOSTS) | {"relay"}
    idle(sink)
    assert indexed_fields(path, GHOSTS + ["relay"]) == {"relay"}  # no slot for a ghost
    assert set(sink.wanted_fields()) == set(GHOSTS)  # still wanted, should they appear
    # the maintain --index of the issue is not refused
    assert sink.promote(["msgid"]) == ["msgid"] and "msgid" in sink.pinned_fields()
    # one appears: the next idle moment indexes it (looking only at the new rows)
    sink.write([ev(100, zz7=1)])
    idle(sink)
    assert indexed_fields(path, GHOSTS) == {"zz7"}
    assert store_search(sink, SearchRequest(query="zz7:1")).total == 1


def test_a_pinned_index_takes_an_automatic_slot_and_is_never_evicted(store):
    sink, path = store
    auto = [f"a{i:02}" for i in range(JSON_INDEX_LIMIT)]
    sink.write([ev(200 + i, **{f: i}) for i, f in enumerate(auto)])
    store_search(sink, SearchRequest(query=" OR ".join(f"{f}:1" for f in auto)))
    idle(sink)
    assert indexed_fields(path, auto) == set(auto)  # every slot taken by what searches wanted
    # a pinned one (maintain --index) takes an automatic one's place
    assert sink.promote(["relay"]) == ["relay"]
    assert len(indexed_fields(path, auto)) == JSON_INDEX_LIMIT - 1
    expected = sum(1 for i in list(range(40)) + list(range(200, 200 + JSON_INDEX_LIMIT))
                   if i % 3 == 2)
    assert store_search(sink, SearchRequest(query="relay:mx2")).total == expected
    # a wish never evicts it, nor any other index
    sink.write([ev(300, newfield="x")])
    store_search(sink, SearchRequest(query="newfield:x"))
    idle(sink)
    assert indexed_fields(path, ["relay", "newfield"]) == {"relay"}
    assert "newfield" in sink.wanted_fields()


def test_when_every_slot_is_pinned_another_pin_is_refused_until_one_is_unpinned(store):
    sink, path = store
    pinned = [f"p{i:02}" for i in range(JSON_INDEX_LIMIT)]
    assert sorted(sink.promote(pinned)) == pinned  # pinned: built though no event holds them
    with pytest.raises(QueryError, match="pinned"):
        sink.promote(["relay"])
    assert indexed_fields(path, pinned + ["relay"]) == set(pinned)
    assert sink.unpin("p05") is True
    assert sink.promote(["relay"]) == ["relay"]
    assert indexed_fields(path, pinned + ["relay"]) == (set(pinned) - {"p05"}) | {"relay"}


def test_maintain_unpins_by_name_as_the_refusal_says(store):
    """The refusal names the command that helps (not a Python method) and what is pinned;
    `logpipe maintain --unpin FIELD` does it."""
    from typer.testing import CliRunner

    from logpipe.search.cli import maintain_app

    sink, path = store
    pinned = [f"p{i:02}" for i in range(JSON_INDEX_LIMIT)]
    sink.promote(pinned)
    with pytest.raises(QueryError) as refused:
        sink.promote(["relay"])
    assert "maintain --unpin FIELD" in str(refused.value) and "p00, p01" in str(refused.value)
    sink.close()
    run = CliRunner().invoke(maintain_app, ["--store", f"sqlite:///{path}", "--unpin", "p05",
                                            "--unpin", "nosuch", "--index", "relay"])
    assert run.exit_code == 0, run.output
    assert "value index of p05: unpinned" in run.output
    assert "value index of nosuch: was not pinned" in run.output
    assert indexed_fields(path, pinned + ["relay"]) == (set(pinned) - {"p05"}) | {"relay"}
