"""Issue 9, item 3 for the indexer: start order never matters.

``logpipe index`` started before its broker waits for it (one ``broker_unreachable`` line, one
``broker_back`` line) and then stores everything shipped; ``logpipe dlq list`` does the same; a
wrong password exits 2 at once without showing it. Every wait is on a real signal (a log line,
the store's count), never a sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from logpipe.services.valkey import ValkeyServer, find_free_port
from logpipe.store import open_store
from logpipe.store.base import SearchRequest
from tests.integration.test_shipper_helpers import wait_for
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration
SECRET = "s3cret-Pass-4-index"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def later_valkey(tmp_path):
    """A server whose port and password are known now, started when the test wants."""
    server = ValkeyServer(data_dir=tmp_path / "valkey", port=find_free_port(), password=SECRET)
    yield server
    server.cleanup()


def env_for(tmp_path, url: str) -> dict:
    # the password travels in the environment, never in argv
    return {**os.environ, "LOGPIPE_REDIS_URL": url, "LOGPIPE_HOME": str(tmp_path / "home"),
            "PYTHONUNBUFFERED": "1"}


def logpipe(*args: str) -> list[str]:
    return [sys.executable, "-m", "logpipe.common.cli", *args]


def stored(store_url: str) -> int:
    store = open_store(store_url)
    try:
        return store_search(store, SearchRequest(query="*", limit=1)).total
    except Exception:  # not created yet
        return -1
    finally:
        store.close()


def processes_showing(text: str) -> list[str]:
    """Command lines of this machine's processes that contain ``text`` (the process list)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in args):
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def test_index_started_before_the_broker_stores_everything(tmp_path, later_valkey):
    env = env_for(tmp_path, later_valkey.url)
    store_url = f"sqlite:///{tmp_path}/events.db"
    log = tmp_path / "index.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(logpipe("index", "--store", store_url, "--workers", "1",
                                        "--batch-size", "100"),
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "event=broker_unreachable" in log.read_text(), timeout=120,
                 what="the indexer's broker_unreachable line")
        assert proc.poll() is None, log.read_text()  # waiting, not exited
        later_valkey.start()
        wait_for(lambda: "event=index_started" in log.read_text(), timeout=120,
                 what="the indexer's index_started line")
        assert not processes_showing(SECRET)  # workers get the URL by environment
        lines = tmp_path / "app.log"
        lines.write_text("".join(f"early bird line {i}\n" for i in range(700)))
        ship = subprocess.run(logpipe("ship", "--once", "--registry", str(tmp_path / "reg.json"),
                                      str(lines)), env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert ship.returncode == 0, ship.stderr
        wait_for(lambda: stored(store_url) == 700, timeout=240, what="700 events stored")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    text = log.read_text()
    assert code == 0, text
    assert text.count("event=broker_unreachable") == 1, text
    # the start line says what runs grok's searches (PCRE2's JIT where the C module is built)
    started = next(line for line in text.splitlines() if "event=index_started" in line)
    from logpipe.indexer.grok import native
    assert ("grok=pcre2-" if native.available() else 'grok="re (') in started, started
    assert text.count("event=broker_back") == 1, text
    assert SECRET not in text


def test_dlq_list_started_before_the_broker_waits_for_it(tmp_path, later_valkey):
    env = env_for(tmp_path, later_valkey.url)
    log = tmp_path / "dlq.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(logpipe("dlq", "list"), env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "event=broker_unreachable" in log.read_text(), timeout=120,
                 what="the dlq command's broker_unreachable line")
        assert proc.poll() is None
        later_valkey.start()
        assert proc.wait(120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "event=broker_back" in text and SECRET not in text


def test_wrong_password_exits_at_once_without_showing_it(tmp_path, later_valkey):
    later_valkey.start()
    wrong = later_valkey.url.replace(SECRET, "not-the-password")
    for command in (["index", "--store", f"sqlite:///{tmp_path}/e.db"], ["dlq", "list"]):
        run = subprocess.run(logpipe(*command), env=env_for(tmp_path, wrong), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert "refused the password" in run.stderr and "Traceback" not in run.stderr
        assert "not-the-password" not in run.stderr and SECRET not in run.stderr


def test_a_store_path_that_cannot_be_created_exits_at_once(tmp_path, later_valkey):
    later_valkey.start()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    run = subprocess.run(logpipe("index", "--store", f"sqlite:///{blocker}/sub/e.db"),
                         env=env_for(tmp_path, later_valkey.url), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "cannot create the embedded store's directory" in run.stderr
    assert "Traceback" not in run.stderr


class Forwarder:
    """A TCP forwarder on a port chosen now and opened later: the store 'comes up' when the
    test starts it (the real Elasticsearch node behind it)."""

    def __init__(self, target_port: int):
        import socket

        self.target_port = target_port
        self.port = find_free_port()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.closed = False

    def start(self) -> None:
        import threading

        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.server.close()


def test_index_started_before_the_store_waits_then_stores(tmp_path, later_valkey, es_url,
                                                          es_client):
    from urllib.parse import urlparse

    from logpipe.common.broker import connect
    from logpipe.common.record import Record, encode

    later_valkey.start()
    forwarder = Forwarder(urlparse(es_url).port)
    store_url = f"http://127.0.0.1:{forwarder.port}/?index=logpipe-late-%Y.%m.%d"
    log = tmp_path / "index.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(logpipe("index", "--store", store_url, "--workers", "1"),
                                env=env_for(tmp_path, later_valkey.url), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "event=store_unreachable" in log.read_text(), timeout=120,
                 what="the indexer's store_unreachable line")
        assert proc.poll() is None, log.read_text()
        client = connect(later_valkey.url)
        client.rpush("logpipe:raw", *[encode(Record(id=f"late-{i}", line=f"late line {i}",
                                                    received_at=1764324000.0 + i))
                                      for i in range(300)])
        forwarder.start()
        wait_for(lambda: "event=index_started" in log.read_text(), timeout=120,
                 what="index_started")

        def stored() -> int:
            from elasticsearch import ApiError

            try:  # a fresh index answers 503 until its shard is allocated
                es_client.indices.refresh(index="logpipe-late-*", allow_no_indices=True)
                return es_client.count(index="logpipe-late-*", allow_no_indices=True)["count"]
            except ApiError:
                return -1

        wait_for(lambda: stored() == 300, timeout=240, what="300 events in Elasticsearch")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        forwarder.close()
    text = log.read_text()
    assert text.count("event=store_unreachable") == 1 and text.count("event=store_back") == 1
    assert SECRET not in text
