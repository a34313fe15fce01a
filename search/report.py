"""``logpipe report``: the mail admin's daily summary (what pflogsumm prints), from the message
records of a period, so its figures are the records' figures.

* messages received (a queue id and an accepted envelope), and by overall status; NOQUEUE
  rejects;
* recipients delivered, deferred, bounced, rejected, expired, discarded;
* bytes received (each message's size once) and delivered (size x recipients sent);
* top senders, recipients, sender and recipient domains;
* bounce, reject and deferral reasons; delay percentiles of delivered messages;
* traffic per hour (received by first_seen, delivered recipients by their message's first_seen).
"""

from __future__ import annotations

import html
import re
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Iterable, Optional

import orjson
import typer

from logpipe.common.errors import QueryError
from logpipe.query import datemath
from logpipe.search.messages import _STORE_HELP, open_messages
from logpipe.store.messages import NOQUEUE, addr_domain

report_app = typer.Typer(add_completion=False)
TOP = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_QUEUE_ID_IN_REASON = re.compile(r"\b[0-9A-Za-z]{9,20}\b(?= Message accepted)|queued as \w+")


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (the value below which p% of the values lie, inclusive)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def reason_key(text: str | None) -> str:
    """A reason as a report groups it: one line, at most 120 characters."""
    text = _CONTROL.sub(" ", text or "(none)").strip()
    return text[:120] or "(none)"


def summarise(records: Iterable[dict]) -> dict:
    """The report's figures from message records."""
    status: Counter = Counter()
    rcpt: Counter = Counter()
    senders: Counter = Counter()
    recipients: Counter = Counter()
    sender_domains: Counter = Counter()
    recipient_domains: Counter = Counter()
    bounces: Counter = Counter()
    rejects: Counter = Counter()
    deferrals: Counter = Counter()
    received_hour: Counter = Counter()
    delivered_hour: Counter = Counter()
    delays: list[float] = []
    received = noqueue = bytes_in = bytes_out = 0
    for r in records:
        noq = r.get("qid") == NOQUEUE
        status[r.get("status") or "queued"] += 1
        hour = (r.get("first_seen") or "")[:13]
        if noq:
            noqueue += 1
        elif r.get("from") is not None:  # an envelope was accepted (a timeout alone is not)
            received += 1
            bytes_in += r.get("size") or 0
            received_hour[hour] += 1
            sender = r.get("from")
            if sender is not None:
                senders[sender or "<>"] += 1
                sender_domains[addr_domain(sender) or "(none)"] += 1
        if noq and not r.get("recipients") and r.get("reason"):
            rejects[reason_key(r.get("reason"))] += 1
        for x in r.get("recipients") or ():
            st = x.get("status")
            rcpt[st] += 1
            if st == "sent":
                bytes_out += r.get("size") or 0
                recipients[x["to"]] += 1
                recipient_domains[addr_domain(x["to"]) or "(none)"] += 1
                delivered_hour[hour] += 1
            elif st == "bounced":
                bounces[reason_key(x.get("reason"))] += 1
            elif st == "rejected":
                rejects[reason_key(x.get("reason"))] += 1
            elif st == "deferred":
                deferrals[reason_key(x.get("reason"))] += 1
        if r.get("status") in ("delivered", "partial") and r.get("delay_s") is not None:
            delays.append(float(r["delay_s"]))
    return {
        "received": received, "noqueue_rejected": noqueue,
        "messages_by_status": dict(sorted(status.items())),
        "delivered": rcpt["sent"], "deferred": rcpt["deferred"], "bounced": rcpt["bounced"],
        "rejected": rcpt["rejected"], "expired": rcpt["expired"], "discarded": rcpt["discarded"],
        "bytes_received": bytes_in, "bytes_delivered": bytes_out,
        "top_senders": senders.most_common(TOP), "top_recipients": recipients.most_common(TOP),
        "top_sender_domains": sender_domains.most_common(TOP),
        "top_recipient_domains": recipient_domains.most_common(TOP),
        "bounce_reasons": bounces.most_common(TOP), "reject_reasons": rejects.most_common(TOP),
        "deferral_reasons": deferrals.most_common(TOP),
        "delay_percentiles": {f"p{p}": percentile(delays, p) for p in (50, 90, 95, 99, 100)},
        "per_hour": [{"hour": h + ":00Z", "received": received_hour[h],
                      "delivered": delivered_hour[h]}
                     for h in sorted(set(received_hour) | set(delivered_hour))],
    }


_SECTIONS = (("top_senders", "Top senders"), ("top_recipients", "Top recipients"),
             ("top_sender_domains", "Top sender domains"),
             ("top_recipient_domains", "Top recipient domains"),
             ("bounce_reasons", "Bounce reasons"), ("reject_reasons", "Reject reasons"),
             ("deferral_reasons", "Deferral reasons"))


