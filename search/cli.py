"""``logpipe search``, ``logpipe trace``, ``logpipe prune`` and ``logpipe maintain``: on either
store.

The store comes from ``--store URL``, else ``LOGPIPE_STORE_URL``, else the store ``logpipe up``
recorded in ``$LOGPIPE_HOME/services.json``, else the embedded SQLite store
``$LOGPIPE_HOME/events.db`` (see :func:`store_url`).
"""

from __future__ import annotations

import difflib
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import List, Optional

import typer

from logpipe.common.console import printable
from logpipe.common.errors import ConfigError, QueryError, StoreError
from logpipe.query import datemath, lucene
from logpipe.search import render
from logpipe.search.stores import open_store
from logpipe.store.base import SearchRequest, Store

ENV_RETENTION = "LOGPIPE_RETENTION"
DEFAULT_TIMEOUT = 30.0

search_app = typer.Typer(add_completion=False, no_args_is_help=False)
trace_app = typer.Typer(add_completion=False)
prune_app = typer.Typer(add_completion=False)
maintain_app = typer.Typer(add_completion=False)

_STORE_HELP = ("Store URL: http(s)://host:9200 (Elasticsearch) or sqlite:///path.db. Default: "
               "$LOGPIPE_STORE_URL, the store `logpipe up` started, else $LOGPIPE_HOME/events.db.")


def store_url(explicit: str | None = None) -> str:
    """``--store``, then ``LOGPIPE_STORE_URL``, then ``services.json`` (``logpipe up``), then
    ``sqlite:///$LOGPIPE_HOME/events.db``."""
    from logpipe.common.config import resolve_store_url

    return resolve_store_url(explicit)


class Budgeted:
    """A store whose every request runs under a fresh time budget of ``seconds`` (store.budget):
    a count, a histogram, top values, each page of a stream. A stream of any length is fine;
    one request that takes too long stops it with "query too expensive: ..."."""

    def __init__(self, sink: Store, seconds: float | None):
        self.sink = sink
        self.seconds = seconds or None

    def _budget(self):
        from logpipe.store.budget import Budget
        return Budget(self.seconds, knob=f"--timeout {max(60, 2 * (self.seconds or 0)):g}",
                      what="search")

    def __getattr__(self, name):
        from logpipe.store.budget import applied

        attr = getattr(self.sink, name)
        if name not in ("search", "search_page", "count", "histogram", "top", "get_event"):
            return attr

        def call(*args, **kwargs):
            with applied(self._budget()):
                return attr(*args, **kwargs)
        return call

    def stream(self, request: SearchRequest, *args, **kwargs):
        from logpipe.store.budget import applied

        events = self.sink.stream(request, *args, **kwargs)
        while True:
            # a page is fetched inside one of these next() calls: each gets the whole budget
            with applied(self._budget()):
                try:
                    event = next(events)
                except StopIteration:
                    return
            yield event

    def close(self) -> None:
        self.sink.close()


@contextmanager
def naming_the_store(sink):
    """A store failure (cannot reach it, refused) says which store: its URL."""
    from logpipe.common.broker import redact

    try:
        yield
    except StoreError as exc:
        where = redact(sink.url)
        location = sink.url.split("://", 1)[-1].lstrip("/")  # host:port, or the file
        if where in str(exc) or (location and location in str(exc)):
            raise
        raise StoreError(f"store {where}: {exc}", permanent=exc.permanent) from None


def _fields(text: str | None) -> list[str]:
    if not text:
        return list(render.DEFAULT_FIELDS)
    fields = [f.strip() for f in text.split(",") if f.strip()]
    if not fields:
        raise QueryError("--fields needs at least one field name, e.g. --fields @timestamp,qid")
    return fields


