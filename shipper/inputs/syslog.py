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

A background thread receives messages, makes each one a record and appends it to an on-disk
spool (``shipper/spool.py``) *before it reads that socket again*; the agent reads the spool in
order and confirms records back to it once the broker has them. So lines arriving while the
broker is away or the list is above the high-water mark wait on disk, and a kill -9 of the agent
loses no frame it has read (an incomplete frame at the end of a read, not yet a message, is the
exception). When the spool is at its cap (``spool_max_bytes``) TCP/TLS connections are not read
(TCP slows their senders) and UDP datagrams are read and dropped: counted in ``dropped``, in the
status figures and ``logpipe stats``, and said in a ``syslog_udp_dropped`` warning.

Each message becomes one record: ``line`` is the message without its ``<PRI>`` (an RFC 3164
message then reads like a line of /var/log/syslog), ``host`` the sender's hostname (or address),
``path`` ``syslog+udp://ADDR``, ``fields.syslog`` the parsed header (facility, severity,
timestamp, hostname, appname, procid, msgid) and ``frame``, the message as received.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import socket
import ssl
import threading
import time
import uuid
from functools import partial
from typing import cast

import orjson

from logpipe.common.errors import ConfigError
from logpipe.common.record import record_id
from logpipe.shipper.encode import decode_line
from logpipe.shipper.inputs.base import Chunk, Input
from logpipe.shipper.spool import Spool

