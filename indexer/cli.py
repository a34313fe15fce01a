"""``logpipe index``, ``logpipe dlq ...`` and ``logpipe stats``."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Optional

import typer

from logpipe.common.broker import Keys
from logpipe.common.config import resolve_redis_url, resolve_store_url
from logpipe.common.console import emit, interactive, json_safe, printable

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



@index_app.command("index")
def index(redis: Optional[str] = RedisOpt, store: Optional[str] = StoreOpt,
          config: Optional[str] = ConfigOpt,
          workers: int = typer.Option(2, "--workers", "-w", min=0, help="Worker processes here."),
          burst: bool = typer.Option(False, "--burst", help="Exit once everything queued is stored."),
          batch_size: int = typer.Option(5000, "--batch-size", min=1,
                                          help="Records per batch (one job, one bulk request)."),
          raw_list: str = ListOpt, prefix: str = PrefixOpt,
          metrics_port: Optional[int] = typer.Option(
              None, "--metrics-port", min=1, max=65535,
              help="Expose Prometheus metrics here. With several brokers, one indexer (and one "
                   "port) each: PORT for the first broker, PORT+1 for the second, ..."),
          metrics_host: str = MetricsHostOpt,
          ) -> None:
    """Move raw records into batches, run RQ workers that parse and store them."""
    from logpipe.indexer import daemon

    redis_url, store_url = resolve_redis_url(redis), resolve_store_url(store)
    if len(redis_url.split()) > 1:  # several brokers (space-separated URLs): one indexer each
        from logpipe.indexer.fanout import run_per_broker
        urls = redis_url.split()
        if metrics_port and metrics_port + len(urls) - 1 > 65535:
            raise typer.BadParameter(
                f"{metrics_port} leaves no room for one port per broker ({len(urls)} brokers "
                f"need {metrics_port} to {metrics_port + len(urls) - 1}): choose a lower one",
                param_hint="--metrics-port")
        args = ["--store", store_url, "--workers", str(workers), "--batch-size", str(batch_size),
                "--list", raw_list, "--prefix", prefix, *(["--burst"] if burst else []),
                *(["--config", config] if config else []), "--metrics-host", metrics_host]
        raise typer.Exit(run_per_broker(urls, args, metrics_port=metrics_port))
    daemon.run(daemon.IndexerOptions(
        redis_url=redis_url, store_url=store_url, config=config,
        workers=workers, burst=burst, batch_size=batch_size, prefix=prefix, raw_list=raw_list,
        metrics_port=metrics_port, metrics_host=metrics_host))


# --- stats ----------------------------------------------------------------------------------

@stats_app.command("stats")
def stats_cmd(redis: Optional[str] = RedisOpt, raw_list: str = ListOpt, prefix: str = PrefixOpt,
              as_json: bool = typer.Option(False, "--json", help="One JSON object."),
              metrics_port: Optional[int] = typer.Option(
                  None, "--metrics-port", min=1, max=65535,
                  help="Serve these figures for Prometheus until ^C."),
              metrics_host: str = MetricsHostOpt,
              forget: Optional[str] = typer.Option(
                  None, "--forget", metavar="NAME",
                  help="Remove one shipper's entry (a host retired, an invalid entry), by the "
                       "name `logpipe stats` shows. Needs the indexer's or an admin's broker "
                       "user, not the shipper's."),
              loss_after: float = typer.Option(
                  300.0, "--loss-after", metavar="SECONDS",
                  help="A ledger hole open this long is reported as lost (with its range)."),
              ) -> None:
    """Raw list length, jobs, workers, lines/s in and out, dead letters, lag, shippers, and the
    loss ledger per source (stored up to N, gaps G, lag L s; holes past --loss-after: LOST)."""
    from logpipe.indexer import stats
    from logpipe.indexer.startup import broker_when_up

    keys = Keys(prefix=prefix, raw=raw_list)
    client = broker_when_up(resolve_redis_url(redis), keys)
    if forget is not None:
        _forget_shipper(client, keys, forget)
        return
    if metrics_port:
        from logpipe.indexer.metrics import serve_metrics
        serve_metrics(metrics_port, client, keys, metrics_host)
        emit("metrics_serving", host=metrics_host, port=metrics_port)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return
    figures = stats.collect(client, keys, loss_after)
    if as_json:
        typer.echo(json_safe(json.dumps(figures)))
        return
    rows = [("raw list", figures["raw_list"]), ("batches in flight", figures["batches_pending"]),
            ("jobs queued", figures["jobs_queued"]), ("jobs running", figures["jobs_running"]),
            ("workers", figures["workers"]), ("lines/s in", figures["lines_in_per_s"]),
            ("lines/s out", figures["lines_out_per_s"]), ("lag (s)", figures["lag_seconds"])]
    rows += [(f"dead letters ({stage})", n) for stage, n in figures["dead_letters"].items()]
    rows += [(f"total {name}", n) for name, n in sorted(figures["totals"].items())]
    rows += [(f"shipper {s['name']}", _shipper_row(s)) for s in figures["shippers"]]
    rows += [(f"shipper {s['name']}", f"INVALID entry: {s['reason']} (remove it with "
                                      f"`logpipe stats --forget NAME`)")
             for s in figures["shippers_invalid"]]
    from logpipe.indexer.ledger import summary_line
    rows += [("ledger", summary_line(e)) for e in figures["ledger"]]
    # shipper names and figures come from the broker: shown as text, control characters escaped
    rows = [(printable(str(name)), printable(str(value))) for name, value in rows]
    if interactive(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
        table = Table(title="logpipe stats", show_header=False)
        for name, value in rows:
            table.add_row(Text(name), Text(value))
        Console().print(table)
    else:
        for name, value in rows:
            typer.echo(f"{name}\t{value}")


def _shipper_row(s: dict) -> str:
    text = f"{s['lines']} lines"
    if s["state"] == "running":
        text += f", {s['lines_per_s']}/s, lag {s['lag_bytes']} bytes"
        if s["silent"]:
            text += f", SILENT for {s['age_s']:.0f} s"
        if s.get("spool_bytes"):
            text += f", spooled {s['spool_bytes']} bytes"
    else:  # finished (a `ship --once` that ended) or stopped
        text += f", {s['state']} {s['age_s']:.0f} s ago"
    if s.get("dropped"):
        text += f", DROPPED {s['dropped']} UDP syslog datagrams (spool full)"
    return text


def _forget_shipper(client, keys: Keys, name: str) -> None:
    from redis.exceptions import NoPermissionError

    from logpipe.common.errors import BrokerError
    from logpipe.indexer import stats

    try:
        removed = stats.forget_shipper(client, keys, name)
    except NoPermissionError:
        raise BrokerError(f"this broker user may not remove shipper entries from "
                          f"{keys.shippers}: use the indexer's URL file (indexer.url) or an "
                          f"admin's") from None
    if not removed:
        typer.echo(f"no shipper named {name!r}; `logpipe stats` lists them", err=True)
        raise typer.Exit(1)
    typer.echo(f"forgot shipper {name}")


# --- dead-letter queue ----------------------------------------------------------------------

def _moment(value: Optional[str], option: str) -> Optional[float]:
    """The same time syntax as ``logpipe search --from``: ISO 8601, now-1h, or an age (1h)."""
    from logpipe.query.datemath import time_arg

    moment = time_arg(value, option, datetime.now(timezone.utc))
    return moment.timestamp() if moment else None


def _dlq(redis, prefix):
    from logpipe.indexer.dlq import DeadLetterQueue
    from logpipe.indexer.startup import broker_when_up

    keys = Keys(prefix=prefix)
    return DeadLetterQueue(broker_when_up(resolve_redis_url(redis), keys), keys)


StageOpt = typer.Option(None, "--stage", help="decode, parse or index.")
ReasonOpt = typer.Option(None, "--reason", help="Substring of the reason (case-insensitive).")
TypeOpt = typer.Option(None, "--type", help="Record type.")
SinceOpt = typer.Option(None, "--since", help="ISO time or now-1h.")
UntilOpt = typer.Option(None, "--until", help="ISO time or now-10m.")
CountOpt = typer.Option(None, "--count", "-n", min=1, help="At most this many entries.")


def _filters(stage, reason, rtype, since, until, count) -> dict:
    from logpipe.indexer.dlq import STAGES
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
    filters = _filters(stage, reason, rtype, since, until, count)  # checked before connecting
    dlq = _dlq(redis, prefix)
    for letter in dlq.iter(**filters):
        if as_json:
            typer.echo(json_safe(json.dumps(letter.to_dict())))
        else:
            when = datetime.fromtimestamp(letter.time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            typer.echo(f"{printable(letter.entry_id)}\t{when}\t{printable(letter.stage)}\t"
                       f"{printable(letter.type or '-')}\t{printable(letter.reason[:120])}")


@dlq_app.command("show")
def dlq_show(entry: str = typer.Argument(..., help="Entry id from `dlq list`."),
             redis: Optional[str] = RedisOpt, prefix: str = PrefixOpt,
             full: bool = typer.Option(False, "--full",
                                       help="The whole record, however large (default: its "
                                            "first 16 KiB; record_bytes says its size).")) -> None:
    """Show one dead letter."""
    from logpipe.indexer.dlq import valid_entry_id

    if not valid_entry_id(entry):
        raise typer.BadParameter(f"{printable(entry)!r} is not a dead-letter id: ids look like "
                                 "1764312000000-0 (see `logpipe dlq list`)", param_hint="ENTRY")
    letter = _dlq(redis, prefix).get(entry)
    if letter is None:
        typer.echo(f"no dead letter with id {entry} (see `logpipe dlq list`)", err=True)
        raise typer.Exit(1)
    typer.echo(json_safe(json.dumps(letter.to_dict(None) if full else letter.to_dict(), indent=2)))


@dlq_app.command("replay")
def dlq_replay(redis: Optional[str] = RedisOpt, store: Optional[str] = StoreOpt,
               config: Optional[str] = ConfigOpt, prefix: str = PrefixOpt,
               stage: Optional[str] = StageOpt, reason: Optional[str] = ReasonOpt,
               rtype: Optional[str] = TypeOpt, since: Optional[str] = SinceOpt,
               until: Optional[str] = UntilOpt, count: Optional[int] = CountOpt) -> None:
    """Send dead letters through the pipeline again; remove those now stored."""
    from logpipe.indexer.api import load_parse_pipeline
    from logpipe.indexer.replay import replay
    from logpipe.store import open_store

    filters = _filters(stage, reason, rtype, since, until, count)  # checked before connecting
    pipeline = load_parse_pipeline(config)
    dlq = _dlq(redis, prefix)
    from logpipe.indexer.startup import store_when_up

    sink = open_store(resolve_store_url(store))
    store_when_up(sink)
    try:
        counts = replay(dlq, pipeline, sink, **filters)
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
    filters = _filters(stage, reason, rtype, since, until, count)  # checked before connecting
    dlq = _dlq(redis, prefix)
    if not yes:
        n = sum(1 for _ in dlq.iter(**filters))
        if not typer.confirm(f"delete {n} dead letters?"):
            raise typer.Exit(1)
    typer.echo(f"purged={dlq.purge(**filters)}")
