"""``logpipe alerts``: options only; the loop lives in :mod:`search.alerts.daemon`."""

from __future__ import annotations

from typing import Optional

import typer

alerts_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Alert rules on searches: evaluate them, list them, test them.")

STORE = typer.Option(None, "--store", help="Store URL (default as `logpipe search`).")
RULES = typer.Option(None, "--rules", help="The rules file (TOML; default LOGPIPE_ALERTS_FILE, "
                     "else $LOGPIPE_HOME/alerts.toml).")


@alerts_app.command("run")
def run(store: Optional[str] = STORE, rules: Optional[str] = RULES) -> None:
    """Evaluate the rules on a schedule and deliver notices (what `logpipe up` and the
    logpipe-alerts unit run)."""
    import signal

    from logpipe.common.config import resolve_store_url
    from logpipe.search.alerts.daemon import AlertsDaemon
    from logpipe.store import open_store

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    reader = open_store(resolve_store_url(store))
    try:
        AlertsDaemon(reader, rules).run(lambda: stop["now"])
    finally:
        reader.close()


@alerts_app.command("list")
def list_rules(rules: Optional[str] = RULES) -> None:
    """The rules (file and page), whether each fires, and mutes."""
    import time

    from logpipe.search.alerts.book import AlertBook
    from logpipe.search.alerts.config import load_config

    config = load_config(rules)
    book = AlertBook()
    now = time.time()
    firing: dict[str, list[str]] = {}
    for inc in book.incidents():
        if inc["firing"]:
            firing.setdefault(inc["rule"], []).append(inc["key"] or "*")
    mutes = book.mutes(now)
    names = {r.name for r in config.rules}
    for rule in config.rules + [r for r in book.page_rules() if r.name not in names]:
        state = "FIRING " + ",".join(firing[rule.name]) if rule.name in firing else "ok"
        muted = " (muted)" if rule.name in mutes else ""
        typer.echo(f"{rule.name:32} {rule.source:8} {state}{muted}  {rule.condition()}")
    book.close()


@alerts_app.command("test")
def test(name: Optional[str] = typer.Argument(None, help="One rule (default: all)."),
         store: Optional[str] = STORE, rules: Optional[str] = RULES,
         send: bool = typer.Option(False, "--send", help="Also send a test notice through "
                                   "every configured channel.")) -> None:
    """Evaluate the rules once now, print what would fire; record nothing."""
    import time

    from logpipe.common.config import resolve_store_url
    from logpipe.common.errors import ConfigError
    from logpipe.search.alerts.book import AlertBook, Notice
    from logpipe.search.alerts.config import load_config
    from logpipe.search.alerts.evaluate import Evaluator
    from logpipe.search.alerts.notify import channels
    from logpipe.store import open_store

    config = load_config(rules)
    book = AlertBook()
    names = {r.name for r in config.rules}
    chosen = [r for r in config.rules + [r for r in book.page_rules() if r.name not in names]
              if name is None or r.name == name]
    book.close()
    if name and not chosen:
        raise ConfigError(f"no rule named {name!r}: `logpipe alerts list` shows them")
    reader = open_store(resolve_store_url(store))
    try:
        evaluator = Evaluator(reader, time.time)
        for rule in chosen:
            found = evaluator.breaches(rule)
            if not found:
                typer.echo(f"{rule.name}: ok  ({rule.condition()})")
            for key, (_, message) in found.items():
                typer.echo(f"{rule.name}{' [' + key + ']' if key else ''}: WOULD FIRE: {message}")
    finally:
        reader.close()
    if send:
        notice = Notice("logpipe-test", "", "firing", time.time(), None,
                        "a test notice from `logpipe alerts test --send`", "test")
        for channel in channels(config, config.page_url):
            channel.send(notice)
            typer.echo(f"test notice sent by {channel.name}")


@alerts_app.command("examples")
def examples() -> None:
    """Print the built-in mail examples as rules-file TOML (or set [evaluate] examples = true)."""
    from logpipe.search.alerts.rules import MAIL_EXAMPLES

    for raw in MAIL_EXAMPLES:
        typer.echo("[[rules]]")
        for key, value in raw.items():
            text = f"{value:g}" if isinstance(value, float) else (
                str(value) if isinstance(value, int) else '"' + str(value).replace("\\", "\\\\")
                .replace('"', '\\"') + '"')
            typer.echo(f"{key} = {text}")
        typer.echo("")
