"""The syslog spool with a real Valkey and a real agent: lines sent over TCP and UDP while the
broker is down wait on disk, survive a kill -9 of the agent, and are stored exactly once and in
order when the broker is back; with the spool full, TCP senders wait (nothing lost) and the UDP
datagrams dropped are counted in the status file, `logpipe stats` and a warning."""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
import threading

import orjson
import pytest

from logpipe.common.broker import connect
from tests.integration.test_ledger import _index, _stats
from tests.integration.test_shipper_helpers import Agent, wait_for
from tests.support.receivers import free_port

pytestmark = pytest.mark.integration


def spooled(directory) -> list[dict]:
    """The records on disk in the agent's spool (read only; the format of shipper/spool.py)."""
    out = []
    for seg in sorted(directory.glob("*.spool/syslog-*/seg-*")):
        data = seg.read_bytes()
        i = 0
        while i + 8 <= len(data):
            size, _ = struct.unpack_from(">II", data, i)
            if i + 8 + size > len(data):
                break
            out.append(orjson.loads(data[i + 8:i + 8 + size]))
            i += 8 + size
    return out


def status(tmp_path) -> dict:
    try:
        return json.loads((tmp_path / "registry.json.status.json").read_text())
    except (OSError, ValueError):
        return {}


def _listening(agent: Agent, n: int) -> None:
    wait_for(lambda: agent.output().count("event=syslog_listening") >= n, what="listening", agent=agent)


def _send_tcp(port: int, lines: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall("".join(f"<22>Nov 29 16:14:26 mx1 app[7]: {line}\n" for line in lines).encode())


def _send_udp(port: int, lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for line in lines:
            s.sendto(f"<22>Nov 29 16:14:26 mx1 app[7]: {line}".encode(), ("127.0.0.1", port))


def _message(rec: dict) -> str:
    return rec["line"].split(": ", 1)[1]


def test_lines_wait_on_disk_through_a_kill9_and_are_stored_once_in_order(tmp_path, own_valkey):
    own_valkey.stop()  # the agent starts with no broker: it listens and spools meanwhile
    tcp, udp = free_port(), free_port()
    args = ("--syslog-tcp", f"127.0.0.1:{tcp}", "--syslog-udp", f"127.0.0.1:{udp}",
            "--batch-lines", "50")
    agent = Agent(tmp_path, own_valkey.url, *args).start()
    try:
        _listening(agent, 2)
        first_tcp = [f"tcp-a {i:05d}" for i in range(400)]
        first_udp = [f"udp-a {i:05d}" for i in range(200)]
        _send_tcp(tcp, first_tcp)
        _send_udp(udp, first_udp)
        wait_for(lambda: len(spooled(tmp_path)) == 600, what="600 spooled", agent=agent)
        agent.kill9()
        agent = Agent(tmp_path, own_valkey.url, *args).start()
        _listening(agent, 4)
        assert "event=syslog_spool_recovered" in agent.output()
        later_tcp = [f"tcp-b {i:05d}" for i in range(300)]
        later_udp = [f"udp-b {i:05d}" for i in range(100)]
        _send_tcp(tcp, later_tcp)
        _send_udp(udp, later_udp)
        wait_for(lambda: len(spooled(tmp_path)) == 1000, what="1000 spooled", agent=agent)
        own_valkey.start()
        client = connect(own_valkey.url)
        wait_for(lambda: client.llen("logpipe:raw") >= 1000 and not status(tmp_path)["sources"][0]
                 ["spool_bytes"], what="the spool drained", agent=agent)
    finally:
        assert agent.stop() == 0
    items = [orjson.loads(x) for x in client.lrange("logpipe:raw", 0, -1)]
    got = [_message(r) for r in items]
    assert len(got) == len(set(got)) == 1000  # nothing lost, nothing twice
    assert sorted(got) == sorted(first_tcp + first_udp + later_tcp + later_udp)
    # in order: each sender's lines as sent, and everything spooled before the kill before the rest
    for sent in (first_tcp, first_udp, later_tcp, later_udp):
        assert [g for g in got if g[:5] == sent[0][:5]] == sent
    assert max(got.index(x) for x in first_tcp + first_udp) < min(got.index(x) for x in later_tcp + later_udp)

    store = f"sqlite:///{tmp_path}/events.db"
    _index(own_valkey.url, store, "logpipe:raw")
    with sqlite3.connect(tmp_path / "events.db") as db:
        stored = [json.loads(d)["message"] for (d,) in db.execute("SELECT doc FROM events")]
    assert sorted(stored) == sorted(got)
    ledger = _stats(own_valkey.url, "logpipe:raw", tmp_path / "home")["ledger"]
    assert sorted(e["records"] for e in ledger) == [400, 600]  # one source per listener run
    assert all(e["gaps"] == 0 and not e["lost"] for e in ledger), ledger
    client.close()


def test_a_full_spool_holds_tcp_senders_and_counts_udp_drops(tmp_path, own_valkey):
    own_valkey.stop()
    tcp, udp = free_port(), free_port()
    config = tmp_path / "shipper.toml"
    config.write_text(f"""
[[input]]
input = "syslog"
listen = ["tcp://127.0.0.1:{tcp}", "udp://127.0.0.1:{udp}"]
spool_max_bytes = 8192
""")
    agent = Agent(tmp_path, own_valkey.url, "--config", str(config)).start()
    try:
        _listening(agent, 2)
        pad = "x" * 400
        tcp_lines = [f"tcp {i:04d} {pad}" for i in range(1000)]  # more than one read
        sender = threading.Thread(target=_send_tcp, args=(tcp, tcp_lines))
        sender.start()
        wait_for(lambda: "event=syslog_spool_full" in agent.output(), what="spool full", agent=agent)
        udp_lines = [f"udp {i:04d} {pad}" for i in range(50)]
        _send_udp(udp, udp_lines)
        wait_for(lambda: status(tmp_path).get("totals", {}).get("dropped") == 50,
                 what="50 UDP drops in the status file", agent=agent)
        assert "event=syslog_udp_dropped" in agent.output()
        assert "dropped=50" in agent.output() or "dropped_total=" in agent.output()
        own_valkey.start()
        client = connect(own_valkey.url)
        wait_for(lambda: client.llen("logpipe:raw") >= 1000, what="every TCP line", agent=agent)
        sender.join()
        figures = _stats(own_valkey.url, "logpipe:raw", tmp_path / "home")
    finally:
        assert agent.stop() == 0
    got = [_message(orjson.loads(x)) for x in client.lrange("logpipe:raw", 0, -1)]
    assert got == tcp_lines  # the TCP sender waited; nothing of it lost; no UDP datagram stored
    (shipper,) = figures["shippers"]
    assert shipper["dropped"] == 50
    client.close()
