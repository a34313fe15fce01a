"""``logpipe ship``: tail files, stdin or a syslog port and push records onto the broker.

Imports only the base dependencies (redis, orjson, typer, rich, stdlib): nothing from the indexer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from logpipe.common.errors import ConfigError

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


def default_registry() -> Path:
    from logpipe.common.config import home
    return home() / "shipper" / "registry.json"


def _fields(values: list[str]) -> dict:
    out = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--field {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _addr(value: str, proto: str) -> str:
    """``PORT`` listens on loopback; ``HOST:PORT`` (e.g. 0.0.0.0:5514) where told."""
    return value if "://" in value else f"{proto}://{value if ':' in value else '127.0.0.1:' + value}"


@app.command(no_args_is_help=False)
def ship(
    paths: Optional[List[str]] = typer.Argument(
        None, help="Files or globs to follow ('-' for stdin). New matching files are picked up."),
    redis_url: Optional[str] = typer.Option(
        None, "--redis", help="Broker URL (else $LOGPIPE_REDIS_URL, else the one `logpipe up` "
                              "started)."),
    list_key: Optional[str] = typer.Option(None, "--list", help="Raw list key [logpipe:raw]."),
    prefix: Optional[str] = typer.Option(
        None, "--prefix", help="Prefix of logpipe's own broker keys [logpipe] (the indexer's and "
                               "`logpipe stats`' --prefix)."),
    rtype: Optional[str] = typer.Option(None, "--type", help="Record type, e.g. mail, syslog."),
    once: bool = typer.Option(False, "--once", help="Read to the end of the inputs and exit."),
    config: Optional[Path] = typer.Option(None, "--config", help="Shipper TOML config file."),
    registry: Optional[Path] = typer.Option(None, "--registry", help="Offset registry file."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name on the records."),
    field: List[str] = typer.Option([], "--field", help="Static field KEY=VALUE (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", help="Glob of files to skip."),
    multiline_pattern: Optional[str] = typer.Option(
        None, "--multiline-pattern", help="Regex marking continuation lines (e.g. '^\\s')."),
    multiline_negate: bool = typer.Option(False, "--multiline-negate"),
    multiline_match: str = typer.Option("after", "--multiline-match", help="after | before"),
    multiline_timeout: float = typer.Option(5.0, "--multiline-timeout"),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes",
                                            help="Cut longer lines (tag 'truncated')."),
    keep_empty: bool = typer.Option(False, "--keep-empty", help="Ship empty lines too."),
    syslog_udp: List[str] = typer.Option([], "--syslog-udp", help="Listen for syslog on "
                                         "[HOST:]PORT over UDP (repeatable)."),
    syslog_tcp: List[str] = typer.Option([], "--syslog-tcp", help="Listen for syslog on "
                                         "[HOST:]PORT over TCP (repeatable)."),
    syslog_tls: List[str] = typer.Option([], "--syslog-tls", help="Listen for syslog over TLS "
                                         "(RFC 5425) on [HOST:]PORT (repeatable)."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="Certificate for --syslog-tls."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="Its private key (0600)."),
    tls_client_ca: Optional[str] = typer.Option(
        None, "--tls-client-ca", help="Require senders' certificates signed by this CA."),
    batch_lines: Optional[int] = typer.Option(None, "--batch-lines", help="Records per batch."),
    batch_wait: Optional[float] = typer.Option(None, "--batch-wait"),
    high_water: Optional[int] = typer.Option(None, "--high-water",
                                             help="Pause above this list length (0: never)."),
    low_water: Optional[int] = typer.Option(None, "--low-water", help="Resume below this."),
    status: bool = typer.Option(False, "--status", help="Show the agent's state and exit."),
    status_interval: Optional[float] = typer.Option(
        None, "--status-interval", help="Log a status line every N seconds."),
    no_fsync: bool = typer.Option(False, "--no-fsync", help="Skip fsync on registry saves."),
    compress: bool = typer.Option(False, "--compress", help="Batch and compress records on the wire "
                                  "(zlib; one list item per run of records; indexers expand them)."),
    log_level: Optional[str] = typer.Option(None, "--log-level"),
) -> None:
    """Tail files, stdin or syslog and push one record per line onto the broker."""
    from logpipe.shipper.config import ShipperFlags, config_from_flags

    registry_path = Path(registry).expanduser().absolute() if registry else None
    if status:
        from logpipe.shipper.config import load_config
        from logpipe.shipper.status import collect, render

        base = load_config(config).registry if config else None
        render(collect(Path(registry_path or base or default_registry()).expanduser().absolute()))
        return
    cfg = config_from_flags(ShipperFlags(
        paths=list(paths or []), config=config, registry=registry_path,
        default_registry=default_registry(), redis=redis_url, list_key=list_key, prefix=prefix,
        host=host, rtype=rtype, fields=_fields(field), exclude=list(exclude),
        multiline_pattern=multiline_pattern, multiline_negate=multiline_negate,
        multiline_match=multiline_match, multiline_timeout=multiline_timeout,
        max_bytes=max_bytes, keep_empty=keep_empty,
        listen=[_addr(a, "udp") for a in syslog_udp] + [_addr(a, "tcp") for a in syslog_tcp]
        + [_addr(a, "tls") for a in syslog_tls],
        tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        batch_lines=batch_lines, batch_wait=batch_wait, high_water=high_water,
        low_water=low_water, status_interval=status_interval, fsync=not no_fsync, once=once,
        log_level=log_level, compress="zlib" if compress else None))

    from logpipe.common.broker import Keys
    from logpipe.common.config import resolve_redis_url
    from logpipe.shipper.agent import Agent
    from logpipe.shipper.log import Log

    url = resolve_redis_url(cfg.redis, role="shipper")
    os.umask(os.umask(0o077) | 0o077)  # the registry and status files are private (state dir)
    key = cfg.list_key or Keys().raw
    log = Log(level=cfg.log_level)
    Agent(cfg, url, log, key).run()


def main() -> None:
    from logpipe.common.cli import main as root_main
    sys.exit(root_main(["ship", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