DROP_REPORT_EVERY = 10.0  # seconds between two syslog_udp_dropped warnings while drops go on
FLUSH_LINES = 100_000     # a clean stop sends at most this many spooled lines; the rest wait on disk

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
        self.spool: Spool | None = None
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
        self.dropped = 0           # UDP datagrams dropped because the spool was full
        self._dropped_said = 0     # ... of which a warning already told
        self._drop_said_at = 0.0
        self._held: list[_Conn] = []  # TCP/TLS connections not read while the spool is full
        self._holding = False

    def spool_dir(self):
        """Where this listener's spool lives: ``spool_dir``, else beside the agent's registry, named
        after the listen addresses (the same listener finds its spool again after a restart)."""
        from pathlib import Path

        if getattr(self.spec, "spool_dir", ""):
            return Path(self.spec.spool_dir).expanduser()
        key = hashlib.blake2b("\x1f".join(sorted(self.spec.listen)).encode(), digest_size=6).hexdigest()
        reg = Path(self.ctx.registry.path)
        return reg.parent / f"{reg.name}.spool" / f"syslog-{key}"

    def start(self) -> None:
        from logpipe.common.listen import warn_if_exposed

        self.spool = Spool(self.spool_dir(), getattr(self.spec, "spool_max_bytes", 256 << 20),
                           getattr(self.spec, "spool_fsync", "batch")).open()
        if self.spool.recovered or self.spool.cut:
            self.ctx.log.info("syslog_spool_recovered", spool=str(self.spool.dir),
                              unconfirmed_lines=self.spool.recovered, torn_bytes_cut=self.spool.cut,
                              action="sent before newer lines")

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
    def encode(self, proto: str, peer: str, raw: bytes, received: float,
               tls_peer: str | None = None) -> bytes:
        """One message as a record (its id and ledger sequence taken now: a record read back from
        the spool after a restart keeps both, so sending it again is harmless)."""
        tags: list[str] = []
        text = decode_line(raw, self.max_bytes, tags)
        header = parse(text)
        m = _PRI.match(text)
        line = text[m.end():] if m else text
        if header.get("format") == "rfc3164" and "timestamp" not in header:
            line = header.get("message", line)
        self.seq += 1
        spec = self.spec
        rec = {
            "id": record_id(self.ctx.host, f"syslog:{self.run_id}", self.seq),
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
        return orjson.dumps(rec)

    @staticmethod
    def _clean(raw: bytes) -> bytes:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return raw

    def _spool_frames(self, conn: _Conn, frames: list[bytes]) -> None:
        """Every complete frame of one read, spooled (and by the policy synced) before the socket is
        read again: what the agent consumed is what it keeps."""
        now = time.time()
        records = [self.encode(conn.proto, conn.peer, f, now, conn.tls_peer)
                   for f in map(self._clean, frames) if f]
        assert self.spool is not None
        self.spool.append(records, durable=True)
        self.received += len(records)

    def _udp(self, sock) -> None:
        data, addr = sock.recvfrom(65535)
        assert self.spool is not None
        if self.spool.full():
            self.dropped += 1
            self._say_dropped(time.monotonic())
            return
        raw = self._clean(data)
        if raw:
            self.spool.append([self.encode("udp", addr[0], raw, time.time())])
            self.received += 1

    def _say_dropped(self, now: float) -> None:
        new = self.dropped - self._dropped_said
        if new and (not self._dropped_said or now - self._drop_said_at >= DROP_REPORT_EVERY):
            assert self.spool is not None
            self.ctx.log.warning("syslog_udp_dropped", dropped=new, dropped_total=self.dropped,
                                 spool_bytes=self.spool.size, spool_max_bytes=self.spool.max_bytes,
                                 reason="the spool is full (broker away or list above high_water)")
            self._dropped_said = self.dropped
            self._drop_said_at = now

    def _flow(self) -> None:
        """Hold TCP/TLS connections while the spool is full; read them again once it has room."""
        assert self.spool is not None
        full = self.spool.full()
        if full and not self._holding:
            self._holding = True
            self.ctx.log.warning("syslog_spool_full", spool_bytes=self.spool.size,
                                 spool_max_bytes=self.spool.max_bytes,
                                 action="TCP/TLS senders wait; UDP datagrams are dropped and counted")
        elif not full and self._holding:
            self._holding = False
            held, self._held = self._held, []
            self.ctx.log.info("syslog_spool_room", spool_bytes=self.spool.size)
            for conn in held:
                try:
                    self.sel.register(conn.sock, selectors.EVENT_READ, ("tcp", conn))
                    self._receive(conn)  # TLS may hold decrypted bytes select() cannot see
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                        ssl.SSLWantWriteError):
                    continue
                except OSError:
                    self._close(conn)

    def _run(self) -> None:
        assert self.spool is not None
        while not self._stop.is_set():
            self._flow()
            self.spool.tick()
            self._say_dropped(time.monotonic())
            for key, _ in self.sel.select(0.5):
                what, conn = key.data
                try:
                    if what == "udp":
                        self._udp(key.fileobj)
                    elif what == "accept-tcp":
                        sock, addr = _listener(key).accept()
                        sock.setblocking(False)
                        self.sel.register(sock, selectors.EVENT_READ, ("tcp", _Conn(sock, addr[0])))
                    elif what == "accept-tls":
                        sock, addr = _listener(key).accept()
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
            if self._holding:  # the spool is full: this connection waits (TCP slows its sender)
                self.sel.unregister(conn.sock)
                self._held.append(conn)
                return
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
        out: list[bytes] = []
        while buf:
            if buf[:1].isdigit():  # octet counting: "<len> <msg>"
                sp: int | None = buf.find(b" ", 0, 12)
                if sp is not None and sp < 0:
                    if len(buf) < 12:
                        break
                    sp = None
                if sp is not None and buf[:sp].isdigit():
                    n = int(buf[:sp])
                    if len(buf) < sp + 1 + n:
                        if n > self.max_bytes + 64 and len(buf) > self.max_bytes:
                            out.append(buf[sp + 1:sp + 1 + self.max_bytes])
                            buf = b""  # the rest of that frame is lost with the connection
                            conn.sock.close()
                        break
                    out.append(buf[sp + 1:sp + 1 + n])
                    buf = buf[sp + 1 + n:]
                    continue
            i = buf.find(b"\n")
            if i < 0:
                if final or len(buf) > self.max_bytes:
                    out.append(buf)
                    buf = b""
                break
            out.append(buf[:i])
            buf = buf[i + 1:]
        conn.buf = buf
        self._spool_frames(conn, out)

    # -- the agent's side -----------------------------------------------------------------------
    def poll(self, max_lines: int, now: float) -> list[Chunk]:
        if self.spool is None:
            return []
        values, pos = self.spool.read(max_lines)
        if not values:
            return []
        return [Chunk(values, sum(map(len, values)), partial(self._ack, len(values), pos), "syslog")]

    def _ack(self, n: int, pos) -> None:
        assert self.spool is not None
        self.spool.ack(pos)
        self.lines += n

    def flush(self, now: float) -> list[Chunk]:
        return self.poll(FLUSH_LINES, now)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for key in list(self.sel.get_map().values()):
            try:
                _listener(key).close()
            except OSError:
                pass
        self.sel.close()
        if self.spool is not None and (self._thread is None or not self._thread.is_alive()):
            self.spool.close()

    def status(self) -> list[dict]:
        spool = self.spool
        queued = spool.size if spool is not None else 0
        return [{"path": addr, "lines": self.lines, "received": self.received,
                 # the spool is the listener's, not one address's: its figures go on the first
                 "lag": queued if k == 0 else 0, "spool_bytes": queued if k == 0 else 0,
                 "spool_max_bytes": spool.max_bytes if spool else 0,
                 "dropped": self.dropped if k == 0 else 0,
                 "state": "spool full" if self._holding else "listening"}
                for k, addr in enumerate(self.addresses)]


def _listener(key: selectors.SelectorKey) -> socket.socket:
    """The socket a selector key was registered with (every key here holds one of ours)."""
    return cast(socket.socket, key.fileobj)