@search_app.command()
def search(
    query: Optional[List[str]] = typer.Argument(
        None, help="Lucene query, e.g. 'program:sendmail AND qid:r4F*' (default: * = all)."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
    from_: Optional[str] = typer.Option(None, "--from",
                                        help="Start (inclusive): ISO time or now-1h, now-7d."),
    to: Optional[str] = typer.Option(None, "--to", help="End (exclusive): ISO time or now-1h."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0,
                                        help="Events to show (default 20; top values: 10)."),
    asc: bool = typer.Option(False, "--asc", help="Oldest first (default: newest first)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV of the --fields columns, with a "
                                "header line (cells a spreadsheet would run as a formula get "
                                "a leading ')."),
    fields: Optional[str] = typer.Option(None, "--fields", "-f",
                                         help="Columns, default @timestamp,host,type,message."),
    histogram: Optional[str] = typer.Option(None, "--histogram",
                                            help="Counts per interval (30s, 1m, 1h, 1d, 1w)."),
    top: Optional[str] = typer.Option(None, "--top", help="Top values of a field with counts."),
    count: bool = typer.Option(False, "--count", help="Print only the number of matches."),
    every: bool = typer.Option(False, "--all", help="Every match (streamed; no --limit)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", min=0,
                                  help="Seconds one store request may take (a count, a "
                                  "histogram, a page of the matches) before the search stops "
                                  "with 'query too expensive' (0: no limit)."),
) -> None:
    """Search stored events in Lucene / Kibana query syntax."""
    if histogram and top:
        raise QueryError("use either --histogram or --top, not both")
    if count and (histogram or top):
        raise QueryError("use either --count or --histogram/--top, not both")
    if every and limit is not None:
        raise QueryError("use either --all or --limit, not both")
    if as_csv and (as_json or histogram or top or count):
        raise QueryError("--csv prints events: not with --json, --histogram, --top or --count")
    text = " ".join(query) if query else "*"
    now = datetime.now(timezone.utc)
    request = SearchRequest(query=text, start=datemath.time_arg(from_, "--from", now),
                            end=datemath.time_arg(to, "--to", now), order="asc" if asc else "desc",
                            limit=None if every else 20 if limit is None else limit)
    compiled = lucene.compile_query(text, now)  # a bad query fails here, before any store
    columns = _fields(fields)
    if histogram:
        datemath.parse_interval(histogram)
    sink = Budgeted(open_store(store), timeout)
    try:
        with naming_the_store(sink):
            # the fields the query names: when nothing matches, say which no event has
            asked = _query_fields(compiled)
            if histogram:
                buckets = sink.histogram(request, histogram)
                render.print_histogram(buckets, plain=as_json, interval=histogram)
                empty = not any(n for _, n in buckets)
            elif top:
                values = sink.top(request, top, 10 if limit is None else max(1, limit))
                total = None
                if render.is_tty() and not as_json:
                    total = sink.count(request)
                render.print_top(top, values, plain=as_json, total=total)
                empty = not values
                asked = [top] + [f for f in asked if f != top]
            elif count:
                n = sink.count(request)
                print(n)
                empty = n == 0
            elif as_csv:
                from logpipe.search.export import csv_lines

                written = 0
                for written, line in enumerate(csv_lines(sink.stream(request), columns)):
                    sys.stdout.write(line)
                empty = written == 0  # the header alone
            else:
                shown, blank = _print_matches(sink, request, columns, as_json)
                empty = shown == 0
                if not empty and not as_json and fields:  # -f columns no shown event has
                    asked = [f for f in columns if f in blank]
                    empty = bool(asked)
            if empty and asked:
                _hint_missing_fields(sink, asked)
    finally:
        sink.close()


# fields every event has or that are not document fields: never "missing"
_ALWAYS = {"@timestamp", "message", "_id", "*"}


def _query_fields(node) -> list[str]:
    """The document fields a compiled query names (terms, wildcards, ranges, _exists_)."""
    from logpipe.query import tree as T

    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (T.And, T.Or)):
            stack.extend(reversed(item.items))
        elif isinstance(item, T.Not):
            stack.append(item.item)
        elif isinstance(item, (T.Term, T.Wildcard, T.Range, T.Exists)):
            if item.field not in _ALWAYS and item.field not in found:
                found.append(item.field)
    return found


