"""The installed ``logpipe`` command searching both stores (a real process, a real node)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore

LOGPIPE = str(Path(sys.executable).with_name("logpipe"))
EVENTS = [
    Event(f"m{i}", {"@timestamp": f"2026-11-28T10:00:0{i}.000Z", "host": "mail1", "type": "mail",
                    "program": "sendmail", "qid": "r4F2abcD012345" if i < 3 else "r4F2zzzz000001",
                    "message": f"r4F2abcD012345: line {i} stat=Sent (ok)", "size": 100 * i,
                    **({"from": "<a@x.org>"} if i == 0 else {}),
                    **({"to": "<b@y.org>", "stat": "Sent (ok)", "relay": "mx.y.org",
                        "delay": "00:00:02"} if i == 2 else {})})
    for i in range(5)
]


def logpipe(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([LOGPIPE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def sqlite_url(tmp_path):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.write(EVENTS)
    sink.close()
    return url


@pytest.fixture
def es_store_url(es_url):
    from tests.fixtures.elasticsearch import es_loaded

    with es_loaded(es_url, EVENTS) as url:
        yield url


def _check_store(url: str) -> None:
    found = logpipe("search", "--store", url, "qid:r4F2abc*", "--json")
    assert found.returncode == 0, found.stderr
    docs = [orjson.loads(line) for line in found.stdout.splitlines()]
    assert [d["message"][-17:] for d in docs] == ["line 2 stat=Sent (ok)"[-17:],
                                                  "line 1 stat=Sent (ok)"[-17:],
                                                  "line 0 stat=Sent (ok)"[-17:]]
    assert list(docs[0])[0] == "@timestamp"

    hist = logpipe("search", "--store", url, "sent", "--histogram", "2s")
    assert hist.stdout.splitlines() == ["2026-11-28T10:00:00Z\t2", "2026-11-28T10:00:02Z\t2",
                                        "2026-11-28T10:00:04Z\t1"]
    top = logpipe("search", "--store", url, "--top", "qid")
    assert top.stdout.splitlines() == ["r4F2abcD012345\t3", "r4F2zzzz000001\t2"]
    ranged = logpipe("search", "--store", url, "size:[200 TO 300}", "-f", "size")
    assert ranged.stdout.splitlines() == ["200"]

    trace = logpipe("trace", "--store", url, "r4F2abcD012345")
    assert trace.returncode == 0
    assert trace.stdout.splitlines()[-1] == ("qid=r4F2abcD012345 from=<a@x.org> to=<b@y.org> "
                                             "relay=mx.y.org stat=Sent (ok) delay=00:00:02 "
                                             "events=3")
    bad = logpipe("search", "--store", url, "qid:(r4F")
    assert bad.returncode == 2 and "position" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.integration
def test_search_commands_on_the_embedded_store(sqlite_url):
    _check_store(sqlite_url)


@pytest.mark.integration
def test_search_commands_on_elasticsearch(es_store_url):
    _check_store(es_store_url)


@pytest.mark.integration
def test_the_default_store_lives_in_the_state_directory(tmp_path):
    home = tmp_path / "home"
    env = {"LOGPIPE_HOME": str(home)}
    empty = logpipe("search", env_extra=env)
    assert empty.returncode == 2 and "nothing has been indexed" in empty.stderr
    sink = SqliteStore("sqlite:///" + str(home / "events.db"))
    sink.write(EVENTS)
    sink.close()
    found = logpipe("search", "-f", "qid", "--limit", "1", env_extra=env)
    assert found.stdout == "r4F2zzzz000001\n"
