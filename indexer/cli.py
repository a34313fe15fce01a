"""``logpipe index``, ``logpipe dlq ...`` and ``logpipe stats``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Optional

import typer
from redis.exceptions import ConnectionError as RedisConnectionError

from common.broker import Keys, connect, redact
from common.config import resolve_redis_url, resolve_store_url
from common.console import Progress, emit, interactive
from common.errors import BrokerError

index_app = typer.Typer(add_completion=False)
dlq_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Inspect, replay or purge the dead-letter queue.")
stats_app = typer.Typer(add_completion=False)

RedisOpt = typer.Option(None, "--redis", help="Broker URL (else LOGPIPE_REDIS_URL, else `logpipe up`'s).")
StoreOpt = typer.Option(None, "--store", help="Store URL: http(s)://... (Elasticsearch) or sqlite:///path.")
ListOpt = typer.Option("logpipe:raw", "--list", help="Raw list key the shippers push to.")
PrefixOpt = typer.Option("logpipe", "--prefix", help="Prefix of logpipe's own broker keys.")
ConfigOpt = typer.Option(None, "--config", help="Pipeline config (TOML) overriding built-in types.")
MetricsHostOpt = typer.Option("127.0.0.1", "--metrics-host",
                              help="Address the metrics port binds (no authentication: "
                                   "loopback unless told otherwise).")


def _client(url: str):
    client = connect(url)
    try:
        client.ping()
    except Exception as exc:
        from common.broker_tls import tls_failure
        raise BrokerError(f"cannot reach the broker at {redact(url)}: "
                          f"{tls_failure(exc) or exc}") from None
    return client


@index_app.command("index")
def index(redis: Optional[str] = RedisOpt, store: Optional[str] = StoreOpt,
          config: Optional[str] = ConfigOpt,
          workers: int = typer.Option(2, "--workers", "-w", min=0, help="Worker processes here."),
          burst: bool = typer.Option(False, "--burst", help="Exit once everything queued is stored."),
          batch_size: int = typer.Option(5000, "--batch-size", min=1,
                                          help="Records per batch (one job, one bulk request)."),
          raw_list: str = ListOpt, prefix: str = PrefixOpt,
          metrics_port: Optional[int] = typer.Option(None, "--metrics-port",
                                                     help="Expose Prometheus metrics here."),
          metrics_host: str = MetricsHostOpt,
          ) -> None:
    """Move raw records into batches, run RQ workers that parse and store them."""
    from indexer.dispatch import Dispatcher
    from indexer.jobs import JobSettings
    from indexer.pipeline import Pipeline, load_pipeline
    from indexer.sinks import open_sink

    redis_url = resolve_redis_url(redis)
    store_url = resolve_store_url(store)
    Pipeline(load_pipeline(config)).compile_all()  # a broken config or pattern fails here
    sink = open_sink(store_url)
    sink.prepare()
    client = _client(redis_url)
    settings = JobSettings(redis_url=redis_url, store_url=store_url, config_path=config,
                           prefix=prefix, raw=raw_list)
    dispatcher = Dispatcher(client, settings, batch_size=batch_size,
                            max_queued_jobs=max(4, 2 * workers))
    if metrics_port:
        from indexer.metrics import serve_metrics
        serve_metrics(metrics_port, client, settings.keys, metrics_host)
    pool = WorkerPool(redis_url, settings.keys.queue, workers)
    stopping = {"now": False}

    def _stop(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emit("index_started", redis=redact(redis_url), store=redact(store_url), workers=workers,
         burst=burst)
    last_janitor = last_report = last_maintain = 0.0
    outage = BrokerOutage()
    progress = Progress("index_progress")
    try:
        pool.start()
        while not stopping["now"]:
            now = time.monotonic()
            if now - last_janitor > 2:
                pool.supervise()
            try:
                moved = dispatcher.dispatch_once()
                if now - last_janitor > 2:
                    dispatcher.janitor()
                    last_janitor = now
                if now - last_report > 1:
                    progress.update(**_figures(client, settings.keys))
                    last_report = now
                # Deferred store work (the embedded store's full-text catch-up) runs only when
                # nothing waits, so it never takes the store's write lock from the workers.
                check = not moved and (burst or now - last_maintain > 1)
                idle = check and dispatcher.idle()
                outage.ended()
            except RedisConnectionError as exc:
                outage.wait(exc)
                continue
            if idle and burst:
                while sink.maintain():  # a burst ends fully searchable
                    pass
                break
            if check:
                last_maintain = 0.0 if idle and sink.maintain() else now
            if not moved:
                time.sleep(0.05)
    finally:
        pool.stop()
        sink.close()
        try:
            progress.close("index_done", **_figures(client, settings.keys))
        except RedisConnectionError:
            progress.close("index_done", broker="unreachable")


class BrokerOutage:
    """One log line when the broker goes away, one when it is back; backoff in between."""

    def __init__(self):
        self.since: float | None = None
        self.delay = 0.2

    def wait(self, exc: Exception) -> None:
        if self.since is None:
            self.since = time.monotonic()
            emit("broker_unreachable", error=str(exc)[:200])
        time.sleep(self.delay * (0.5 + random.random()))
        self.delay = min(self.delay * 2, 5.0)

    def ended(self) -> None:
        if self.since is not None:
            emit("broker_back", down_seconds=round(time.monotonic() - self.since, 1))
            self.since, self.delay = None, 0.2


class WorkerPool:
    """Worker subprocesses, restarted if one dies (a killed worker's batch is retried)."""

    def __init__(self, redis_url: str, queue: str, size: int):
        self.redis_url, self.queue, self.size = redis_url, queue, size
        self.procs: list[subprocess.Popen] = []

    def _spawn(self) -> subprocess.Popen:
        # The URL (and its password) goes through the environment, never argv.
        return subprocess.Popen([sys.executable, "-m", "indexer.worker", self.queue],
                                stdin=subprocess.DEVNULL,
                                env={**os.environ, "LOGPIPE_REDIS_URL": self.redis_url})

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.size)]

    def supervise(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                emit("worker_died", pid=proc.pid, code=proc.returncode)
                self.procs[i] = self._spawn()

    def stop(self, timeout: float = 30) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the current job
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _figures(client, keys: Keys) -> dict:
    from indexer.stats import totals

    counters = totals(client, keys)
    return dict(raw=client.llen(keys.raw), batches=client.zcard(keys.batches),
                claimed=counters.get("claimed", 0), indexed=counters.get("indexed", 0),
                duplicate=counters.get("duplicate", 0),
                dead_lettered=counters.get("dead_lettered", 0))


# --- stats ----------------------------------------------------------------------------------

@stats_app.command("stats")
def stats_cmd(redis: Optional[str] = RedisOpt, raw_list: str = ListOpt, prefix: str = PrefixOpt,
              as_json: bool = typer.Option(False, "--json", help="One JSON object."),
              metrics_port: Optional[int] = typer.Option(
                  None, "--metrics-port", help="Serve these figures for Prometheus until ^C."),
              metrics_host: str = MetricsHostOpt,
              ) -> None:
    """Raw list length, jobs, workers, lines/s in and out, dead letters, lag."""
    from indexer import stats

    client = _client(resolve_redis_url(redis))
    keys = Keys(prefix=prefix, raw=raw_list)
    if metrics_port:
        from indexer.metrics import serve_metrics
        serve_metrics(metrics_port, client, keys, metrics_host)
        emit("metrics_serving", host=metrics_host, port=metrics_port)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return
    figures = stats.collect(client, keys)
    if as_json:
        typer.echo(json.dumps(figures))
        return
    rows = [("raw list", figures["raw_list"]), ("batches in flight", figures["batches_pending"]),
            ("jobs queued", figures["jobs_queued"]), ("jobs running", figures["jobs_running"]),
            ("workers", figures["workers"]), ("lines/s in", figures["lines_in_per_s"]),
            ("lines/s out", figures["lines_out_per_s"]), ("lag (s)", figures["lag_seconds"])]
    rows += [(f"dead letters ({stage})", n) for stage, n in figures["dead_letters"].items()]
    rows += [(f"total {name}", n) for name, n in sorted(figures["totals"].items())]
    rows += [(f"shipper {s['name']}", f"{s.get('lines', 0)} lines, {s.get('lines_per_s', 0)}/s, "
                                      f"lag {s.get('lag_bytes', 0)} bytes")
             for s in figures["shippers"]]
    if interactive(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        table = Table(title="logpipe stats", show_header=False)
        for name, value in rows:
            table.add_row(name, str(value))
        Console().print(table)
    else:
        for name, value in rows:
            typer.echo(f"{name}\t{value}")


# --- dead-letter queue ----------------------------------------------------------------------

def _moment(value: Optional[str], option: str) -> Optional[float]:
    """The same time syntax as ``logpipe search --from``: ISO 8601, now-1h, or an age (1h)."""
    from indexer.search.cli import time_arg

    moment = time_arg(value, option, datetime.now(timezone.utc))
    return moment.timestamp() if moment else None


def _dlq(redis, prefix):
    from indexer.dlq import DeadLetterQueue
    return DeadLetterQueue(_client(resolve_redis_url(redis)), Keys(prefix=prefix))


StageOpt = typer.Option(None, "--stage", help="decode, parse or index.")
ReasonOpt = typer.Option(None, "--reason", help="Substring of the reason (case-insensitive).")
TypeOpt = typer.Option(None, "--type", help="Record type.")
SinceOpt = typer.Option(None, "--since", help="ISO time or now-1h.")
UntilOpt = typer.Option(None, "--until", help="ISO time or now-10m.")
CountOpt = typer.Option(None, "--count", "-n", min=1, help="At most this many entries.")


def _filters(stage, reason, rtype, since, until, count) -> dict:
    from indexer.dlq import STAGES
    if stage and stage not in STAGES:
        raise typer.BadParameter(f"stage must be one of {', '.join(STAGES)}", param_hint="--stage")
    return dict(stage=stage, reason=reason, rtype=rtype, since=_moment(since, "--since"),
                until=_moment(until, "--until"), count=count)


@dlq_app.command("list")
def dlq_list(redis: Optional[str] = RedisOpt, prefix: str = PrefixOpt, stage: Optional[str] = StageOpt,
             reason: Optional[str] = ReasonOpt, rtype: Optional[str] = TypeOpt,
             since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
             count: Optional[int] = CountOpt,
             as_json: bool = typer.Option(False, "--json")) -> None:
    """List dead letters, oldest first."""
    dlq = _dlq(redis, prefix)
    for letter in dlq.iter(**_filters(stage, reason, rtype, since, until, count)):
        if as_json:
            typer.echo(json.dumps(letter.to_dict()))
        else:
            when = datetime.fromtimestamp(letter.time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            typer.echo(f"{letter.entry_id}\t{when}\t{letter.stage}\t{letter.type or '-'}\t"
                       f"{letter.reason[:120]}")


@dlq_app.command("show")
def dlq_show(entry: str = typer.Argument(..., help="Entry id from `dlq list`."),
             redis: Optional[str] = RedisOpt, prefix: str = PrefixOpt) -> None:
    """Show one dead letter in full."""
    letter = _dlq(redis, prefix).get(entry)
    if letter is None:
        typer.echo(f"no dead letter with id {entry}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(letter.to_dict(), indent=2))


@dlq_app.command("replay")
def dlq_replay(redis: Optional[str] = RedisOpt, store: Optional[str] = StoreOpt,
               config: Optional[str] = ConfigOpt, prefix: str = PrefixOpt,
               stage: Optional[str] = StageOpt, reason: Optional[str] = ReasonOpt,
               rtype: Optional[str] = TypeOpt, since: Optional[str] = SinceOpt,
               until: Optional[str] = UntilOpt, count: Optional[int] = CountOpt) -> None:
    """Send dead letters through the pipeline again; remove those now stored."""
    from indexer.pipeline import Pipeline, load_pipeline
    from indexer.replay import replay
    from indexer.sinks import open_sink

    dlq = _dlq(redis, prefix)
    pipeline = Pipeline(load_pipeline(config))
    pipeline.compile_all()
    sink = open_sink(resolve_store_url(store))
    sink.prepare()
    try:
        counts = replay(dlq, pipeline, sink,
                        **_filters(stage, reason, rtype, since, until, count))
    finally:
        sink.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@dlq_app.command("purge")
def dlq_purge(redis: Optional[str] = RedisOpt, prefix: str = PrefixOpt,
              stage: Optional[str] = StageOpt, reason: Optional[str] = ReasonOpt,
              rtype: Optional[str] = TypeOpt, since: Optional[str] = SinceOpt,
              until: Optional[str] = UntilOpt, count: Optional[int] = CountOpt,
              yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete dead letters for good."""
    dlq = _dlq(redis, prefix)
    filters = _filters(stage, reason, rtype, since, until, count)
    if not yes:
        n = sum(1 for _ in dlq.iter(**filters))
        if not typer.confirm(f"delete {n} dead letters?"):
            raise typer.Exit(1)
    typer.echo(f"purged={dlq.purge(**filters)}")
