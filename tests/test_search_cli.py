"""``logpipe search / trace / prune`` through the root command (search/cli.py)."""

from __future__ import annotations

import json

import orjson
import pytest

from logpipe.common.cli import main
from logpipe.search import render
from logpipe.search.cli import store_url
from logpipe.store.base import Event, SearchRequest
from logpipe.store.sqlite import SqliteStore
from tests.support.stores import search as store_search


def _events():
    lines = [
        ("10:00:01", "j061bW9V000809", "from=<a@x.org>, size=2039, nrcpts=1, relay=localhost",
         {"from": "<a@x.org>", "size": 2039, "relay": "localhost"}),
        ("10:00:02", "j061bW9V000809", "to=<b@y.org>, delay=00:00:01, relay=mx.y.org. "
         "[10.0.0.1], stat=Sent (ok)", {"to": "<b@y.org>", "delay": "00:00:01",
                                        "relay": "mx.y.org", "stat": "Sent (ok)"}),
        ("10:00:03", "j061bW9V000809", "to=<c@z.org>, delay=00:00:09, relay=mx.z.org. "
         "[10.0.0.2], stat=Deferred: Connection refused",
         {"to": "<c@z.org>", "delay": "00:00:09", "relay": "mx.z.org",
          "stat": "Deferred: Connection refused"}),
        ("10:05:00", "k0000000000001", "from=<d@x.org>, size=100, relay=localhost",
         {"from": "<d@x.org>", "size": 100, "relay": "localhost"}),
    ]
    out = []
    for i, (t, qid, rest, fields) in enumerate(lines):
        doc = {"@timestamp": f"2026-11-28T{t}.000Z", "host": "mail1", "type": "mail",
               "program": "sendmail", "qid": qid,
               "message": f"Nov 28 {t} mail1 sendmail[1]: {qid}: {rest}", **fields}
        out.append(Event(f"e{i}", doc))
    out.append(Event("e9", {"@timestamp": "2026-11-28T11:00:00.000Z", "host": "web1",
                            "type": "syslog", "program": "cron", "message": "tab\there"}))
    return out


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    sink.write(_events())
    sink.close()
    monkeypatch.setenv("LOGPIPE_STORE_URL", url)
    return url


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_store_url_resolution(tmp_path, monkeypatch):
    from logpipe.common.config import home

    assert store_url("sqlite:///x.db") == "sqlite:///x.db"
    assert store_url(None) == "sqlite:///" + str(home() / "events.db")
    home().mkdir(parents=True, exist_ok=True)
    (home() / "services.json").write_text(json.dumps({"store_url": "http://127.0.0.1:9", "ready": True}))
    assert store_url(None) == "http://127.0.0.1:9"
    monkeypatch.setenv("LOGPIPE_STORE_URL", "sqlite:////env.db")
    assert store_url(None) == "sqlite:////env.db"
    assert store_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_search_prints_tab_separated_rows_when_piped(store, capsys):
    code, out, _ = run(capsys, "search", "program:sendmail AND qid:j06*")
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == ["2026-11-28T10:00:03.000Z", "2026-11-28T10:00:02.000Z",
                                    "2026-11-28T10:00:01.000Z"]
    assert rows[0][1:3] == ["mail1", "mail"] and "Deferred" in rows[0][3]


def test_search_fields_limit_and_order(store, capsys):
    code, out, _ = run(capsys, "search", "*", "--fields", "qid,size", "--limit", "2", "--asc")
    assert code == 0
    assert out.splitlines() == ["j061bW9V000809\t2039", "j061bW9V000809\t"]


def test_search_query_words_may_be_separate_arguments(store, capsys):
    code, out, _ = run(capsys, "search", "relay:localhost", "AND", "size:<1000", "-f", "qid")
    assert (code, out) == (0, "k0000000000001\n")


def test_values_with_tabs_stay_on_one_line(store, capsys):
    # a tab in a value is shown escaped (as every control character is): one column, one line
    code, out, _ = run(capsys, "search", "program:cron", "-f", "message")
    assert out == "tab\\there\n"


