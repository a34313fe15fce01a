"""``logpipe up`` / ``logpipe down`` / ``logpipe demo``: everything on one machine.

``up`` starts one background supervisor process that owns the embedded services: a Valkey broker
(append-only file on, password, loopback), the store (the embedded SQLite store by default, or an
Elasticsearch node with ``--store elasticsearch``) and ``logpipe index`` with its workers. It
records where they are in ``$LOGPIPE_HOME/services.json``, which every command falls back to when
given no URL. ``down`` stops the supervisor, which stops the rest.

Secure by default: the state directory is 0700 and every file in it 0600; the broker has a
password and two least-privilege ACL users (``logpipe acl``); broker URLs, which hold passwords,
live only in the 0600 files ``admin.url``, ``shipper.url`` and ``indexer.url`` (services.json
names the files), and children get them through the environment, never argv.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import typer

from logpipe.common.config import ENV_REDIS, ENV_REDIS_FILE, home, read_services, services_file
from logpipe.common.console import emit
from logpipe.common.errors import ConfigError, LogpipeError, ServiceError
from logpipe.common.private import (PRIVATE_UMASK, open_private_append, private_dir, read_secret,
                            write_private)

if TYPE_CHECKING:  # imported where used: only --store elasticsearch needs the launcher
    from logpipe.services.elasticsearch import ElasticsearchCluster, ElasticsearchNode

up_app = typer.Typer(add_completion=False)
down_app = typer.Typer(add_completion=False)
demo_app = typer.Typer(add_completion=False)


ALERTS_RESTART_S = 10.0   # `logpipe alerts run` that exited (a broken rules file) is restarted this often


def _logpipe(*args: str) -> list[str]:
    return [sys.executable, "-m", "logpipe.common.cli", *args]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> dict | None:
    """The services.json of a live supervisor, else None."""
    info = read_services()
    return info if _alive(info.get("supervisor_pid")) and info.get("ready") else None


def supervise(store: str, workers: int, es_nodes: int = 1) -> None:
    """The background process: start services, write services.json, wait for SIGTERM.

    Everything it and its children create under the state directory is private (umask 077):
    the broker's config and AOF, the URL files, logs, the embedded store and its -wal/-shm."""
    from logpipe.common.broker import connect
    from logpipe.common.broker.acl import setup_users, write_url_files
    from logpipe.services.valkey import ValkeyServer

    os.umask(PRIVATE_UMASK)
    state = private_dir(home())
    password_file = state / "broker.password"
    if not password_file.exists():
        write_private(password_file, secrets.token_hex(16))
    broker = ValkeyServer(data_dir=state / "valkey", password=password_file.read_text().strip(),
                          appendonly=True)
    es_node: ElasticsearchNode | ElasticsearchCluster | None = None
    indexer: subprocess.Popen | None = None
    alerts: subprocess.Popen | None = None
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stopping.update(now=True))
    info: dict[str, object] = {"supervisor_pid": os.getpid(), "ready": False}
    try:
        admin_url = broker.start()
        info["broker"] = f"127.0.0.1:{broker.port}"
        # Shipper and indexer connect as least-privilege users; the URLs (with passwords) live
        # only in 0600 files, which services.json points to.
        admin = connect(admin_url)
        urls = {"admin": admin_url, **setup_users(admin, admin_url)}
        _forget_workers(admin)
        admin.close()
        url_files = {role: str(path) for role, path in write_url_files(state, urls).items()}
        info["url_files"] = url_files
        if store == "sqlite":
            store_url = "sqlite:///" + str(state / "events.db")
        elif store == "elasticsearch":
            from logpipe.services.elasticsearch import ElasticsearchCluster, ElasticsearchNode
            if es_nodes > 1:  # nodes in elasticsearch/<cluster>-n1..N, the store URL lists them all
                es_node = ElasticsearchCluster(es_nodes, data_dir=state / "elasticsearch-cluster",
                                               cluster_name="logpipe")
            else:
                es_node = ElasticsearchNode(data_dir=state / "elasticsearch",
                                            log_path=state / "elasticsearch.log")
            store_url = es_node.start()
        else:
            store_url = store
        info["store_url"] = store_url
        log = open_private_append(state / "indexer.log")
        env = {k: v for k, v in os.environ.items() if k != ENV_REDIS}
        env[ENV_REDIS_FILE] = url_files["indexer"]
        args = _logpipe("index", "--store", store_url, "--workers", str(workers))
        indexer = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   env=env)
        # the alert rules' evaluator (rules: $LOGPIPE_HOME/alerts.toml and the page's); it reads
        # the store only, so it gets no broker URL
        alerts_log = open_private_append(state / "alerts.log")
        alerts_env = {k: v for k, v in env.items() if k != ENV_REDIS_FILE}
        alerts_args = _logpipe("alerts", "run", "--store", store_url)
        alerts = subprocess.Popen(alerts_args, stdin=subprocess.DEVNULL, stdout=alerts_log,
                                  stderr=alerts_log, env=alerts_env)
        alerts_started = time.monotonic()
        info.update(ready=True, indexer_pid=indexer.pid, alerts_pid=alerts.pid, broker_pid=broker.pid,
                    es_pid=getattr(es_node, "pid", None) if es_node else None)
        _write(info)
        while not stopping["now"]:
            if indexer.poll() is not None:  # keep the workers running
                indexer = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=log, env=env)
            if alerts.poll() is not None and time.monotonic() - alerts_started > ALERTS_RESTART_S:
                alerts_started = time.monotonic()   # a broken rules file: one try per interval
                alerts = subprocess.Popen(alerts_args, stdin=subprocess.DEVNULL, stdout=alerts_log,
                                          stderr=alerts_log, env=alerts_env)
                info["alerts_pid"] = alerts.pid
                _write(info)
            time.sleep(0.5)
    except Exception as exc:
        info["error"] = str(exc)
        _write(info)
        raise
    finally:
        for child in (alerts, indexer):
            if child and child.poll() is None:
                child.terminate()
        if alerts and alerts.poll() is None:
            try:
                alerts.wait(30)
            except subprocess.TimeoutExpired:
                alerts.kill()
        if indexer and indexer.poll() is None:
            indexer.terminate()
            try:
                indexer.wait(30)
            except subprocess.TimeoutExpired:
                indexer.kill()
        if es_node:
            es_node.stop()
        broker.stop()
        info["ready"] = False
        _write(info)


