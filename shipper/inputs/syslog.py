"""A syslog listener for devices that can only send syslog: UDP and TCP, RFC 3164 and RFC 5424,
TCP framing by octet counting (RFC 6587 ``<len> <msg>``) or by newline, and syslog over TLS
(RFC 5425: TCP + TLS, octet-counted frames) with optional client certificate verification.

``listen = ["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514", "tls://0.0.0.0:6514"]``. A host
left out means 127.0.0.1: a listener is reachable from other machines only when told so, and
plain UDP/TCP ones (anyone who can reach the port can inject records) say so in a warning.

TLS needs ``tls_cert`` and ``tls_key`` (the key file must be 0600); with ``tls_client_ca`` the
listener asks senders for a certificate signed by that CA and refuses those without one
(``tls_client_auth = "required"``, the default) or accepts them without (``"optional"``). A
verified sender's certificate subject CN is recorded in ``fields.syslog.tls_peer``.

A background thread receives messages into a bounded queue; when the queue is full it stops
reading, so TCP senders are slowed down by TCP itself (UDP has no such thing: the kernel drops
what does not fit its buffer).

Each message becomes one record: ``line`` is the message without its ``<PRI>`` (an RFC 3164
message then reads like a line of /var/log/syslog), ``host`` the sender's hostname (or address),
``path`` ``syslog+udp://ADDR``, ``fields.syslog`` the parsed header (facility, severity,
timestamp, hostname, appname, procid, msgid) and ``frame``, the message as received.
"""

from __future__ import annotations

import collections
import os
import re
import selectors
import socket
import ssl
import threading
import time
import uuid
from functools import partial

import orjson

from logpipe.common.errors import ConfigError
from logpipe.common.record import record_id
from logpipe.shipper.encode import decode_line
from logpipe.shipper.inputs.base import Chunk, Input

FACILITIES = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
              "local2", "local3", "local4", "local5", "local6", "local7"]
SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)"
                      r"(?: (.*))?$", re.S)
# the BSD stamp, or the RFC 3339 one rsyslog's RSYSLOG_ForwardFormat puts in the same frame
_RFC3164 = re.compile(r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
                      r"(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (\S+) (.*)$", re.S)
_TAG = re.compile(r"([^\s\[:]+)(?:\[(\d+)\])?:")


def parse(message: str) -> dict:
    """The header fields of one syslog message (best effort: unknown shapes give {})."""
    out: dict = {}
    m = _PRI.match(message)
    if not m:
        return out
    pri = int(m.group(1))
    out["facility"] = FACILITIES[pri >> 3] if (pri >> 3) < len(FACILITIES) else str(pri >> 3)
    out["severity"] = SEVERITIES[pri & 7]
    rest = message[m.end():]
    m5 = _RFC5424.match(rest)
    if m5 and m5.group(1) != "0":
        nil = lambda v: None if v == "-" else v  # noqa: E731
        out.update(format="rfc5424", timestamp=nil(m5.group(2)), hostname=nil(m5.group(3)),
                   appname=nil(m5.group(4)), procid=nil(m5.group(5)), msgid=nil(m5.group(6)))
        if m5.group(7) != "-":
            out["structured_data"] = m5.group(7)
        msg = m5.group(8) or ""
        out["message"] = msg[1:] if msg.startswith("\ufeff") else msg
        return {k: v for k, v in out.items() if v is not None}
    m3 = _RFC3164.match(rest)
    out["format"] = "rfc3164"
    if m3:
        out.update(timestamp=m3.group(1), hostname=m3.group(2))
        msg = m3.group(3)
    else:
        msg = rest
    t = _TAG.match(msg)
    if t:
        out["appname"] = t.group(1)
        if t.group(2):
            out["procid"] = t.group(2)
    out["message"] = msg
    return out


def parse_listen(url: str, where: str = "syslog") -> tuple[str, str, int]:
    m = re.fullmatch(r"(udp|tcp|tls)://(\[[^\]]+\]|[^:/]*):(\d+)", url.strip())
    if not m:
        raise ConfigError(f"{where}: cannot read listen address {url!r} "
                          f"(expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT)")
    host = m.group(2).strip("[]") or "127.0.0.1"
    return m.group(1), host, int(m.group(3))


