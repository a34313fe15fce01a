"""The web page's routes: HTML pages and the JSON API, on Starlette.

Pages: ``/`` (search), ``/trace/<qid>``, ``/dlq`` (and ``/dlq/<entry>``), ``/health``,
``/alerts`` (search/web/alerts_view.py, with its ``/api/alerts/*`` changes).
API: ``/api/search``, ``/api/histogram``, ``/api/top``, ``/api/trace/<qid>``,
``/api/event/<id>``, ``/api/surrounding/<id>``, ``/api/tail`` (server-sent events),
``/api/dlq/count``, and the two changes, ``POST /api/dlq/replay`` and ``POST /api/dlq/purge``.
Every store or broker call goes through :mod:`search.web.data`; the URL is the whole state of
a page (query, window, columns, order, page cursor), so Back and bookmarks work.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shlex
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from logpipe.common.console import emit
from logpipe.common.errors import (BrokerError, ConfigError, LogpipeError, QueryCancelled,
                                   QueryError, QueryTooExpensive, StoreBusy)
from logpipe.search import export as E
from logpipe.search.web import data as D
from logpipe.search.web.auth import SESSION_HOURS, AuthMiddleware, Guard, Secrets
from logpipe.search.web.gate import QueryGate, disconnected
from logpipe.search.web.saved import SavedSearches
from logpipe.search.web.timeline import story
from logpipe.search.web.messages import message_routes, message_states

HERE = Path(__file__).resolve().parent
DEFAULT_COLUMNS = ["@timestamp", "host", "type", "message"]   # as `logpipe search`
# ... on the page, when the hits name the host that logged them (a syslog header's `logsource`),
# that host comes first, the shipper's `host` after it
OWN_HOST_COLUMNS = ["@timestamp", "logsource", "host", "type", "message"]
TIME_FIELDS = ("@timestamp", "received_at")   # shown as times in the viewer's zone
REFRESH = ("10s", "1m", "5m")                 # auto-refresh choices (off: none)
CELL_CHARS = 300          # a table cell shows this much of a value; the row expands to all
FIELD_LIST = 50           # the sidebar lists this many fields (the page's columns first, then
FIELD_LIST_MORE = 450     # those most hits have); "more" opens this many more
MAX_COLUMNS = 50
QUICK_RANGES = [("15m", "Last 15 minutes"), ("1h", "Last hour"), ("4h", "Last 4 hours"),
                ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]
EXPORT_CHUNK = 500        # lines of an export made per store call (each under its own budget)
TAIL_POLL_S = 1.0
TAIL_BUSY_S = 5.0         # a tail whose poll found the store busy tries again after this


def _status(exc: BaseException, default: int) -> int:
    """The HTTP status of an error: its own (query too expensive 422, store busy 503), else
    ``default``."""
    return getattr(exc, "http_status", default)


def _json(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json")


def _error(exc: BaseException, status: int = 400) -> Response:
    status = _status(exc, status)
    response = _json({"error": str(exc)}, status)
    if status == 503:
        response.headers["retry-after"] = "2"
    return response


def bad_input(exc: BaseException) -> QueryError:
    """What a person reads for a request the page cannot answer as asked. The query and time
    parsers raise QueryError; a RecursionError or OverflowError from deeper down (the compiler,
    date arithmetic, the store's integer columns) is the input's fault all the same."""
    if isinstance(exc, QueryError):
        return exc
    if isinstance(exc, RecursionError):
        return QueryError("the query nests too deeply (parentheses or NOTs inside each other); "
                          "write it flatter")
    return QueryError(f"a number or date in the request is out of range ({exc}); use a "
                      "smaller one")


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number parameter, clamped to [lo, hi]; QueryError when it is not a number."""
    text = (request.query_params.get(name) or "").strip()
    if not text:
        return default
    if not text.lstrip("-").isdigit() or len(text) > 30:
        raise QueryError(f"{name} must be a whole number, not {text[:40]!r}")
    return max(lo, min(int(text), hi))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def _cut(text: str, limit: int = CELL_CHARS) -> tuple[str, bool]:
    return (text[:limit], True) if len(text) > limit else (text, False)


def _segments(text: str, qid: str | None) -> list[tuple[str, bool]]:
    """A message split around its queue id, so the template links the id (and escapes all)."""
    if not qid or qid not in text:
        return [(text, False)]
    out: list[tuple[str, bool]] = []
    parts = text.split(qid)
    for i, part in enumerate(parts):
        if part:
            out.append((part, False))
        if i < len(parts) - 1:
            out.append((qid, True))
    return out


def _time_value(value) -> str | None:
    """A time field's value as ISO UTC (an ISO string as it is, epoch seconds converted), or
    None when it is neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return D.iso(int(round(float(value) * 1000)))
        except (OverflowError, ValueError, OSError):
            return None
    if isinstance(value, str) and D._ms(value) is not None:
        return value
    return None


def _quote(value: str) -> str:
    return shlex.quote(value)


def search_command(q: str, window: D.Window, columns: list[str], order: str) -> str:
    parts = ["logpipe", "search"]
    if window.from_text:
        parts += ["--from", _quote(window.from_text)]
    if window.to_text:
        parts += ["--to", _quote(window.to_text)]
    if columns != DEFAULT_COLUMNS:
        parts += ["--fields", _quote(",".join(columns))]
    if order == "asc":
        parts.append("--asc")
    parts.append(_quote(q or "*"))
    return " ".join(parts)


def time_tag(value: Any) -> Markup:
    """A moment (epoch seconds or ISO text) as ``<time class="t">``: ISO UTC in the markup,
    shown in the viewer's zone (or UTC) by static/time.js on every page."""
    if value is None or value == "":
        return Markup("")
    text = D.iso(int(float(value) * 1000)) if isinstance(value, (int, float)) else str(value)
    return Markup('<time class="t" datetime="{0}">{0}</time>').format(text)


class Site:
    """The pages and API of one ``logpipe ui``."""

    def __init__(self, data: D.Data, guard: Guard, gate: QueryGate | None = None,
                 saved: SavedSearches | None = None):
        self.data = data
        self.saved = saved
        self.guard = guard
        self.gate = gate or QueryGate()
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(default=True,
                                                            default_for_string=True))
        self.env.filters["isotime"] = lambda seconds: D.iso(int(float(seconds) * 1000))
        self.env.filters["timetag"] = time_tag

    def render(self, request: Request, name: str, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.setdefault("csrf", self.guard.csrf_for(request.scope))
        context.setdefault("user", request.scope.get("state", {}).get("user"))  # search/web/roles
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def problem(self, request: Request, exc: BaseException, status: int) -> Response:
        """The one answer to a request that failed: JSON ``{"error"}`` for the API, the page
        (with the message where the results would be) otherwise."""
        if request.url.path.startswith("/api/"):
            return _error(exc, status)
        if request.url.path == "/":
            params = self._params(request)
            ctx = self._search_context(params)
            ctx.update(error=str(exc), command="logpipe search " + _quote(params["q"] or "*"))
            return self.render(request, "search.html", status=status, **ctx)
        return self.render(request, "problem.html", status=status, error=str(exc),
                           command="logpipe --help")

    # ------------------------------------------------------------------ search page
    def _params(self, request: Request) -> dict:
        p = request.query_params
        columns = [c.strip() for c in (p.get("columns") or "").split(",")
                   if c.strip()][:MAX_COLUMNS]
        return {"q": p.get("q", ""), "from": p.get("from", ""), "to": p.get("to", ""),
                "columns": columns or list(DEFAULT_COLUMNS), "chosen": bool(columns),
                "default_columns": list(DEFAULT_COLUMNS),
                "sort": "asc" if p.get("sort") == "asc" else "desc",
                "refresh": p.get("refresh") if p.get("refresh") in REFRESH else "",
                "after": p.get("after") or None}

    @staticmethod
    def url(path: str = "/", **params) -> str:
        clean = [(k, v) for k, v in params.items() if v not in (None, "", [])]
        return path + ("?" + urlencode(clean) if clean else "")

    def _state(self, params: dict, **changes) -> dict:
        state = {"q": params["q"], "from": params["from"], "to": params["to"],
                 "columns": ",".join(params["columns"])
                 if params["columns"] != params["default_columns"] else "",
                 "sort": params["sort"] if params["sort"] == "asc" else "",
                 "refresh": params.get("refresh", "")}
        state.update(changes)
        return state

    def _search_context(self, params: dict) -> dict[str, Any]:
        return {"params": params, "error": None, "page": None, "histogram": None, "rows": [],
                "fields": [], "links": {}, "quick": QUICK_RANGES, "url": self.url,
                "state": lambda **c: self._state(params, **c), "refresh_choices": REFRESH}

    def search_page(self, request: Request) -> HTMLResponse:
        params = self._params(request)
        ctx = self._search_context(params)
        window = self.data.window(params["from"], params["to"])
        page = self.data.search(params["q"], window, D.PAGE_SIZE, params["after"],
                                params["sort"])
        if not params["chosen"] and any("logsource" in h for h in page.hits):
            # the event's own host first (the type's syslog header names it)
            params["columns"] = list(OWN_HOST_COLUMNS)
            params["default_columns"] = list(OWN_HOST_COLUMNS)
        first_page = page if not params["after"] else None
        histogram = self.data.histogram(params["q"], window, page=first_page,
                                        order=params["sort"])
        ctx["page"], ctx["histogram"] = page, histogram
        ctx["command"] = search_command(params["q"], window, params["columns"], params["sort"])
        ctx["export"] = self.url("/api/export", **{
            "q": params["q"], "from": params["from"], "to": params["to"],
            "columns": ",".join(params["columns"]),
            "sort": params["sort"] if params["sort"] == "asc" else ""})
        ctx["rows"] = [self._row(h, params["columns"]) for h in page.hits]
        have: dict[str, int] = {}
        for h in page.hits:
            for name in h:
                if name != "id":
                    have[name] = have.get(name, 0) + 1
        ranked = sorted(have, key=lambda n: (n not in params["columns"], -have[n], n.lower()))
        shown = sorted(ranked[:FIELD_LIST],
                       key=lambda n: (n not in params["columns"], n.lower()))
        ctx["fields"] = shown
        ctx["more_fields"] = sorted(ranked[FIELD_LIST:FIELD_LIST + FIELD_LIST_MORE], key=str.lower)
        ctx["unlisted_fields"] = max(0, len(ranked) - FIELD_LIST - FIELD_LIST_MORE)
        ctx["widest"] = max((c["fields_total"] for c in page.cut.values()
                             if c.get("omitted_fields")), default=0)
        ctx["hit_fields"] = D.HIT_FIELDS_MAX
        ctx["page_bytes"] = D.PAGE_BYTES
        ctx["bars"] = self._bars(histogram, params)
        ctx["links"] = self._window_links(histogram, params)
        if page.next:
            ctx["links"]["next"] = self.url("/", **self._state(params, after=page.next))
        if params["after"]:
            ctx["links"]["first"] = self.url("/", **self._state(params))
        return self.render(request, "search.html", **ctx)

    def _row(self, h: dict, columns: list[str]) -> dict:
        cells = []
        for name in columns:
            value = h.get(name)
            when = _time_value(value) if name in TIME_FIELDS else None
            if when is not None:
                cells.append({"name": name, "segments": [(when, False)], "cut": False,
                              "qid": None, "time": when, "raw": _cell(value)})
                continue
            text, cut = _cut(_cell(value))
            if name == "qid" and text:
                cells.append({"name": name, "qid": text, "segments": [], "cut": cut,
                              "value": None if cut else text})
            else:
                qid = h.get("qid") if name == "message" and isinstance(h.get("qid"), str) else None
                cells.append({"name": name, "segments": _segments(text, qid), "cut": cut,
                              "qid": None,
                              "value": text if not cut and isinstance(value, (str, int, float))
                              and not isinstance(value, bool) else None})
        return {"id": h["id"], "cells": cells, "qid": h.get("qid")}

    def _bars(self, histogram: D.Histogram, params: dict) -> list[dict]:
        bars = []
        peak = histogram.peak or 1
        n = max(1, len(histogram.bars))
        width = 1000 / n
        for i, (start, count) in enumerate(histogram.bars):
            height = 0 if not count else max(2, round(100 * count / peak))
            # the first and last buckets are counted only inside the window: their bars
            # narrow to that part, so a click shows exactly the bar's count
            end = min(start + histogram.step_ms, histogram.end_ms or start + histogram.step_ms)
            start = max(start, histogram.start_ms or start)
            bars.append({"x": round(i * width, 2), "w": round(max(width - 1, 0.5), 2),
                         "h": height, "y": 100 - height, "count": count,
                         "from": D.iso(start), "to": D.iso(end)})
        return bars

    def _window_links(self, histogram: D.Histogram, params: dict) -> dict:
        if histogram.start_ms is None or histogram.end_ms is None:
            return {}
        links = {}
        for how in ("out", "earlier", "later"):
            lo, hi = D.shifted(histogram.start_ms, histogram.end_ms, how)
            links[how] = self.url("/", **self._state(params, **{"from": D.iso(lo),
                                                               "to": D.iso(hi)}))
        links["start"], links["end"] = D.iso(histogram.start_ms), D.iso(histogram.end_ms)
        return links

    # ------------------------------------------------------------------ trace page
    def trace_page(self, request: Request) -> HTMLResponse:
        qid = request.path_params["qid"]
        try:
            chain = self.data.trace(qid)
        except LogpipeError as exc:
            return self.render(request, "trace.html", status=_status(exc, 503), qid=qid, stories=[], error=str(exc),
                               command=f"logpipe trace {_quote(qid)}", url=self.url)
        stories = [story(q, events) for q, events in chain]
        records = message_states(self, qid)
        status = 200 if (stories and stories[0]["steps"]) or records else 404
        return self.render(request, "trace.html", status=status, qid=qid, stories=stories,
                           error=None, records=records,
                           command=f"logpipe trace {_quote(qid)}", url=self.url)

    # ------------------------------------------------------------------ dead letters
    def dlq_page(self, request: Request) -> HTMLResponse:
        p = request.query_params
        raw = {"stage": p.get("stage", ""), "reason": p.get("reason", ""),
               "type": p.get("type", "")}
        cmd = ["logpipe", "dlq", "list"]
        for key, opt in (("stage", "--stage"), ("reason", "--reason"), ("type", "--type")):
            if raw[key]:
                cmd += [opt, _quote(raw[key])]
        ctx: dict[str, Any] = {"filters": raw, "command": " ".join(cmd), "error": None, "overview": None,
               "url": self.url}
        try:
            filters = self.data.dlq_filters(raw["stage"], raw["reason"], raw["type"])
            ctx["overview"] = self.data.dlq_overview(filters)
        except (LogpipeError, QueryError) as exc:   # the page, with its filters, says why
            ctx["error"] = str(exc)
            return self.render(request, "dlq.html",
                               status=400 if isinstance(exc, QueryError) else 503, **ctx)
        return self.render(request, "dlq.html", **ctx)

    def letter_page(self, request: Request) -> HTMLResponse:
        entry = request.path_params["entry"]
        try:
            letter = self.data.dlq_letter(entry)
        except LogpipeError as exc:
            return self.render(request, "letter.html", status=503, letter=None, error=str(exc),
                               entry=entry, command=f"logpipe dlq show {_quote(entry)}")
        return self.render(request, "letter.html", preview=D.LETTER_PREVIEW,
                           status=200 if letter else 404, letter=letter,
                           error=None, entry=entry,
                           command=f"logpipe dlq show {_quote(entry)}")

    def letter_raw(self, request: Request) -> Response:
        """A dead letter's record exactly as queued, as a file."""
        entry = request.path_params["entry"]
        raw = self.data.dlq_raw(entry)
        if raw is None:
            return Response("no such dead letter", status_code=404, media_type="text/plain")
        return Response(raw, media_type="application/octet-stream",
                        headers={"content-disposition": _attachment(entry, ".record")})

    # ------------------------------------------------------------------ health
    def health_page(self, request: Request) -> HTMLResponse:
        from logpipe.search.web.health import figures_of
        figures, store, error, store_error = figures_of(self.data)   # search/web/health.py
        return self.render(request, "health.html", status=200 if figures else 503, figures=figures,
                           error=error, store=store, store_error=store_error,
                           command="logpipe stats")

    # ------------------------------------------------------------------ JSON API
    def _window(self, request: Request) -> D.Window:
        p = request.query_params
        return self.data.window(p.get("from"), p.get("to"))

    def api_search(self, request: Request) -> Response:
        p = request.query_params
        size = int_param(request, "size", D.PAGE_SIZE, 0, D.MAX_PAGE_SIZE)
        page = self.data.search(p.get("q", ""), self._window(request), size,
                                p.get("after"), "asc" if p.get("sort") == "asc" else "desc")
        # "total_relation": "gte" when more match than the total (counted up to 10,000, as
        # Elasticsearch's hits.total.relation says)
        # "cut": per hit id, the fields whose value was cut (and how many fields were left
        # out); "capped": the page stopped at PAGE_BYTES before `size` hits (next continues)
        body = {"total": page.total, "total_relation": page.total_relation,
                "hits": page.hits, "next": page.next, "cut": page.cut, "capped": page.capped,
                "limits": {"value_chars": D.VALUE_MAX, "fields": D.HIT_FIELDS_MAX,
                           "page_bytes": D.PAGE_BYTES}}
        if page.capped:
            body["note"] = (f"this page stops at {D.PAGE_BYTES // (1024 * 1024)} MB of hits, "
                            f"after {len(page.hits)}; pass after=next for the rest")
        return _json(body)

    def api_histogram(self, request: Request) -> Response:
        p = request.query_params
        h = self.data.histogram(p.get("q", ""), self._window(request),
                                interval=p.get("interval") or None)
        return _json({"interval": h.interval,
                      "buckets": [{"time": D.iso(t), "count": n} for t, n in h.bars]})

    def api_top(self, request: Request) -> Response:
        p = request.query_params
        size = int_param(request, "size", 10, 1, 100)
        return _json(self.data.top(p.get("q", ""), self._window(request), p.get("field", ""),
                                   size))

    def api_trace(self, request: Request) -> Response:
        qid = request.path_params["qid"]
        chain = self.data.trace(qid)
        stories = [story(q, events) for q, events in chain]
        if not stories or not stories[0]["steps"]:
            return _json({"error": f"no events with qid {qid}"}, 404)
        return _json({"qid": qid, "verdict": stories[-1]["verdict"], "stories": stories,
                      "events": [e for _, events in chain for e in events]})

    def api_event(self, request: Request) -> Response:
        """The event, bounded as a hit (what was cut in the ``x-logpipe-cut`` header, JSON);
        ``?field=NAME`` one field's whole value, ``?download=1`` the whole event as a file."""
        event_id = request.path_params["id"]
        found = self.data.event(event_id)
        if not found:
            return _json({"error": "no such event"}, 404)
        name = request.query_params.get("field")
        if name is not None:
            if name not in found:
                return _json({"error": f"the event has no field {name!r}"}, 404)
            value = found[name]
            if isinstance(value, str):
                return Response(value, media_type="text/plain; charset=utf-8")
            return _json(value)
        if request.query_params.get("download"):
            return Response(orjson.dumps(found, option=orjson.OPT_NON_STR_KEYS),
                            media_type="application/json",
                            headers={"content-disposition": _attachment(event_id, ".json")})
        bounded, cut = D.bounded_hit(found)
        headers = {"x-logpipe-cut": orjson.dumps(cut).decode()} if cut else None
        response = _json(bounded)
        if headers:
            response.headers.update(headers)
        return response

    def api_surrounding(self, request: Request) -> Response:
        lines = int_param(request, "lines", 5, 1, 100)
        found = self.data.surrounding(request.path_params["id"], lines)
        return _json(found) if found else _json({"error": "no such event"}, 404)

    async def api_tail(self, request: Request) -> Response:
        q = request.query_params.get("q", "")
        self.data.check_query(q)
        since, seen = await self.gate.run(self.data.tail_start, q, key="tail " + q,
                                          query=q, gone=lambda: disconnected(request.receive),
                                          what="live tail's query")

        async def events():
            # one poll at a time (the next starts a pause after the last has finished, the
            # pause as long as the poll took when that is longer); when the client goes the
            # response is cancelled, and with it the poll's budget
            nonlocal since, seen
            yield b"retry: 2000\n\n"
            stopped = False
            while True:
                pause = TAIL_POLL_S
                if stopped:  # the query is too expensive to follow: only keep the line open
                    yield b": idle\n\n"
                    await asyncio.sleep(15)
                    continue
                started = time.monotonic()
                hits: list = []
                try:
                    hits, since, seen = await self.gate.run(
                        self.data.tail_next, q, since, seen, key="tail " + q, query=q,
                        what="live tail's query")
                except QueryTooExpensive as exc:
                    stopped = True
                    yield b"event: problem\ndata: " + orjson.dumps(
                        {"error": f"live tail stopped: {exc}"}) + b"\n\n"
                    continue
                except StoreBusy as exc:
                    pause = TAIL_BUSY_S
                    yield b"event: problem\ndata: " + orjson.dumps({"error": str(exc)}) + b"\n\n"
                except LogpipeError as exc:
                    yield b"event: problem\ndata: " + orjson.dumps({"error": str(exc)}) + b"\n\n"
                for h in hits:
                    yield b"data: " + orjson.dumps(h) + b"\n\n"
                if not hits:
                    yield b": idle\n\n"
                await asyncio.sleep(max(pause, time.monotonic() - started))

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    # ------------------------------------------------------------------ store work
    def store(self, handler, key: str = "q", what: str = "query"):
        """An endpoint running ``handler(request)`` on the gate's store threads, under a time
        budget, cancelled when the client disconnects (search/web/gate.py)."""
        async def endpoint(request: Request) -> Response:
            if key == "q":
                query = request.query_params.get("q", "")
                name, hint = f"{request.url.path} {query}", query
            else:
                name, hint = f"{request.url.path}", None
            # busy, out of budget or cancelled: the error handlers answer (error_handlers)
            return await self.gate.run(handler, request, key=name, query=hint, what=what,
                                       gone=lambda: disconnected(request.receive))
        return endpoint

    def refused_work(self, request: Request, exc: LogpipeError) -> Response:
        """The answer to a request whose store work was not done: busy, out of budget while
        waiting, or cancelled (then nobody reads it)."""
        status = _status(exc, 503)
        response = self.problem(request, exc, status)
        if status == 503:
            response.headers["retry-after"] = "2"
        return response

    def api_dlq_count(self, request: Request) -> Response:
        p = request.query_params
        filters = self.data.dlq_filters(p.get("stage"), p.get("reason"), p.get("type"))
        return _json({"count": self.data.dlq_count(filters)})

    async def _change(self, request: Request):
        """The JSON body of an allowed change, or the Response refusing it."""
        state = request.scope.get("state", {})
        why = self.guard.change_allowed(state.get("auth", ""),
                                        {k.lower(): v for k, v in request.headers.items()},
                                        request.url.scheme, state.get("session"))
        if why:
            return None, _json({"error": why}, 403)
        try:
            body = orjson.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except (ValueError, orjson.JSONDecodeError):
            return None, _error(QueryError("the body must be a JSON object"))
        return body, None

    def _selection(self, body: dict):
        entries = body.get("entries")
        if entries is not None:
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise QueryError("entries must be a list of entry ids")
            return entries, None
        f = body.get("filter") or {}
        if not isinstance(f, dict):
            raise QueryError("filter must be an object with stage, reason, type")
        return None, self.data.dlq_filters(f.get("stage"), f.get("reason"), f.get("type"))

    @staticmethod
    def _who(request: Request) -> str:
        client = request.client
        how = request.scope.get("state", {}).get("auth", "")
        return f"{client.host if client else '-'} ({how})"

    async def api_dlq_replay(self, request: Request) -> Response:
        body, refused = await self._change(request)
        if refused:
            return refused
        entries, filters = self._selection(body)
        counts = await run_in_threadpool(self.data.dlq_replay, entries, filters)
        emit("ui_replay", who=self._who(request),
             what=_selection_text(entries, filters),
             **counts)
        return _json(counts)

    # ------------------------------------------------------------------ export, saved searches
    async def api_export(self, request: Request) -> Response:
        """The whole result as CSV (the columns) or NDJSON (the documents), streamed by the
        store's no-cap cursor (Reader.stream, as ``logpipe search --all``), a chunk of lines at
        a time on the gate's threads, each under its own budget; the client going away (the
        page's cancel) ends the stream and cancels the chunk in work. ``x-logpipe-total``:
        the count, for the page's progress."""
        p = request.query_params
        fmt = p.get("format") or "csv"
        if fmt not in ("csv", "ndjson"):
            raise QueryError("format must be csv or ndjson")
        q = self.data.check_query(p.get("q", ""))
        window = self._window(request)
        columns = [c.strip() for c in (p.get("columns") or "").split(",")
                   if c.strip()][:MAX_COLUMNS] or list(DEFAULT_COLUMNS)
        order = "asc" if p.get("sort") == "asc" else "desc"
        total = await self.gate.run(self.data.count, q, window, key="export " + q,
                                    query=q, what="export's count",
                                    gone=lambda: disconnected(request.receive))
        lines = E.csv_lines(self.data.every(q, window, order), columns) if fmt == "csv" \
            else E.ndjson_lines(self.data.every(q, window, order))
        gate, who = self.gate, self._who(request)

        def take() -> str:
            return "".join(itertools.islice(lines, EXPORT_CHUNK))

        async def body():
            sent = 0
            while True:
                try:
                    chunk = await gate.run(take, key="export " + q, query=q, what="export")
                except LogpipeError as exc:
                    # the body is under way: a cut-off transfer is how the page learns it
                    emit("ui_export_stopped", who=who, error=str(exc), bytes=sent)
                    raise
                if not chunk:
                    return
                sent += len(chunk)
                yield chunk.encode()

        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(body(), media_type=media, headers={
            "content-disposition": _attachment("logpipe-export", "." + fmt),
            "x-logpipe-total": str(total), "x-accel-buffering": "no"})

    def _saved(self) -> SavedSearches:
        if self.saved is None:
            raise ConfigError("saved searches need a state directory")
        return self.saved

    async def api_saved(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"searches": await run_in_threadpool(self._saved().list)})
        body, refused = await self._change(request)
        if refused:
            return refused
        action = request.path_params.get("action", "save")
        try:
            if action == "save":
                entry = await run_in_threadpool(self._saved().save, body.get("name"), body,
                                                bool(body.get("replace")))
                what = entry["name"]
            elif action == "rename":
                entry = await run_in_threadpool(self._saved().rename, body.get("name"),
                                                body.get("new_name"))
                what = f"{body.get('name')} -> {entry['name']}"
            elif action == "delete":
                await run_in_threadpool(self._saved().delete, body.get("name"))
                entry, what = {"deleted": body.get("name")}, str(body.get("name"))
            else:
                return _json({"error": "no such action"}, 404)
        except LookupError as exc:
            return _json({"error": str(exc.args[0])}, 404)
        emit("ui_saved_search", who=self._who(request), action=action, what=what)
        return _json(entry)

    async def api_dlq_purge(self, request: Request) -> Response:
        body, refused = await self._change(request)
        if refused:
            return refused
        entries, filters = self._selection(body)
        expected = await run_in_threadpool(
            self.data.dlq_count, filters) if entries is None else len(entries)
        if str(body.get("confirm", "")).strip() != str(expected):
            return _json({"error": f"type the count ({expected}) to confirm the purge",
                          "count": expected}, 409)
        purged = await run_in_threadpool(self.data.dlq_purge, entries, filters)
        emit("ui_purge", who=self._who(request),
             what=_selection_text(entries, filters),
             purged=purged)
        return _json({"purged": purged})


