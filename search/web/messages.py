"""The Messages view of ``logpipe ui``: mail message records (one per transaction), their
facets (status, recipient domain), the daily report, and each recipient's final state on the
trace page. Routes are added to the app by :func:`message_routes`; every store call runs on the
gate's threads under the request's budget (``Site.store``), as the search page's do.
"""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logpipe.common.errors import LogpipeError, QueryError
from logpipe.query import datemath, lucene
from logpipe.search.messages import row
from logpipe.search.report import summarise
from logpipe.search.trace import message_records
from logpipe.store.base import MessageRecords

PAGE = 100
_STATUSES = ("delivered", "partial", "deferred", "bounced", "rejected", "expired", "discarded",
             "queued")


def _window(p) -> tuple[int | None, int | None]:
    now = datetime.now(timezone.utc)
    out = []
    for name in ("from", "to"):
        text = (p.get(name) or "").strip()
        value = datemath.time_arg(text, name, now) if text else None
        out.append(None if value is None else int(value.timestamp() * 1000))
    return out[0], out[1]


def _sink(site) -> MessageRecords:
    return site.data.sink


def _query(p) -> str:
    q = (p.get("q") or "").strip() or "*"
    if len(q) > 4000:
        raise QueryError("the query is too long (4000 characters at most)")
    lucene.compile_query(q)
    return q


def message_states(site, qid: str) -> list[dict]:
    """The records of a queue id for the trace page (search/trace.py, as ``logpipe trace``)."""
    return message_records(site.data.sink, qid)


def message_routes(site) -> list[Route]:
    def messages_page(request: Request):
        p = request.query_params
        q = p.get("q") or ""
        ctx: dict = {"q": q, "from_": p.get("from") or "", "to": p.get("to") or "",
                     "rows": [], "total": None, "status_facet": [], "domain_facet": [],
                     "error": None, "statuses": _STATUSES,
                     "command": "logpipe messages " + (q or "*")}
        try:
            query = _query(p)
            start, end = _window(p)
            sink = _sink(site)
            records = list(sink.stream_messages(query, start, end, PAGE))
            ctx["rows"] = [{**row(r), "qid_raw": r.get("qid"), "host_raw": r.get("host")}
                           for r in records]
            ctx["total"] = sink.count_messages(query, start, end)
            ctx["status_facet"] = sink.facet_messages("status", query, start, end)
            ctx["domain_facet"] = sink.facet_messages("domain", query, start, end)
        except LogpipeError as exc:
            ctx["error"] = str(exc)
            return site.render(request, "messages.html", status=400
                               if isinstance(exc, QueryError) else 503, **ctx)
        return site.render(request, "messages.html", **ctx)

    def report_page(request: Request):
        p = request.query_params
        ctx: dict = {"figures": None, "error": None, "since": p.get("since") or "24h"}
        try:
            now = datetime.now(timezone.utc)
            start = now - datemath.parse_duration(ctx["since"])
            sink = _sink(site)
            ctx["figures"] = summarise(sink.stream_messages(
                "*", int(start.timestamp() * 1000), None, None, "asc"))
        except LogpipeError as exc:
            ctx["error"] = str(exc)
            return site.render(request, "report.html", status=400
                               if isinstance(exc, QueryError) else 503, **ctx)
        return site.render(request, "report.html", **ctx)

    def api_messages(request: Request):
        p = request.query_params
        query = _query(p)
        start, end = _window(p)
        try:
            size = max(1, min(1000, int(p.get("size") or PAGE)))
        except ValueError:
            raise QueryError("size must be a number") from None
        sink = _sink(site)
        return JSONResponse({"total": sink.count_messages(query, start, end),
                             "messages": list(sink.stream_messages(query, start, end, size))})

    return [
        Route("/messages", site.store(messages_page, what="message search")),
        Route("/messages/report", site.store(report_page, what="report")),
        Route("/api/messages", site.store(api_messages, what="message search")),
    ]


__all__ = ["message_routes", "message_states"]