def _plain(value) -> str:
    return _CONTROL.sub(" ", str(value))


def text_report(figures: dict, title: str) -> str:
    out = [title, "=" * len(title), "", "Grand totals", "------------"]
    for key, label in (("received", "received"), ("delivered", "delivered"),
                       ("deferred", "deferred"), ("bounced", "bounced"),
                       ("rejected", "rejected (recipients)"),
                       ("noqueue_rejected", "rejected (NOQUEUE)"), ("expired", "expired"),
                       ("discarded", "discarded"), ("bytes_received", "bytes received"),
                       ("bytes_delivered", "bytes delivered")):
        out.append(f"{figures[key]:>12,}  {label}")
    out += ["", "Messages by status: " + ", ".join(f"{k} {v}" for k, v in
                                                figures["messages_by_status"].items())]
    d = figures["delay_percentiles"]
    out.append("Delivery delay (s): " + ", ".join(
        f"{k} {'-' if v is None else f'{v:g}'}" for k, v in d.items()).replace("p100", "max"))
    for key, label in _SECTIONS:
        out += ["", label, "-" * len(label)]
        out += [f"{n:>8}  {_plain(v)}" for v, n in figures[key]] or ["    none"]
    out += ["", "Per hour", "--------", f"{'hour':<18} {'received':>9} {'delivered':>9}"]
    out += [f"{h['hour']:<18} {h['received']:>9} {h['delivered']:>9}" for h in figures["per_hour"]]
    return "\n".join(out) + "\n"


def html_report(figures: dict, title: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
             "td.n{text-align:right}</style></head><body>", f"<h1>{e(title)}</h1>",
             "<h2>Grand totals</h2><table>"]
    for key in ("received", "delivered", "deferred", "bounced", "rejected", "noqueue_rejected",
                "expired", "discarded", "bytes_received", "bytes_delivered"):
        parts.append(f"<tr><th>{e(key.replace('_', ' '))}</th>"
                     f"<td class=n>{figures[key]:,}</td></tr>")
    parts.append("</table><h2>Delivery delay (s)</h2><table>")
    for k, v in figures["delay_percentiles"].items():
        parts.append(f"<tr><th>{e(k)}</th><td class=n>{'-' if v is None else f'{v:g}'}</td></tr>")
    parts.append("</table>")
    for key, label in _SECTIONS:
        parts.append(f"<h2>{e(label)}</h2><table>")
        parts += [f"<tr><td class=n>{n}</td><td>{e(_plain(v))}</td></tr>"
                  for v, n in figures[key]]
        parts.append("</table>")
    parts.append("<h2>Per hour</h2><table><tr><th>hour</th><th>received</th>"
                 "<th>delivered</th></tr>")
    parts += [f"<tr><td>{e(h['hour'])}</td><td class=n>{h['received']}</td>"
              f"<td class=n>{h['delivered']}</td></tr>" for h in figures["per_hour"]]
    parts.append("</table></body></html>\n")
    return "".join(parts)


@report_app.command()
def report(
    since: str = typer.Option("24h", "--since", help="The period: messages first seen in the "
                              "last 24h, 7d, ... (or an ISO time / now-1d)."),
    until: Optional[str] = typer.Option(None, "--until", help="End (exclusive; default now)."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
    html_file: Optional[str] = typer.Option(None, "--html", help="Also write the report as an "
                                            "HTML page to this file."),
    as_json: bool = typer.Option(False, "--json", help="The figures as one JSON object."),
) -> None:
    """The daily mail summary (pflogsumm-like) from the message records."""
    now = datetime.now(timezone.utc)
    try:
        start = now - datemath.parse_duration(since)
    except QueryError:
        parsed = datemath.time_arg(since, "--since", now)
        if parsed is None:
            raise
        start = parsed
    end = datemath.time_arg(until, "--until", now) if until else None
    sink = open_messages(store)
    try:
        figures = summarise(sink.stream_messages(
            "*", int(start.timestamp() * 1000),
            None if end is None else int(end.timestamp() * 1000), None, "asc"))
    finally:
        sink.close()
    title = (f"Mail report {start.strftime('%Y-%m-%d %H:%M')} - "
             f"{(end or now).strftime('%Y-%m-%d %H:%M')} UTC")
    if html_file:
        with open(html_file, "w", encoding="utf-8") as out:
            out.write(html_report(figures, title))
    if as_json:
        sys.stdout.write(orjson.dumps(figures).decode() + "\n")
    else:
        sys.stdout.write(text_report(figures, title))


__all__ = ["report_app", "summarise", "percentile", "text_report", "html_report", "timedelta"]