def server_tls_context(spec) -> ssl.SSLContext:
    """The listener's TLS settings (RFC 5425: TLS 1.2 or later)."""
    from logpipe.common.private import check_private

    where = spec.where
    if not (spec.tls_cert and spec.tls_key):
        raise ConfigError(f"{where}: a tls:// listener needs tls_cert and tls_key "
                          f"(the server certificate and its private key)")
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        value = getattr(spec, name)
        if value and not os.path.exists(value):
            raise ConfigError(f"{where}: {name} file does not exist", value)
    check_private(spec.tls_key, "TLS private key")
    if spec.tls_client_auth not in ("required", "optional"):
        raise ConfigError(f"{where}: tls_client_auth must be 'required' or 'optional'")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(spec.tls_cert, spec.tls_key)
        if spec.tls_client_ca:
            context.load_verify_locations(spec.tls_client_ca)
            context.verify_mode = (ssl.CERT_REQUIRED if spec.tls_client_auth == "required"
                                   else ssl.CERT_OPTIONAL)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{where}: cannot load the TLS certificate, key or client CA: "
                          f"{exc}") from None
    return context


def _peer_name(sock) -> str | None:
    cert = sock.getpeercert() if hasattr(sock, "getpeercert") else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class _Conn:
    __slots__ = ("sock", "peer", "buf", "proto", "tls_peer")

    def __init__(self, sock, peer, proto="tcp"):
        self.sock, self.peer, self.buf, self.proto, self.tls_peer = sock, peer, b"", proto, None