def _attachment(name: str, suffix: str) -> str:
    """A Content-Disposition naming a download after an id (only safe characters of it)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return f'attachment; filename="{safe[:80] or "download"}{suffix}"'


def _selection_text(entries: list | None, filters: dict | None) -> str:
    """What a replay or purge acted on, for its log line: the chosen letters, or the filter."""
    if entries is not None:
        return f"entries={len(entries)}"
    parts = [f"{k}={v}" for k, v in (filters or {}).items() if v]
    return " ".join(parts) or "all"


def error_handlers(site: Site) -> dict:
    """The one mapping of failures to answers (Starlette's ``exception_handlers``; the most
    specific class wins). For the API a JSON ``{"error": message}``, for a page the page (or
    problem.html) with the message (:meth:`Site.problem`); a 503 says ``retry-after: 2``.

    - the request's fault (a bad query, time, cursor, paging parameter; anything nested or
      sized past what can be computed): 400 with the message (QueryError, RecursionError,
      OverflowError; see :func:`bad_input`);
    - store work not done (search/web/gate.py): StoreBusy 503, QueryTooExpensive 422,
      QueryCancelled 499 (their ``http_status``), ``retry-after`` on the page too;
    - any other LogpipeError (a store or broker that cannot answer: StoreError,
      BrokerError, ConfigError): its ``http_status``, else 503;
    - no such route: 404 "not found" as text.
    The HTML pages whose errors belong in the page itself (trace, dead letters, a letter)
    still catch them where they render."""
    async def not_found(request, exc):
        return Response("not found", status_code=404, media_type="text/plain")

    async def refused(request, exc):
        return site.problem(request, bad_input(exc), 400)

    async def not_done(request, exc):
        return site.refused_work(request, exc)

    async def unavailable(request, exc):
        return site.problem(request, exc, _status(exc, 503))

    return {404: not_found, QueryError: refused, RecursionError: refused,
            OverflowError: refused, StoreBusy: not_done, QueryTooExpensive: not_done,
            QueryCancelled: not_done, LogpipeError: unavailable}


def create_app(data: D.Data, token: "str | Secrets",
               session_hours: float = SESSION_HOURS,
               clock: Callable[[], float] = time.time, gate: QueryGate | None = None,
               alerts_check: Callable | None = None,
               saved: SavedSearches | None = None, accounts_store=None,
               audit_log=None) -> Starlette:
    """The app over ``data``; ``token`` is the access token, or the :class:`Secrets` that
    follow ``--token-file`` and the session key file (rotation revokes every session);
    ``gate``: how store work is bounded and budgeted (default: QueryGate(), a 10 s budget per
    request); ``accounts_store``, ``audit_log``: the accounts and the audit log (default: in
    the state directory; search/web/roles.py)."""
    guard = Guard(token, session_hours, clock)
    if saved is None:
        from logpipe.common.config import home
        saved = SavedSearches(home())
    site = Site(data, guard, gate, saved)
    from logpipe.search.web import roles
    from logpipe.search.web.alerts_view import AlertsView
    accounts = roles.Accounts(site, accounts_store, audit_log)   # sign-in, /account, /audit
    alerts = AlertsView(site, may_change=alerts_check or roles.alerts_check)

    handlers = error_handlers(site)
    routes = [
        Route("/", site.store(site.search_page, what="search page")),
        Route("/trace/{qid:path}", site.store(site.trace_page, key="path", what="trace")),
        *message_routes(site),
        Route("/dlq", site.dlq_page),
        Route("/dlq/{entry}", site.letter_page),
        Route("/dlq/{entry}/raw", site.letter_raw),
        Route("/health", site.health_page),
        Route("/api/search", site.store(site.api_search, what="search")),
        Route("/api/histogram", site.store(site.api_histogram, what="histogram")),
        Route("/api/top", site.store(site.api_top, what="top values query")),
        Route("/api/trace/{qid:path}", site.store(site.api_trace, key="path", what="trace")),
        Route("/api/event/{id:path}", site.store(site.api_event, key="path", what="lookup")),
        Route("/api/surrounding/{id:path}", site.store(site.api_surrounding, key="path",
                                                       what="lookup")),
        Route("/api/tail", site.api_tail),
        Route("/api/dlq/count", site.api_dlq_count),
        Route("/api/dlq/replay", site.api_dlq_replay, methods=["POST"]),
        Route("/api/dlq/purge", site.api_dlq_purge, methods=["POST"]),
        *alerts.routes(),
        *accounts.routes(),
        Route("/api/export", site.api_export),
        Route("/api/saved", site.api_saved, methods=["GET", "POST"]),
        Route("/api/saved/{action}", site.api_saved, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        site.gate.close()
        alerts.close()
        accounts.close()
        data.close()

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.add_middleware(roles.RoleMiddleware, accounts=accounts)   # inside AuthMiddleware
    app.add_middleware(AuthMiddleware, guard=guard)
    app.state.site = site
    return app


__all__ = ["create_app", "search_command", "BrokerError"]
