"""``logpipe messages``: search the mail message records (one per transaction) on either store.

The query language is the one of ``logpipe search``, on the record's fields: ``qid``, ``host``,
``from``, ``to`` / ``recipients.to``, ``domain`` (a recipient's), ``status``,
``recipients.status``, ``recipients.relay``, ``recipients.dsn``, ``size``, ``delay_s``,
``spam.verdict``, ``spam.score``, ``msgid``, ``first_seen``; free text matches addresses, ids,
relays and reasons. Addresses match however the log wrote them (``<Dave@Example.org>`` is
``dave@example.org``). ``--from``/``--to`` bound ``first_seen``.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timezone
from typing import List, Optional

import orjson
import typer

from logpipe.common.errors import QueryError
from logpipe.query import datemath, lucene
from logpipe.search import render
from logpipe.store.base import MessageRecords, Store

messages_app = typer.Typer(add_completion=False)

_STORE_HELP = ("Store URL: http(s)://host:9200 (Elasticsearch) or sqlite:///path.db. Default: "
               "$LOGPIPE_STORE_URL, the store `logpipe up` started, else $LOGPIPE_HOME/events.db.")
COLUMNS = ("first_seen", "host", "qid", "from", "recipients", "status", "relay", "delay_s",
           "size", "spam")


def open_messages(store: str | None) -> Store:
    """The store, for its message records (every store keeps them: store.base.MessageRecords)."""
    from logpipe.search.stores import open_store

    return open_store(store)


def window_ms(from_: str | None, to: str | None, now: datetime | None = None
              ) -> tuple[int | None, int | None]:
    now = now or datetime.now(timezone.utc)
    start = datemath.time_arg(from_, "--from", now)
    end = datemath.time_arg(to, "--to", now)
    return (None if start is None else int(start.timestamp() * 1000),
            None if end is None else int(end.timestamp() * 1000))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _safe(value) -> str:
    """Log text for a terminal: control characters (escape sequences) blanked."""
    return _CONTROL.sub(" ", "" if value is None else str(value))


def row(record: dict) -> dict:
    """A record as the table's columns (text, one line each)."""
    rcpts = record.get("recipients") or []
    spam = record.get("spam") or {}
    relays = sorted({r["relay"] for r in rcpts if r.get("relay")})
    cols = {
        "first_seen": record.get("first_seen") or "",
        "host": record.get("host") or "",
        "qid": record.get("qid") or "",
        "from": record.get("from") if record.get("from") is not None else "",
        "recipients": ", ".join(f"{r['to']} ({r['status']})" for r in rcpts),
        "status": record.get("status") or "",
        "relay": ", ".join(relays),
        "delay_s": "" if record.get("delay_s") is None else f"{record['delay_s']:g}",
        "size": "" if record.get("size") is None else str(record["size"]),
        "spam": (f"{spam.get('verdict')} {spam.get('score')}" if spam else ""),
    }
    return {k: _safe(v) for k, v in cols.items()}


@messages_app.command()
def messages(
    query: Optional[List[str]] = typer.Argument(
        None, help="Query on message fields, e.g. 'status:bounced AND from:*@example.com "
                   "AND delay_s:>3600' (default: * = all)."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
    from_: Optional[str] = typer.Option(None, "--from", help="first_seen from (inclusive): ISO "
                                        "time or now-1h, now-7d."),
    to: Optional[str] = typer.Option(None, "--to", help="first_seen before (exclusive)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0,
                                        help="Messages to show (default 20)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per line."),
    count: bool = typer.Option(False, "--count", help="Print only the number of matches."),
    every: bool = typer.Option(False, "--all", help="Every match (streamed; no --limit)."),
    asc: bool = typer.Option(False, "--asc", help="Oldest first (default: newest first)."),
) -> None:
    """Search mail message records (one per transaction): sender, recipients, status, delay."""
    if every and limit is not None:
        raise QueryError("use either --all or --limit, not both")
    text = " ".join(query) if query else "*"
    lucene.compile_query(text)  # a bad query fails before the store is opened
    start, end = window_ms(from_, to)
    sink = open_messages(store)
    try:
        if count:
            print(sink.count_messages(text, start, end))
            return
        records = sink.stream_messages(text, start, end, None if every else
                                       20 if limit is None else limit,
                                       "asc" if asc else "desc")
        if as_json:
            for record in records:
                sys.stdout.write(orjson.dumps(record).decode() + "\n")
            return
        tty = render.is_tty()
        rows = (row(r) for r in records)
        render.print_events(list(rows) if tty else rows, list(COLUMNS), tty=tty,
                            total=sink.count_messages(text, start, end) if tty else None)
    finally:
        sink.close()


__all__ = ["messages_app", "open_messages", "row", "window_ms", "COLUMNS"]


def trace_lines(sink: MessageRecords, qid: str) -> list[str]:
    """What the message records say about a queue id, for ``logpipe trace``: each recipient's
    final state with its DSN and reason, and where the message went next (or that the queue id
    it was handed to is not in the store)."""
    from logpipe.search.trace import message_records

    out: list[str] = []
    for record in message_records(sink, qid):
        out.append(_safe(f"message {record['host']}/{record['qid']}: {record['status']}"
                         f" (from {record.get('from') or '<>'}, delay {record.get('delay_s')}s)"))
        for r in record.get("recipients") or ():
            detail = ", ".join(x for x in (r.get("dsn") and f"dsn={r['dsn']}",
                                            r.get("relay") and f"relay={r['relay']}",
                                            r.get("reason")) if x)
            out.append(_safe(f"  {r['to']}: {r['status']}" + (f" ({detail})" if detail else "")))
        for link in record.get("prev") or ():
            out.append(_safe(f"  came from {link['qid']} on {link.get('host') or '?'}"))
        for link in record.get("next") or ():
            known = link["known"]
            where = f" on {link['host']}" if link.get("host") else ""
            out.append(_safe(f"  handed to {link['qid']}{where}: " + (
                f"logpipe trace {link['qid']}" if known else
                "not in the store (that host's log is not shipped here, or not yet indexed)")))
    return out