def test_search_json_is_the_stored_document_with_timestamp_first(store, capsys):
    code, out, _ = run(capsys, "search", "qid:k0000000000001", "--json")
    docs = [orjson.loads(line) for line in out.splitlines()]
    assert len(docs) == 1
    assert list(docs[0])[0] == "@timestamp" and "_id" not in docs[0]
    assert docs[0]["size"] == 100 and docs[0]["from"] == "<d@x.org>"


def test_time_window(store, capsys):
    code, out, _ = run(capsys, "search", "--from", "2026-11-28T10:00:02Z",
                       "--to", "2026-11-28T10:05", "-f", "@timestamp")
    assert out.splitlines() == ["2026-11-28T10:00:03.000Z", "2026-11-28T10:00:02.000Z"]


def test_histogram_when_piped(store, capsys):
    code, out, _ = run(capsys, "search", "type:mail", "--histogram", "5m")
    assert (code, out) == (0, "2026-11-28T10:00:00Z\t3\n2026-11-28T10:05:00Z\t1\n")
    code, out2, _ = run(capsys, "search", "type:mail", "--histogram", "5m", "--json")
    assert out2 == out


def test_top_values_when_piped(store, capsys):
    code, out, _ = run(capsys, "search", "--top", "relay")
    assert (code, out) == (0, "localhost\t2\nmx.y.org\t1\nmx.z.org\t1\n")
    code, out, _ = run(capsys, "search", "--top", "host", "--limit", "1")
    assert out == "mail1\t4\n"


def test_trace_shows_the_message_and_a_summary(store, capsys):
    code, out, _ = run(capsys, "trace", "j061bW9V000809")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].startswith("2026-11-28T10:00:01.000Z\tmail1\tsendmail\t")
    assert lines[-1] == ("qid=j061bW9V000809 from=<a@x.org> to=<b@y.org>,<c@z.org> "
                         "relay=mx.z.org stat=Deferred: Connection refused delay=00:00:09 "
                         "events=3")


def _hand_off(url):
    """j061bW9V000809's mail handed to relay2 (queue id m0000000000042), delivered there."""
    sink = SqliteStore(url)
    sink.write([
        Event("h1", {"@timestamp": "2026-11-28T10:00:04.000Z", "host": "mail1",
                     "program": "sendmail", "qid": "j061bW9V000809", "to": "<e@w.org>",
                     "relay": "relay2", "stat": "Sent (m0000000000042 Message accepted for delivery)",
                     "message": "j061bW9V000809: to=<e@w.org>, stat=Sent (m0000000000042 Message "
                                "accepted for delivery)"}),
        Event("h2", {"@timestamp": "2026-11-28T10:00:05.000Z", "host": "relay2",
                     "program": "sendmail", "qid": "m0000000000042", "to": "<e@w.org>",
                     "relay": "mx.w.org", "stat": "Sent (ok)",
                     "message": "m0000000000042: to=<e@w.org>, relay=mx.w.org, stat=Sent (ok)"}),
    ])
    sink.close()


def test_trace_follows_the_hand_off_to_the_next_queue_id(store, capsys):
    _hand_off(store)
    code, out, _ = run(capsys, "trace", "j061bW9V000809")
    lines = out.splitlines()
    assert code == 0
    assert lines[4].startswith("qid=j061bW9V000809 ") and lines[4].endswith(" events=4")
    assert lines[5] == "handed off to m0000000000042"
    assert lines[6].startswith("2026-11-28T10:00:05.000Z\trelay2\tsendmail\t")
    assert lines[7] == ("qid=m0000000000042 from=- to=<e@w.org> relay=mx.w.org stat=Sent (ok) "
                        "delay=- events=1")


