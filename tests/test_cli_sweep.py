"""Every command, fed a user's mistakes -- wrong arguments, missing or unusable paths, unknown ids,
dead URLs -- exits non-zero with one message on stderr naming what is wrong (and the file or URL
involved), never a traceback (issues 20.3 / 20.6).

Most cases run in-process through ``logpipe.common.cli.main`` (what the console script runs),
which lets only unexpected exceptions through: such a one fails the test with its traceback.
A few run as real processes: those that wait for a broker that is not up yet (by design: start
order never matters) are read until they say what they wait for, then stopped.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from logpipe.common.cli import COMMANDS, main

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_HTTP = "http://127.0.0.1:1"


@pytest.fixture
def paths(tmp_path) -> dict:
    """Paths a user might give: a log, a file (so FILE/x cannot be made, even by root), a
    missing file, a store that was never made, a broken Logstash config."""
    log = tmp_path / "in.log"
    log.write_text("GET 12\n")
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    unclosed = tmp_path / "unclosed.conf"
    unclosed.write_text("input { stdin { } }\nfilter {\n  grok { match => ['message', 'x']\n")
    plain = tmp_path / "hostname"
    plain.write_text("mail1.example.org\n")
    return {"LOG": str(log), "FILE": str(afile), "MISSING": str(tmp_path / "missing.toml"),
            "UNCLOSED": str(unclosed), "PLAIN": str(plain), "DIR": str(tmp_path / "out"),
            "NOSTORE": f"sqlite:///{afile}/events.db"}


# (arguments, what stderr must say); ALL-CAPS words are paths from the fixture above
CASES = [
    # ship
    (["ship", "--once", "--redis", "http://127.0.0.1:1", "LOG"],
     ["invalid broker URL 'http://127.0.0.1:1'"]),
    (["ship", "--once", "--redis", DEAD_REDIS, "--config", "MISSING", "LOG"],
     ["MISSING", "cannot read shipper config"]),
    (["ship", "--once", "LOG"], ["no broker: pass --redis"]),
    (["ship", "--once", "--batch-lines", "0", "LOG"], ["batch_lines must be at least 1"]),
    # index
    (["index", "--redis", DEAD_REDIS, "--config", "MISSING"], ["MISSING", "cannot read pipeline"]),
    (["index", "--redis", DEAD_REDIS, "--store", "mongodb://x"], ["unknown store URL 'mongodb://x'"]),
    (["index", "--redis", "http://127.0.0.1:1"], ["invalid broker URL 'http://127.0.0.1:1'"]),
    (["index", "--workers", "-1"], ["--workers"]),
    (["index", "--metrics-port", "70000"], ["--metrics-port"]),
    # dlq
    (["dlq", "show", "nosuch", "--redis", DEAD_REDIS], ["'nosuch' is not a dead-letter id"]),
    (["dlq", "show", "99999999999999999999999-0", "--redis", DEAD_REDIS],
     ["is not a dead-letter id"]),
    (["dlq", "show"], ["Missing argument"]),
    (["dlq", "list", "--stage", "bogus", "--redis", DEAD_REDIS], ["--stage", "decode, parse, index"]),
    (["dlq", "list", "--since", "notadate", "--redis", DEAD_REDIS], ["--since 'notadate'"]),
    (["dlq", "list", "--since", "now-1000000000000d", "--redis", DEAD_REDIS],
     ["--since", "out of range"]),
    (["dlq", "list", "--redis", "http://127.0.0.1:1"], ["invalid broker URL 'http://127.0.0.1:1'"]),
    (["dlq", "replay", "--redis", DEAD_REDIS, "--store", "sqlite:///x.db", "--config", "MISSING"],
     ["MISSING", "cannot read pipeline"]),
    (["dlq", "purge", "--until", "bogus", "--yes", "--redis", DEAD_REDIS], ["--until 'bogus'"]),
    (["dlq", "nosuch"], ["No such command 'nosuch'"]),
    # stats
    (["stats", "--redis", "http://127.0.0.1:1"], ["invalid broker URL 'http://127.0.0.1:1'"]),
    (["stats", "--metrics-port", "99999999"], ["--metrics-port"]),
    # search
    (["search", "--store", "sqlite:///x.db", '"User unknown'], ["unclosed quote at position 0"]),
    (["search", "--store", DEAD_HTTP, "foo"], [DEAD_HTTP, "cannot reach Elasticsearch"]),
    (["search", "--store", "mongodb://x", "foo"], ["unknown store URL 'mongodb://x'"]),
    (["search", "--store", "NOSTORE", "foo"], ["FILE/events.db", "no embedded store"]),
    (["search", "--from", "bogus", "foo"], ["--from 'bogus'"]),
    (["search", "--from", "now-1000000000000d", "foo"], ["--from", "out of range"]),
    (["search", "--histogram", "0h", "foo"], ["invalid interval '0h'"]),
    (["search", "--limit", "-1", "foo"], ["--limit"]),
    (["search", "--all", "--limit", "3", "foo"], ["either --all or --limit"]),
    (["search", "(" * 1000 + "a" + ")" * 1000], ["nested more than 100 levels deep"]),
    (["search", "size:>99999999999999999999"], ["99999999999999999999", "out of range"]),
    (["search", "@timestamp:[0001-01-01||-1d TO now]"], ["out of range"]),
    # trace
    (["trace", ""], ["trace needs a queue id"]),
    (["trace", "j061bW9V000809", "--store", DEAD_HTTP], [DEAD_HTTP]),
    (["trace", "j061bW9V000809", "--store", "NOSTORE"], ["FILE/events.db"]),
    # prune
    (["prune", "--store", "sqlite:///x.db"], ["how old? pass --older-than"]),
    (["prune", "--older-than", "bogus", "--store", "sqlite:///x.db"], ["--older-than 'bogus'"]),
    (["prune", "--older-than", "99999999999999999999d", "--store", "sqlite:///x.db"],
     ["--older-than", "longer than the whole calendar"]),
    (["prune", "--older-than", "30d", "--store", DEAD_HTTP], ["127.0.0.1:1"]),
    # maintain
    (["maintain", "--store", "mongodb://x"], ["unknown store URL 'mongodb://x'"]),
    (["maintain", "--store", "NOSTORE"], ["FILE/events.db"]),
    (["maintain", "--index", "qid", "--store", DEAD_HTTP], ["--index and --unpin are for the embedded store"]),
    # grok
    (["grok", "parse", "-p", "%{NOSUCH:x}", "LOG"], ["unknown pattern %{NOSUCH}"]),
    (["grok", "parse", "-p", "(unclosed", "LOG"], ["missing ')'"]),
    (["grok", "parse", "-p", "%{WORD:w}", "MISSING"], ["MISSING", "cannot read input"]),
    (["grok", "debug", "--pattern-file", "MISSING", "LOG"], ["MISSING", "cannot read pattern file"]),
    (["grok", "parse", "--patterns-dir", "MISSING", "-p", "%{WORD:w}", "LOG"], ["MISSING"]),
    (["grok", "parse", "--type", "nosuch", "LOG"], ["unknown type 'nosuch'"]),
    (["grok", "parse", "--config", "MISSING", "--type", "mail", "LOG"], ["MISSING"]),
    # import-logstash
    (["import-logstash", "MISSING"], ["MISSING", "cannot read Logstash config"]),
    (["import-logstash", "PLAIN"], ["PLAIN", "not a Logstash config"]),
    (["import-logstash", "UNCLOSED"], ["UNCLOSED:3:", "'{' of 'grok'", "not closed"]),
    (["import-logstash", "UNCLOSED", "-o", "FILE/p.toml"], ["UNCLOSED:3:"]),
    (["import-logstash", "LOG", "-o", "FILE/p.toml"], ["not a Logstash config"]),
    # acl
    (["acl", "setup", "--redis", DEAD_REDIS, "--dir", "DIR"], ["cannot reach the broker at "
                                                              "redis://127.0.0.1:1"]),
    (["acl", "setup", "--redis", "MISSING", "--dir", "DIR"], ["'MISSING' is neither a URL"]),
    (["acl", "setup", "--dir", "DIR"], ["no broker"]),
    # gen-logs
    (["gen-logs", "-n", "1", "-o", "FILE/x.log"], ["FILE/x.log", "cannot write"]),
    (["gen-logs", "--kind", "bogus"], ["unknown kind 'bogus'"]),
    (["gen-logs", "--lines", "-5"], ["--lines"]),
    (["gen-logs", "--start", "notadate"], ["not an ISO 8601 date: 'notadate'"]),
    (["gen-logs", "--start", "9999-12-31T23:59:59", "-n", "1000", "-o", "DIR.log"],
     ["--start 9999-12-31T23:59:59", "past the year 9999"]),
    # alerts
    (["alerts", "list", "--rules", "MISSING"], ["MISSING", "does not exist"]),
    (["alerts", "test", "--rules", "PLAIN"], ["PLAIN", "not valid TOML"]),
    (["alerts", "run", "--rules", "MISSING"], ["MISSING", "does not exist"]),
    (["alerts", "test", "nosuchrule"], ["no rule named 'nosuchrule'"]),
    # test, messages, report
    (["test", "MISSING"], ["MISSING", "cannot read the test file"]),
    (["test", "PLAIN"], ["PLAIN", "not valid TOML"]),
    (["messages", "--store", "NOSTORE", "status:bounced"], ["no embedded store at", "events.db"]),
    (["messages", "--store", "NOSTORE", "status:("], ["unclosed parenthesis", "position 8"]),
    (["report", "--store", "NOSTORE"], ["no embedded store at", "events.db"]),
    (["report", "--since", "bogus"], ["--since 'bogus'"]),
    # ui
    (["ui", "user", "add", "bob", "--role", "king"], ["role 'king' is not one of"]),
    (["ui", "user", "remove", "nosuch"], ["no account 'nosuch'"]),
    (["ui", "--bind", "nonsense"], ["--bind 'nonsense'"]),
    (["ui", "--bind", "127.0.0.1:99999"], ["--bind '127.0.0.1:99999'"]),
    (["ui", "--bind", "127.0.0.1:0", "--store", "sqlite:///x.db", "--token-file", "FILE/sub/tok"],
     ["FILE", "Not a directory"]),
    # up / down: only argument errors (up starts services)
    (["up", "--store", "mongodb://x"], ["unknown store URL 'mongodb://x'"]),
    (["up", "--workers", "0"], ["--workers"]),
    (["up", "--es-nodes", "0"], ["--es-nodes"]),
    (["down", "--now"], ["No such option: --now"]),
    # the root
    (["nosuchcommand"], ["No such command 'nosuchcommand'"]),
]


def _ids(case) -> str:
    return " ".join(case[0])[:60]


def _fill(args: list[str], paths: dict) -> list[str]:
    out = []
    for arg in args:
        for name, value in sorted(paths.items(), key=lambda kv: -len(kv[0])):
            arg = arg.replace(name, value) if name in arg else arg
        out.append(arg)
    return out


def test_every_command_is_swept():
    swept = {case[0][0] for case in CASES}
    assert set(COMMANDS) - swept <= {"demo"}  # demo runs the whole pipeline: no arguments


@pytest.mark.parametrize("args, says", CASES, ids=[_ids(c) for c in CASES])
def test_a_mistake_is_one_message_not_a_traceback(args, says, paths, capsys, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = _fill(args, paths)
    try:
        code = main(argv)
    except SystemExit as exc:  # typer/click may exit directly
        code = exc.code
    out, err = capsys.readouterr()
    assert code not in (0, None), (argv, out, err)
    assert "Traceback" not in err + out
    for text in says:
        assert _fill([text], paths)[0] in err, (argv, err)
    if args[0] == "up":  # refused before anything started
        assert not (tmp_path / "logpipe-home" / "services.json").exists()


# ------------------------------------------------------------------ real processes

def logpipe(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, **kw)


@pytest.mark.parametrize("args", [
    ["dlq", "show", "nosuch", "--redis", DEAD_REDIS],
    ["search", "--store", DEAD_HTTP, "foo"],
    ["import-logstash", "UNCLOSED"],
    ["gen-logs", "-o", "FILE/x.log"],
])
def test_as_a_process_too(args, paths):
    proc = logpipe(*_fill(args, paths))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.startswith(("logpipe: error:", "Usage:"))


@pytest.mark.parametrize("args, event", [
    (["index", "--redis", DEAD_REDIS, "--store", "sqlite:///x.db", "--burst"],
     "event=broker_unreachable"),
    (["dlq", "list", "--redis", DEAD_REDIS], "event=broker_unreachable"),
    (["stats", "--redis", DEAD_REDIS], "event=broker_unreachable"),
    (["ship", "--once", "--redis", DEAD_REDIS, "LOG"], "event=broker_down"),
])
def test_a_broker_not_up_yet_is_waited_for_naming_its_url(args, event, paths, tmp_path):
    """By design these wait (start order never matters); what they wait for is said at once,
    in one line naming the broker's URL."""
    proc = logpipe(*_fill(args, paths), cwd=tmp_path)
    try:
        lines = []
        for line in proc.stderr:  # until the line saying what it waits for
            lines.append(line)
            if event in line:
                break
        assert event in lines[-1], lines
        assert "broker=redis://127.0.0.1:1" in lines[-1]
        assert "Traceback" not in "".join(lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


# ------------------------------------------------------------------ valid queries, empty answers

@pytest.fixture
def store(tmp_path, monkeypatch):
    from logpipe.store.base import Event
    from logpipe.store.sqlite import SqliteStore

    url = f"sqlite:///{tmp_path}/events.db"
    sink = SqliteStore(url)
    sink.prepare()
    sink.write([Event("1", {"@timestamp": "2026-11-28T10:00:00Z", "message": "hi", "qid": "abc",
                            "host": "mail1", "source": {"address": "10.0.0.1"}})])
    sink.close()
    monkeypatch.setenv("LOGPIPE_STORE_URL", url)
    return url


@pytest.mark.parametrize("args, out_is, note", [
    (["search", "nosuchfield:foo"], "", "no event has field 'nosuchfield'\n"),
    (["search", "qd:abc"], "", "no event has field 'qd' (did you mean qid?)"),
    (["search", "--count", "qd:abc"], "0\n", "no event has field 'qd' (did you mean qid?)"),
    (["search", "--top", "nosuchfield"], "", "no event has field 'nosuchfield'\n"),
    (["search", "--top", "hots"], "", "no event has field 'hots' (did you mean host?)"),
    (["search", "-f", "qid,nosuch", "qid:abc"], "abc\t\n", "no event has field 'nosuch'\n"),
    (["search", "source.adress:10.0.0.1"], "",
     "no event has field 'source.adress' (did you mean source.address"),
    (["search", "--histogram", "1h", "hots:mail1"], "", "no event has field 'hots'"),
])
def test_an_empty_answer_names_the_field_no_event_has(store, capsys, args, out_is, note):
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0  # the query is valid: its answer is empty, not an error
    assert out == out_is
    assert f"logpipe: note: {note}" in err


def test_no_note_when_the_fields_exist(store, capsys):
    for args in (["search", "qid:zzz"], ["search", "-f", "qid,host", "qid:abc"],
                 ["search", "--top", "qid", "qid:zzz"], ["search", "qid:abc"]):
        assert main(args) == 0
        assert "note" not in capsys.readouterr().err