def _lucene_escape(name: str) -> str:
    return "".join("\\" + c if c in '+-=&|><!(){}[]^"~*?:\\/ ' else c for c in name)


def _field_names(sink, sample: int = 200) -> set[str]:
    """Field names (dotted for nested objects) of the newest events, for suggestions."""
    names: set[str] = set()
    for event in sink.stream(SearchRequest(query="*", limit=sample)):
        stack = [("", event)]
        while stack:
            prefix, doc = stack.pop()
            for key, value in doc.items():
                name = prefix + str(key)
                names.add(name)
                if isinstance(value, dict):
                    stack.append((name + ".", value))
    return names - {"_id"}


def _hint_missing_fields(sink, fields: list[str]) -> None:
    """On stderr, for each field no stored event has: say so, with the closest names. The
    answer stays what it was (an empty answer to a valid query is still an answer)."""
    missing = []
    for field in fields:
        probe = SearchRequest(query=f"_exists_:{_lucene_escape(field)}", limit=1)
        if not sink.search_page(probe, with_total=False).hits:
            missing.append(field)
    if not missing:
        return
    known = _field_names(sink)
    for field in missing:
        close = difflib.get_close_matches(field, sorted(known), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"logpipe: note: no event has field {printable(field)!r}{hint}", file=sys.stderr)


def _print_matches(sink, request: SearchRequest, columns: list[str],
                   as_json: bool) -> tuple[int, set[str]]:
    """The matches, streamed from the store page by page: any number of them in constant memory
    into a pipe (JSON or tab-separated lines); a terminal gets a table and the total. Returns
    how many were shown and the columns none of them had."""
    tty = render.is_tty()
    shown = 0
    blank = set(columns)

    def counted(events):
        nonlocal shown
        for event in events:
            shown += 1
            if blank:
                blank.difference_update([c for c in blank if render.cell(event.get(c))])
            yield event

    if tty and not as_json:
        events = list(counted(sink.stream(request)))
        render.print_events(events, columns, tty=True, total=sink.count(request))
        return shown, blank
    render.print_events(counted(sink.stream(request)), columns, as_json=as_json, tty=False)
    if render.is_tty(sys.stderr):
        total = sink.count(request)
        more = f" (showing {shown})" if shown < total else ""
        print(f"{total} hits{more}", file=sys.stderr)
    return shown, blank


