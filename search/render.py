"""Showing search results: rich tables and bar charts on a terminal, plain lines in a pipe.

* events: ``--json`` one JSON object per line (the stored document, ``@timestamp`` first); on a
  terminal a table of ``--fields``; in a pipe the same fields tab-separated, one event a line.
* histogram: a bar chart on a terminal; ``time<TAB>count`` in a pipe or with ``--json``.
* top values: a table with bars on a terminal; ``value<TAB>count`` in a pipe or with ``--json``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import IO, Iterable

import orjson

from logpipe.common.console import json_safe, printable

DEFAULT_FIELDS = ["@timestamp", "host", "type", "message"]
_BAR = "█"
_PARTIAL = " ▏▎▍▌▋▊▉"


def is_tty(stream: IO | None = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def stored_doc(event: dict) -> dict:
    """The document as stored: ``@timestamp`` first, without search metadata (``_id``)."""
    doc = {}
    if "@timestamp" in event:
        doc["@timestamp"] = event["@timestamp"]
    for key, value in event.items():
        if key != "@timestamp" and key != "_id":
            doc[key] = value
    return doc


def cell(value) -> str:
    """One value as plain text on one line, terminal-safe: every control character (tab, CR
    and LF too, so a value keeps its column and its line) is escaped visibly, e.g. ``\\x1b``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return printable(orjson.dumps(value).decode())
    if isinstance(value, bool):
        return "true" if value else "false"
    return printable(str(value))


def _text(value: str):
    """A table cell for rich: literal text, never markup (a log line may hold '[/x]')."""
    from rich.text import Text

    return Text(value)


def time_text(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------ events

def json_lines(events: Iterable[dict]) -> Iterable[str]:
    """Exact JSON, one document a line; C0 controls are escaped by JSON itself, DEL and C1 as
    ``\\u`` escapes too, so no line holds a raw control character."""
    for event in events:
        yield json_safe(orjson.dumps(stored_doc(event)).decode())


def tsv_lines(events: Iterable[dict], fields: list[str]) -> Iterable[str]:
    for event in events:
        yield "\t".join(cell(event.get(f)) for f in fields)


def print_events(events: Iterable[dict], fields: list[str], *, as_json: bool = False,
                 out: IO | None = None, tty: bool | None = None, total: int | None = None,
                 title: str | None = None) -> None:
    out = out or sys.stdout
    tty = is_tty(out) if tty is None else tty
    if as_json:
        for line in json_lines(events):
            out.write(line + "\n")
        return
    if not tty:
        for line in tsv_lines(events, fields):
            out.write(line + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False,
                  title=title, title_justify="left")
    for f in fields:
        if f == "message":
            table.add_column(_text(printable(f)), overflow="fold", ratio=1)
        else:
            table.add_column(_text(printable(f)), no_wrap=f == "@timestamp", overflow="fold")
    shown = 0
    for event in events:
        table.add_row(*[_text(cell(event.get(f))) for f in fields])
        shown += 1
    console.print(table)
    if total is not None:
        more = f" (showing {shown})" if shown < total else ""
        console.print(f"[dim]{total} hit{'s' if total != 1 else ''}{more}[/dim]")


# ------------------------------------------------------------------------------------ charts

def _bar(value: int, peak: int, width: int) -> str:
    if peak <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / peak * width * 8))
    full, rest = divmod(eighths, 8)
    return _BAR * full + (_PARTIAL[rest] if rest else "")


def print_histogram(buckets: list[tuple[datetime, int]], *, plain: bool = False,
                    out: IO | None = None, tty: bool | None = None, interval: str = "") -> None:
    out = out or sys.stdout
    tty = is_tty(out) if tty is None else tty
    if plain or not tty:
        for when, n in buckets:
            out.write(f"{time_text(when)}\t{n}\n")
        return
    from rich.console import Console

    console = Console(file=out)
    if not buckets:
        console.print("[dim]no events[/dim]")
        return
    peak = max(n for _, n in buckets)
    label_width = max(len(time_text(w)) for w, _ in buckets)
    count_width = len(str(peak))
    width = max(10, console.width - label_width - count_width - 4)
    for when, n in buckets:
        console.print(f"{time_text(when):<{label_width}} {n:>{count_width}} "
                      f"[cyan]{_bar(n, peak, width)}[/cyan]", highlight=False)
    total = sum(n for _, n in buckets)
    console.print(f"[dim]{total} events in {len(buckets)} buckets"
                  f"{' of ' + interval if interval else ''}[/dim]")


def print_top(field: str, values: list[tuple[str, int]], *, plain: bool = False,
              out: IO | None = None, tty: bool | None = None, total: int | None = None) -> None:
    out = out or sys.stdout
    tty = is_tty(out) if tty is None else tty
    if plain or not tty:
        for value, n in values:
            out.write(f"{cell(value)}\t{n}\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    if not values:
        console.print(_text(f"no values for {printable(field)}"), style="dim")
        return
    peak = max(n for _, n in values)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column(_text(printable(field)), overflow="fold")
    table.add_column("count", justify="right")
    if total:
        table.add_column("%", justify="right")
    table.add_column("", no_wrap=True)
    for value, n in values:
        row = [_text(cell(value)), str(n)]
        if total:
            row.append(f"{100.0 * n / total:.1f}")
        row.append(f"[cyan]{_bar(n, peak, 30)}[/cyan]")
        table.add_row(*row)
    console.print(table)


# ------------------------------------------------------------------------------------ trace

def trace_summary(qid: str, events: list[dict]) -> dict:
    """What happened to one message: sender, recipients, last relay, status and delay."""
    sender = next((e["from"] for e in events if e.get("from")), None)
    recipients: list[str] = []
    for e in events:
        to = e.get("to")
        for addr in (to if isinstance(to, list) else [to] if to else []):
            for one in str(addr).split(","):
                one = one.strip()
                if one and one not in recipients:
                    recipients.append(one)
    deliveries = [e for e in events if e.get("stat") or e.get("status")]
    last = deliveries[-1] if deliveries else {}
    relay = last.get("relay") or next((e["relay"] for e in reversed(events)
                                       if e.get("relay")), None)
    return {"qid": qid, "from": sender, "to": recipients, "relay": relay,
            "stat": last.get("stat") or last.get("status"),
            "delay": last.get("delay") or next((e["delay"] for e in reversed(events)
                                                if e.get("delay")), None),
            "events": len(events)}


def summary_line(summary: dict) -> str:
    parts = [f"qid={printable(str(summary['qid']))}"]
    for key in ("from", "to", "relay", "stat", "delay"):
        value = summary.get(key)
        if isinstance(value, list):
            value = ",".join(map(str, value))
        parts.append(f"{key}={printable(str(value)) if value else '-'}")
    parts.append(f"events={summary['events']}")
    return " ".join(parts)
