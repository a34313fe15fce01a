"""search/trace.py: one message's events by queue id, following hand-offs, on the embedded store."""

from __future__ import annotations

import pytest

from logpipe.search.trace import trace
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore


def _event(n: int, second: int, qid: str, message: str, **fields) -> Event:
    return Event(f"e{n}", {"@timestamp": f"2026-11-28T10:00:{second:02d}.000Z", "host": "mx",
                           "program": "postfix/smtp", "qid": qid, "message": message, **fields})


@pytest.fixture
def sink(tmp_path):
    sink = SqliteStore("sqlite:///" + str(tmp_path / "events.db"))
    sink.prepare()
    yield sink
    sink.close()


def test_hand_offs_are_followed_once_each_even_when_they_loop(sink):
    sink.write([
        _event(1, 1, "AAAAAA1111", "AAAAAA1111: from=<a@x.org>, size=10"),
        _event(2, 2, "AAAAAA1111", "AAAAAA1111: to=<b@y.org>, status=sent (250 2.0.0 Ok: queued as BBBBBB2222)"),
        _event(3, 3, "BBBBBB2222", "BBBBBB2222: to=<b@y.org>, status=sent (250 2.0.0 Ok: queued as AAAAAA1111)"),
        _event(4, 4, "BBBBBB2222", "BBBBBB2222: handed to CCCCCC3333 Message accepted",
               stat="Sent (CCCCCC3333 Message accepted for delivery)"),
    ])
    chain = trace(sink, "AAAAAA1111")
    assert [(qid, [e["_id"] for e in events]) for qid, events in chain] == [
        ("AAAAAA1111", ["e1", "e2"]), ("BBBBBB2222", ["e3", "e4"])]   # CCCCCC3333: not stored


def test_events_of_one_second_keep_their_log_order_and_the_chain_stops_at_at_most(sink):
    # written newest line first: the store alone would give them back in that order
    sink.write([_event(9 - n, 1, "DDDDDD4444", f"line {n}", path="/var/log/mail.log", offset=n * 100)
                for n in reversed(range(5))])
    chain = trace(sink, "DDDDDD4444")
    assert [e["message"] for e in chain[0][1]] == [f"line {n}" for n in range(5)]
    assert len(trace(sink, "DDDDDD4444", at_most=2)[0][1]) == 2


def test_an_unknown_queue_id_is_one_empty_story(sink):
    assert trace(sink, "nosuchqid") == [("nosuchqid", [])]
