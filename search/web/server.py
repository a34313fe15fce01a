"""Serve the web page: the token, the listening socket, uvicorn until SIGTERM."""

from __future__ import annotations

import socket
import sys

from logpipe.common.listen import is_loopback as _stays_local
from logpipe.common.errors import ConfigError

DEFAULT_BIND = "127.0.0.1:5601"


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:5601`` for IPv6) -> (host, port)."""
    text = (bind or DEFAULT_BIND).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--bind {bind!r}: use HOST:PORT, e.g. 127.0.0.1:5601")
    host = host.strip("[]")
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--bind {bind!r}: the port must be a number from 0 to 65535") from None
    return host, number


def is_loopback(host: str) -> bool:
    """Whether a bind address stays on this machine ("" binds every interface)."""
    return host != "" and _stays_local(host)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def shown_address(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def rotate_token(bind: str, token_file: str | None) -> None:
    """``logpipe ui --rotate-token``: a new token and session key; every session is revoked
    (a running ``logpipe ui`` over the same token file notices at its next request)."""
    from logpipe.common.config import home
    from logpipe.search.web.auth import KEY_FILE, rotate

    if not token_file:
        raise ConfigError("--rotate-token needs --token-file FILE: without one the token lives "
                          "only in the running `logpipe ui`; restart it to get a new token and "
                          "revoke every session")
    host, port = parse_bind(bind)
    token = rotate(token_file, home() / KEY_FILE)
    print("logpipe ui: new token written; every session signed in before is revoked",
          file=sys.stderr, flush=True)
    print(f"{shown_address(host, port)}/?token={token}", flush=True)


def run(store_url: str, redis_url: str | None, bind: str, token_file: str | None,
        broker_error: str | None = None, query_timeout: float | None = 10.0,
        follow_state: bool = False, session_hours: float = 12.0) -> None:
    """Print the address with the token, then serve until SIGTERM or ^C."""
    import uvicorn

    _Server = _server_class()
    from logpipe.search.web.app import create_app
    from logpipe.common.config import home
    from logpipe.search.web.auth import KEY_FILE, Secrets, load_token, new_token
    from logpipe.search.web.data import Data
    from logpipe.search.web.gate import QueryGate

    host, port = parse_bind(bind)
    loopback = is_loopback(host)
    if not loopback and not token_file:
        raise ConfigError(f"--bind {host}:{port} reaches beyond this machine: pass "
                          "--token-file FILE (0600) so the token is one you chose and keep; "
                          "anyone with it can read every stored log line")
    if not session_hours > 0:
        raise ConfigError(f"--session-hours {session_hours}: give a number of hours above 0")
    token = load_token(token_file) if token_file else new_token()
    secrets = Secrets(token, token_file, home() / KEY_FILE)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    if query_timeout is not None and query_timeout < 0:
        raise ConfigError(f"--query-timeout {query_timeout:g}: give seconds, e.g. 10 (0: no limit)")
    app = create_app(Data(store_url, redis_url, broker_error=broker_error, follow_state=follow_state),
                     secrets, session_hours, gate=QueryGate(timeout=query_timeout or None))
    if not loopback:
        print(f"logpipe ui: WARNING: listening on {host}:{port}, beyond loopback, over plain "
              "HTTP: the token and every log line shown cross the network unencrypted. Put "
              "it behind a TLS proxy or an SSH tunnel, and keep the token file private.",
              file=sys.stderr, flush=True)
    print(f"{shown_address(host, port)}/?token={token}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3, proxy_headers=False)
    server = _Server(config)
    server.run(sockets=[sock])
    print("logpipe ui: stopped", file=sys.stderr, flush=True)


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """SIGTERM and ^C are the normal way to stop: shut down and exit 0 (uvicorn would
        re-raise the signal after its graceful shutdown, ending the process by the signal)."""

        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return Server
