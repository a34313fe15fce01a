"""One mail message's events by queue id, following its hand-offs: ``logpipe trace`` and the
page's trace both read a message here.

A message handed to another MTA (sendmail's ``stat=Sent (9C004AE545 Message accepted for
delivery)``, postfix's ``250 2.0.0 Ok: queued as 3F2A1B``) goes on under the next queue id, on
this host or another; :func:`trace` follows those ids (at most TRACE_HOPS) so the story does not
stop at the first relay.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from logpipe.query.phrase import field_phrase
from logpipe.store.base import MessageRecords, SearchRequest

TRACE_HOPS = 8            # queue ids read at most (a loop in the data cannot run away)
TRACE_EVENTS = 100000     # events read at most over the whole chain

# sendmail: stat=Sent (9C004AE545 Message accepted for delivery); postfix: ... (250 2.0.0 Ok:
# queued as 3F2A1B)
_HANDOFF_RES = [re.compile(r"\(([0-9A-Za-z]{6,24}) Message accepted"),
                re.compile(r"queued as ([0-9A-Za-z]{6,24})")]


def _text(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def handoffs(events: list[dict]) -> list[str]:
    """Queue ids the message was handed to (next hop's id), in order, without repeats."""
    found: list[str] = []
    for event in events:
        for text in (_text(event.get("stat")), _text(event.get("status")),
                     _text(event.get("message"))):
            for pattern in _HANDOFF_RES:
                for qid in pattern.findall(text):
                    if qid not in found and qid != event.get("qid"):
                        found.append(qid)
    return found


def _ms(value) -> int:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return 0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _log_order(event: dict) -> tuple:
    # events of one second keep their order in the log file (a store orders by time only, and
    # Elasticsearch's order within one timestamp is arbitrary)
    return (_ms(event.get("@timestamp")), str(event.get("path", "")), _number(event.get("offset")))


def trace(sink, qid: str, at_most: int = TRACE_EVENTS,
          hops: int = TRACE_HOPS) -> list[tuple[str, list[dict]]]:
    """Every stored event of the message ``qid`` and of the queue ids it was handed to (those
    with stored events), oldest first in log order: [(qid, events), ...], ``qid`` first (with
    no events when none is stored). At most ``at_most`` events over the chain, ``hops`` ids."""
    out: list[tuple[str, list[dict]]] = []
    seen: set[str] = set()
    todo = [qid]
    left = at_most
    while todo and len(out) < hops and left > 0:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        request = SearchRequest(query=field_phrase("qid", current), order="asc", limit=left)
        events = sorted(sink.stream(request), key=_log_order)
        if not events and out:
            continue
        left -= len(events)
        out.append((current, events))
        todo.extend(n for n in handoffs(events) if n not in seen)
    return out


def message_records(sink: MessageRecords, qid: str) -> list[dict]:
    """The message records of a queue id (one per host that logged it), each ``next`` link
    marked ``known`` when its queue id has a record here too."""
    records = sink.messages_by_qid(qid)
    for record in records:
        for link in record.get("next") or ():
            link["known"] = bool(sink.messages_by_qid(link["qid"]))
    return records


__all__ = ["trace", "handoffs", "message_records", "TRACE_HOPS", "TRACE_EVENTS"]