def test_trace_json_is_every_event_of_the_chain_one_per_line(store, capsys):
    _hand_off(store)
    code, out, err = run(capsys, "trace", "j061bW9V000809", "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [d["qid"] for d in docs] == ["j061bW9V000809"] * 4 + ["m0000000000042"]
    assert "handed off to m0000000000042" in err.splitlines()


def test_trace_of_an_unknown_id(store, capsys):
    code, out, err = run(capsys, "trace", "nosuchqid")
    assert code == 1 and out == "" and "no events with qid nosuchqid" in err


@pytest.mark.parametrize("args,message", [
    (["search", "a AND (b"], "position 8"),
    (["search", "foo~"], "fuzzy"),
    (["search", "--from", "last tuesday"], "--from"),
    (["search", "--histogram", "5x"], "invalid interval"),
    (["search", "--histogram", "1m", "--top", "host"], "either"),
    (["search", "--store", "ftp://x"], "unknown store URL"),
    (["search", "--store", "sqlite:////nonexistent/dir/e.db"], "nothing has been indexed"),
    (["prune"], "--older-than"),
    (["prune", "--older-than", "soon"], "30d"),
])
def test_user_mistakes_are_clear_errors_without_traceback(store, capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("logpipe: error:") and message in err
    assert "Traceback" not in err


def test_prune(store, capsys, monkeypatch):
    sink = SqliteStore(store)
    sink.write([Event(f"old{i}", {"@timestamp": f"2026-10-0{i + 1}T00:00:00Z", "message": "old"})
                for i in range(2)])
    sink.close()
    code, out, _ = run(capsys, "prune", "--older-than", "400d")
    assert code == 0 and out.startswith("pruned 0 events")
    monkeypatch.setenv("LOGPIPE_RETENTION", "30d")
    code, out, _ = run(capsys, "prune")
    assert code == 0 and out.startswith("pruned 2 events and 0 message records older than ")
    sink = SqliteStore(store)
    assert store_search(sink, SearchRequest()).total == 5
    assert store_search(sink, SearchRequest(query="old")).total == 0
    sink.close()


def test_terminal_rendering(capsys):
    import io
    from datetime import datetime, timezone

    buf = io.StringIO()
    render.print_events([{"@timestamp": "t", "host": "h", "message": "m"}], ["host", "message"],
                        out=buf, tty=True, total=3)
    assert "host" in buf.getvalue() and "3 hits (showing 1)" in buf.getvalue()
    buf = io.StringIO()
    render.print_histogram([(datetime(2026, 1, 1, tzinfo=timezone.utc), 4),
                            (datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc), 2)], out=buf,
                           tty=True)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("2026-01-01T00:00:00Z 4 ") and "█" in lines[0]
    assert abs(lines[0].count("█") - 2 * lines[1].count("█")) <= 1 and lines[1].count("█") > 5


def test_maintain_builds_what_searches_asked_for_and_named_fields(store, capsys):
    """``logpipe maintain``: a search on a JSON field notes the wish; maintain builds that value
    index and one named with --index, catches up the counts, and says what it did."""
    import sqlite3

    path = store.split("sqlite:///", 1)[1]

    def value_indexes() -> list[str]:
        db = sqlite3.connect(path)
        try:
            return sorted(r[0] for r in db.execute(
                "SELECT sql FROM sqlite_master WHERE name LIKE 'events_jt_%'"))
        finally:
            db.close()

    code, out, _ = run(capsys, "search", "relay:localhost", "--json")
    assert code == 0 and len(out.strip().splitlines()) == 2
    assert value_indexes() == []
    code, out, err = run(capsys, "maintain", "--index", "stat")
    assert code == 0, err
    assert "per-hour counts: 5 events counted" in out
    built = out.strip().splitlines()[-1]
    assert built.startswith("value indexes built: ") and "stat" in built and "relay" in built
    indexes = value_indexes()
    assert len(indexes) == 2 and any('"relay"' in sql for sql in indexes) \
        and any('"stat"' in sql for sql in indexes)
    code, out, _ = run(capsys, "maintain")
    assert code == 0 and "value indexes built: none needed" in out
    assert "per-hour counts: 0 events counted" in out


def test_maintain_refuses_a_field_that_cannot_have_a_value_index(store, capsys):
    code, out, err = run(capsys, "maintain", "--index", "message")
    assert code == 2
    assert "'message' cannot have a value index" in err and "Traceback" not in err
