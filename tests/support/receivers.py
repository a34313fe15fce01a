"""Real local receivers for alert notices: an SMTP server (aiosmtpd: plain, STARTTLS with a test
CA's certificate, AUTH) and an HTTP server that checks each webhook's HMAC signature. Both run on
a free loopback port in a thread of the test process and keep what they received."""

from __future__ import annotations

import email
import email.policy
import http.server
import socket
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson

from logpipe.search.alerts.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)     # email.message.EmailMessage
    sessions: list = field(default_factory=list)     # (tls used, authenticated login)
    refused_logins: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int, timeout: float = 30) -> list:
        """The messages once ``n`` have arrived (a bound for a broken test, not a timing)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= n, timeout)
        return list(self.messages)


class _Handler:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated and \
            getattr(session.auth_data, "login", None) else None
        with self.box.arrived:
            self.box.sessions.append((session.ssl is not None, login))
            self.box.messages.append(msg)
            self.box.arrived.notify_all()
        return "250 OK"


@contextmanager
def smtp_server(tls: tuple | None = None, login: tuple[str, str] | None = None):
    """A real SMTP server on 127.0.0.1: ``tls=(cert, key)`` offers (and requires) STARTTLS;
    ``login=(user, password)`` requires AUTH with exactly those. Yields (port, Mailbox)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox()
    kwargs: dict = {}
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs.update(tls_context=ctx, require_starttls=True)
    if login:
        def authenticate(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and data.login.decode() == login[0] and \
                data.password.decode() == login[1]
            if not ok:
                box.refused_logins += 1
            return AuthResult(success=ok, handled=False, auth_data=data)
        kwargs.update(authenticator=authenticate, auth_required=True,
                      auth_require_tls=bool(tls))
    port = free_port()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@dataclass
class Hooks:
    secret: bytes
    received: list = field(default_factory=list)     # (signature ok, body dict)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int, timeout: float = 30) -> list:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= n, timeout)
        return list(self.received)


@contextmanager
def webhook_receiver(secret: bytes):
    """A real HTTP server on 127.0.0.1 taking POST /hook: 204 when the HMAC signature over
    the raw body is right, 401 otherwise (both kept). Yields (url, Hooks)."""
    hooks = Hooks(secret)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            ok = verify(hooks.secret, self.headers.get(TIMESTAMP_HEADER, ""), body,
                        self.headers.get(SIGNATURE_HEADER, ""))
            with hooks.arrived:
                hooks.received.append((ok, orjson.loads(body)))
                hooks.arrived.notify_all()
            self.send_response(204 if ok else 401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", hooks
    finally:
        server.shutdown()
        server.server_close()