def _forget_workers(client) -> int:
    """Drop the RQ worker registrations the broker's AOF kept from the last run: this broker was
    started a moment ago, on a new port, and only this supervisor's indexer works on it, so none
    of them has a live worker behind it (RQ would list a killed one for up to 90 s more, and
    `logpipe stats` showed 4 workers with 2 alive after `down` + `up`). Plain commands on RQ's
    documented keys (``rq:workers``, ``rq:workers:<queue>``, ``rq:worker:<name>``): this module
    imports no indexer package."""
    keys = [k for k in client.smembers("rq:workers")]
    sets = list(client.scan_iter(match="rq:workers:*", count=1000))
    if keys or sets:
        client.delete(*keys, *sets, "rq:workers")
    return len(keys)


def _write(info: dict) -> None:
    write_private(services_file(), json.dumps(info, indent=2))


def start(store: str = "sqlite", workers: int = 2, timeout: float = 300, es_nodes: int = 1) -> dict:
    """Start the supervisor in the background (if not running) and wait until it is ready."""
    if store not in ("sqlite", "elasticsearch"):
        from logpipe.store.registry import backend
        try:
            backend(store)  # a URL no store understands: refused before anything starts
        except ConfigError as exc:
            raise ConfigError(f"--store: {exc} (or sqlite / elasticsearch for an embedded "
                              "one)") from None
    info = running()
    if info:
        return info
    if store == "elasticsearch":  # no Java 21+ or no Maven: say what to install before anything starts
        from logpipe.services.elasticsearch import check_prerequisites
        check_prerequisites()
    state = private_dir(home())
    services_file().unlink(missing_ok=True)
    log = open_private_append(state / "supervisor.log")
    log_start = os.fstat(log.fileno()).st_size  # appended to: earlier runs' lines are not this run's story
    proc = subprocess.Popen([sys.executable, "-m", "logpipe.services.embedded", store,
                             str(workers), str(es_nodes)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, umask=PRIVATE_UMASK)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running()
        if info:
            return info
        if proc.poll() is not None:
            error = read_services().get("error")
            if error:  # the supervisor's own words (a ServiceError: what failed, what to do)
                raise ServiceError(f"the embedded services did not start: {error} "
                                   f"(log: {state / 'supervisor.log'})")
            with open(state / "supervisor.log", "rb") as f:
                f.seek(log_start)
                tail = "\n".join(f.read().decode(errors="replace").splitlines()[-30:])
            raise ServiceError(f"the embedded services did not start (log: {state / 'supervisor.log'}):\n{tail}")
        time.sleep(0.2)
    raise ServiceError(f"the embedded services were not ready after {timeout:.0f}s; "
                       f"see {state / 'supervisor.log'}")


def url_file(info: dict, role: str) -> str:
    """The broker URL of ``role`` (admin, shipper, indexer), read from its private file."""
    return read_secret(info["url_files"][role], "broker URL file")


def stop(timeout: float = 60) -> bool:
    pid = read_services().get("supervisor_pid")
    if not isinstance(pid, int) or not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


@up_app.command("up")
def up(store: str = typer.Option("sqlite", "--store",
                                 help="sqlite (embedded, no Java), elasticsearch (a local node "
                                      "from Maven Central; needs the es-node extra and Maven), "
                                      "or a store URL."),
       workers: int = typer.Option(2, "--workers", "-w", min=1),
       es_nodes: int = typer.Option(1, "--es-nodes", min=1,
                                    help="With --store elasticsearch: a cluster of N nodes on loopback "
                                         "(indices get a replica when N > 1).")) -> None:
    """Start the embedded broker, store and indexer workers in the background."""
    info = start(store, workers, es_nodes=es_nodes)
    files = info["url_files"]
    typer.echo(f"broker  {info['broker']} (URL files, 0600: shipper {files['shipper']}, "
               f"indexer {files['indexer']}, admin {files['admin']})")
    typer.echo(f"store   {info['store_url']}")
    typer.echo(f"state   {home()}  (stop with `logpipe down`)")


@down_app.command("down")
def down() -> None:
    """Stop the embedded services started by `logpipe up`."""
    typer.echo("stopped" if stop() else "nothing was running")


@demo_app.command("demo")
def demo(lines: int = typer.Option(2000, "--lines", "-n", min=10),
         store: str = typer.Option("sqlite", "--store"),
         keep: bool = typer.Option(True, "--keep/--down",
                                   help="Leave the services running afterwards.")) -> None:
    """Start everything, ship a generated maillog, wait until it is indexed, search it."""
    from logpipe.services.loggen import generate

    info = start(store)
    emit("services_ready", redis=info["broker"], store=info["store_url"])
    os.umask(PRIVATE_UMASK)  # the sample and the shipper's registry live in the state directory
    sample = private_dir(home() / "samples") / "maillog"
    # The generator spaces lines about a second apart: start far enough back to end near now.
    first = datetime.now(timezone.utc) - timedelta(seconds=lines)
    with open(sample, "w") as out:
        for line in generate("mail", lines, seed=int(time.time()) % 1000, start=first):
            out.write(line + "\n")
    emit("sample_written", path=sample, lines=lines)
    _step("ship", "--type", "mail", "--once", "--host", "demo-mail", str(sample))
    _wait_indexed(url_file(info, "indexer"), lines)
    queries = [("sendmail deliveries", ["program:sendmail AND stat:Sent*", "--limit", "5",
                                        "--fields", "@timestamp,qid,to,relay,stat"]),
               ("top senders", ["_exists_:from", "--top", "from"])]
    for title, args in queries:
        typer.echo(f"\n== {title}: logpipe search {' '.join(args)}")
        _step("search", *args)
    qid = _first_qid(info["store_url"])
    if qid:
        typer.echo(f"\n== one message's whole story: logpipe trace {qid}")
        _step("trace", qid)
    if not keep:
        stop()
        return
    typer.echo("\n== the services keep running; next:")
    for command, what in next_commands():
        typer.echo(f"  {command}\n      {what}")


def next_commands() -> list[tuple[str, str]]:
    """Commands to copy after the demo, each runnable as printed in a plain shell: the state
    directory the demo used (``./run`` sets LOGPIPE_HOME; a shell without it would look in
    ~/.logpipe) and this environment's ``logpipe`` (a venv that is not activated)."""
    import shlex
    from pathlib import Path

    exe = Path(sys.executable).parent / "logpipe"
    logpipe = shlex.quote(str(exe)) if exe.exists() else \
        " ".join(shlex.quote(a) for a in _logpipe())
    env = os.environ.get("LOGPIPE_HOME")
    prefix = f"LOGPIPE_HOME={shlex.quote(str(Path(env).absolute()))} " if env else ""
    return [(f"{prefix}{logpipe} ui",
             "the web page: search, histogram, mail trace, dead letters, health"),
            (f"{prefix}{logpipe} search --limit 10 'program:sendmail AND stat:Sent*'",
             "the same search from the command line"),
            (f"{prefix}{logpipe} down", "stop the broker, workers and store")]


def _step(*args: str) -> None:
    """One of the demo's commands; it has printed its own one-line reason when it fails, so the
    demo stops with the command's name and exit code (never a CalledProcessError traceback)."""
    done = subprocess.run(_logpipe(*args))
    if done.returncode != 0:
        raise ServiceError(f"the demo stopped: `logpipe {args[0]}` failed (exit {done.returncode}); "
                           f"its reason is printed above")


def _wait_indexed(redis_url: str, expected: int, timeout: float = 300) -> None:
    from logpipe.common.broker import Keys, connect
    from logpipe.common.broker.ledgers import Counters, PendingBatches, RawList

    client, keys = connect(redis_url), Keys()
    counters, pending, raw = Counters(client, keys), PendingBatches(client, keys), RawList(client, keys)
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        totals = counters.totals()
        done = totals.get("indexed", 0) + totals.get("duplicate", 0) + totals.get("dead_lettered", 0)
        if raw.length() == 0 and pending.count() == 0 and done >= expected:
            emit("indexed", records=done)
            return
        time.sleep(0.3)
    raise ServiceError(f"only {done} of {expected} records were indexed after {timeout:.0f}s; "
                       f"see {home() / 'indexer.log'}")


def _first_qid(store_url: str) -> str | None:
    """A delivered message's queue id, found the way a user would (this module stays free of
    indexer imports: it only runs commands)."""
    found = subprocess.run(_logpipe("search", "--store", store_url, "--json", "--limit", "1",
                                    "program:sendmail AND _exists_:to"),
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise ServiceError(f"`logpipe search` failed (exit {found.returncode}): "
                           f"{(found.stderr.strip().splitlines() or ['no message'])[-1]}")
    first = found.stdout.splitlines()[:1]
    return json.loads(first[0]).get("qid") if first else None


if __name__ == "__main__":
    try:
        supervise(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    except LogpipeError as exc:  # recorded in services.json for `start`; one line in the log, no traceback
        print(f"logpipe: error: {exc}", file=sys.stderr)
        sys.exit(2)