class SyslogInput(Input):
    kind = "syslog"

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.run_id = uuid.uuid4().hex[:12]
        self.queue: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.space = threading.Condition(self.lock)
        self.max_queue = spec.queue_size
        self.max_bytes = spec.max_bytes
        self.sel = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []
        self.addresses: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.seq = 0
        self.received = 0
        self.lines = 0

    def start(self) -> None:
        from logpipe.common.listen import warn_if_exposed

        for url in self.spec.listen:
            proto, host, port = parse_listen(url, self.spec.where)
            authenticated = False
            if proto == "tls" and self.tls_context is None:
                self.tls_context = server_tls_context(self.spec)
            if proto == "tls":
                authenticated = bool(self.spec.tls_client_ca) and \
                    self.spec.tls_client_auth == "required"
            warn_if_exposed(host, f"syslog listener {url}", authenticated,
                            lambda message: self.ctx.log.warning("listener_exposed", risk=message))
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                raise ConfigError(f"{self.spec.where}: cannot listen on {url}: "
                                  f"{exc.strerror}") from None
            sock.setblocking(False)
            if proto in ("tcp", "tls"):
                sock.listen(128)
                self.sel.register(sock, selectors.EVENT_READ, (f"accept-{proto}", None))
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                self.sel.register(sock, selectors.EVENT_READ, ("udp", None))
            self.sockets.append(sock)
            bound = sock.getsockname()
            self.addresses.append(f"{proto}://{bound[0]}:{bound[1]}")
            self.ctx.log.info("syslog_listening", address=self.addresses[-1])
        self._thread = threading.Thread(target=self._run, name="syslog", daemon=True)
        self._thread.start()

    # -- receiving (background thread) ----------------------------------------------------------
    def _put(self, proto: str, peer: str, raw: bytes, tls_peer: str | None = None) -> None:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            return
        with self.space:
            while len(self.queue) >= self.max_queue and not self._stop.is_set():
                self.space.wait(0.5)
            self.queue.append((proto, peer, raw, time.time(), tls_peer))
            self.received += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.5):
                what, conn = key.data
                try:
                    if what == "udp":
                        data, addr = key.fileobj.recvfrom(65535)
                        self._put("udp", addr[0], data)
                    elif what == "accept-tcp":
                        sock, addr = key.fileobj.accept()
                        sock.setblocking(False)
                        self.sel.register(sock, selectors.EVENT_READ, ("tcp", _Conn(sock, addr[0])))
                    elif what == "accept-tls":
                        sock, addr = key.fileobj.accept()
                        sock.setblocking(False)
                        # start() made the context before it registered a tls:// listener
                        assert self.tls_context is not None
                        tls = self.tls_context.wrap_socket(sock, server_side=True,
                                                           do_handshake_on_connect=False)
                        self.sel.register(tls, selectors.EVENT_READ,
                                          ("handshake", _Conn(tls, addr[0], "tls")))
                    elif what == "handshake":
                        self._handshake(conn)
                    else:
                        self._receive(conn)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                        ssl.SSLWantWriteError):
                    continue
                except OSError as exc:
                    if conn is not None:
                        if what == "handshake":
                            self.ctx.log.warning("syslog_tls_refused", peer=conn.peer,
                                              reason=str(exc)[:200])
                        self._close(conn)

    def _handshake(self, conn: _Conn) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantWriteError:
            self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                            ("handshake", conn))
            return
        conn.tls_peer = _peer_name(conn.sock)
        self.sel.modify(conn.sock, selectors.EVENT_READ, ("tcp", conn))
        self._receive(conn)  # data may have come with the last handshake record

    def _receive(self, conn: _Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(256 * 1024)
            except ssl.SSLWantReadError:
                return
            if not data:
                self._frames(conn, final=True)
                self._close(conn)
                return
            conn.buf += data
            self._frames(conn)
            # TLS: decrypted bytes can wait inside the SSL object, where select() cannot see them
            if not (conn.proto == "tls" and conn.sock.pending()):
                return

    def _close(self, conn: _Conn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _frames(self, conn: _Conn, final: bool = False) -> None:
        buf = conn.buf
        while buf:
            if buf[:1].isdigit():  # octet counting: "<len> <msg>"
                sp = buf.find(b" ", 0, 12)
                if sp < 0:
                    if len(buf) < 12:
                        break
                    sp = None
                if sp is not None and buf[:sp].isdigit():
                    n = int(buf[:sp])
                    if len(buf) < sp + 1 + n:
                        if n > self.max_bytes + 64 and len(buf) > self.max_bytes:
                            self._put(conn.proto, conn.peer, buf[sp + 1:sp + 1 + self.max_bytes],
                                      conn.tls_peer)
                            buf = b""  # the rest of that frame is lost with the connection
                            conn.sock.close()
                        break
                    self._put(conn.proto, conn.peer, buf[sp + 1:sp + 1 + n], conn.tls_peer)
                    buf = buf[sp + 1 + n:]
                    continue
            i = buf.find(b"\n")
            if i < 0:
                if final or len(buf) > self.max_bytes:
                    self._put(conn.proto, conn.peer, buf, conn.tls_peer)
                    buf = b""
                break
            self._put(conn.proto, conn.peer, buf[:i], conn.tls_peer)
            buf = buf[i + 1:]
        conn.buf = buf

    # -- the agent's side -----------------------------------------------------------------------
    def poll(self, max_lines: int, now: float) -> list[Chunk]:
        with self.space:
            n = min(max_lines, len(self.queue))
            if not n:
                return []
            items = [self.queue.popleft() for _ in range(n)]
            self.space.notify_all()
        host = self.ctx.host
        spec = self.spec
        values: list[bytes] = []
        nbytes = 0
        for proto, peer, raw, received, tls_peer in items:
            nbytes += len(raw)
            tags: list[str] = []
            text = decode_line(raw, self.max_bytes, tags)
            header = parse(text)
            m = _PRI.match(text)
            line = text[m.end():] if m else text
            if header.get("format") == "rfc3164" and "timestamp" not in header:
                line = header.get("message", line)
            self.seq += 1
            rec = {
                "id": record_id(host, f"syslog:{self.run_id}", self.seq),
                "host": header.get("hostname") or peer,
                "path": f"syslog+{proto}://{peer}",
                "offset": self.seq,
                "seq": self.seq - 1,  # the ledger's sequence of this listener's run, from 0
                "type": spec.type or "syslog",
                "fields": {**spec.fields, "syslog": {
                    **{k: v for k, v in header.items() if k != "message"},
                    "frame": text,  # the message as received, <PRI> included
                    **({"tls_peer": tls_peer} if tls_peer else {})}},
                "received_at": received,
                "line": line,
            }
            if tags:
                rec["tags"] = tags
            values.append(orjson.dumps(rec))
        return [Chunk(values, nbytes, partial(self._ack, len(values)), "syslog")]

    def _ack(self, n: int) -> None:
        self.lines += n

    def flush(self, now: float) -> list[Chunk]:
        return self.poll(1 << 30, now)

    def stop(self) -> None:
        self._stop.set()
        with self.space:
            self.space.notify_all()
        if self._thread is not None:
            self._thread.join(2)
        for key in list(self.sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self.sel.close()

    def status(self) -> list[dict]:
        return [{"path": addr, "lines": self.lines, "queued": len(self.queue),
                 "received": self.received, "state": "listening"} for addr in self.addresses]