@trace_app.command()
def trace(
    qid: str = typer.Argument(..., help="Queue id of one message (sendmail or postfix)."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
    fields: Optional[str] = typer.Option(
        None, "--fields", "-f", help="Columns, default @timestamp,host,program,message."),
    limit: int = typer.Option(10000, "--limit", "-n", min=1, help="At most this many events."),
) -> None:
    """Every event of one mail message in time order, and what happened to it; then the
    events of each queue id it was handed off to ("queued as", "Message accepted"), on this host
    or another, as the page's trace shows them."""
    if not qid.strip():
        raise QueryError("trace needs a queue id, e.g. logpipe trace j061bW9V000809")
    columns = _fields(fields or "@timestamp,host,program,message")
    sink = open_store(store)
    try:
        with naming_the_store(sink):
            from logpipe.search.messages import trace_lines
            from logpipe.search.trace import trace as trace_chain

            chain = trace_chain(sink, qid, at_most=limit)
            states = trace_lines(sink, qid)
    finally:
        sink.close()
    if not chain or not chain[0][1]:
        print(f"no events with qid {printable(qid)}", file=sys.stderr)
        raise typer.Exit(1)
    tty = render.is_tty()
    for hop, (current, events) in enumerate(chain):
        if hop:  # the next MTA's queue id (as JSON: the events only, the headings on stderr)
            _trace_note(f"handed off to {printable(current)}", as_json, tty)
        render.print_events(events, columns, as_json=as_json, tty=tty)
        _trace_note(render.summary_line(render.trace_summary(current, events)), as_json, tty)
    for text in states:  # the message records: each recipient's final state, the hand-offs
        print(text, file=sys.stderr if as_json else sys.stdout)


def _trace_note(line: str, as_json: bool, tty: bool) -> None:
    """A line of ``logpipe trace`` that is not an event: bold on a terminal, on stderr beside
    JSON (stdout stays one document per line)."""
    if as_json:
        print(line, file=sys.stderr)
    elif tty:
        from rich.console import Console
        from rich.text import Text

        Console().print(Text(line, style="bold"), highlight=False)
    else:
        print(line)


@prune_app.command()
def prune(
    older_than: Optional[str] = typer.Option(
        None, "--older-than", help=f"Age like 30d, 12h, 2w (default: ${ENV_RETENTION})."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
) -> None:
    """Delete events older than a given age."""
    age = older_than or os.environ.get(ENV_RETENTION)
    if not age:
        raise ConfigError(f"how old? pass --older-than 30d or set {ENV_RETENTION}=30d")
    source = "" if older_than else f" (from ${ENV_RETENTION})"
    try:
        cutoff = datetime.now(timezone.utc) - datemath.parse_duration(age)
    except QueryError as exc:
        why = ("use a number and a unit, e.g. 30d, 12h, 2w" if "longer than" not in str(exc)
               else "longer than the whole calendar")
        raise ConfigError(f"--older-than {age!r}: {why}{source}") from None
    except OverflowError:
        raise ConfigError(f"--older-than {age!r}: that long ago is before the year 1"
                          f"{source}") from None
    url = store_url(store)
    sink = open_store(store)
    try:
        with naming_the_store(sink):
            removed = sink.prune(cutoff)
            prune_messages = getattr(sink, "prune_messages", None)
            records = prune_messages(int(cutoff.timestamp() * 1000)) if prune_messages else 0
    finally:
        sink.close()
    what = "events" if url.lower().startswith("sqlite") else "indices"
    print(f"pruned {removed} {what} and {records} message records older than "
          f"{render.time_text(cutoff)} from {url}")


@maintain_app.command()
def maintain(
    index: Optional[List[str]] = typer.Option(
        None, "--index", help="Also build the value index of this field of the events' JSON "
                              "(repeatable), so term, range, wildcard and top on it read the index."),
    unpin: Optional[List[str]] = typer.Option(
        None, "--unpin", help="Let the value index of this field (built by --index) make way "
                              "for a later one when all of them are taken (repeatable); the "
                              "index stays until then."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
) -> None:
    """Do the store's deferred work now (an idle `logpipe index` does it by itself): the
    full-text catch-up, the per-hour counts histograms read, the value indexes searches
    asked for and the value counts top values read."""
    from logpipe.store.sqlite import SqliteStore

    url = store_url(store)
    sink = open_store(store)
    try:
        if not isinstance(sink, SqliteStore):
            if index or unpin:
                raise ConfigError(f"--index and --unpin are for the embedded store: "
                                  f"Elasticsearch indexes every field as it writes ({url})")
            print(f"nothing deferred in {url}: Elasticsearch refreshes and indexes on its own")
            return
        for field in unpin or ():
            print(f"value index of {field}: " + ("unpinned" if sink.unpin(field) else
                                                   "was not pinned"), flush=True)
        print(f"full text: {sink.refresh():,} events indexed", flush=True)
        print(f"per-hour counts: {sink.roll_up():,} events counted", flush=True)
        built = sink.promote(index) if index else []
        built += sink.promote(None)
        print(f"value counts: {sink.count_values():,} events counted", flush=True)
        waiting = sink.wanted_fields()
        print("value indexes built: " + (", ".join(built) if built else "none needed")
              + (f"; still wanted (no event holds the field yet, or the limit of value "
                 f"indexes is reached): "
                 f"{', '.join(waiting)}" if waiting else ""))
    finally:
        sink.close()


__all__ = ["search_app", "trace_app", "prune_app", "maintain_app", "store_url"]
