"""The message record: one per mail transaction (a queue id on one host), both stores' model.

A record is *derived* from the per-line contributions ("parts") of its lines, never updated in
place: each part is keyed by its line's record id, the store keeps every part of a message beside
the record, and :func:`merge` recomputes the record from the whole set. So the record is the same
whatever the order in which lines arrive, how they are batched and how often a batch is repeated
(a repeated line replaces its own part with the same value):

* a recipient's state is the one of its latest line by (timestamp, offset, line id);
* ``first_seen``/``last_seen`` are the min/max of the lines' times, ``lines`` counts the parts;
* ``next``/``prev`` are set unions; the envelope (from, size, msgid, client) comes from the
  earliest line that carries it, the spam verdict from the latest.

A part is a small dict: ``t`` (epoch ms), ``o`` (offset or 0), plus what the line says (``from``,
``size``, ``msgid``, ``nrcpts``, ``client``, ``rcpt`` (list of recipient states), ``spam``,
``next``, ``prev``, ``flag`` (expired, rejected, discarded) and ``reason``). The indexer builds
them (``indexer/messages.py``); this module only merges and describes.

A line with no queue id that names its message by message-id (dovecot's LMTP delivery
``lmtp(bob): msgid=<...>: saved mail to INBOX``) gives a *held* part: keyed by (host, msgid)
(:func:`held_key`, its qid spelled ``<msgid>``), kept by the store apart from the records and
merged into every record of the same host with that ``msgid`` whenever either side is written;
so the record is the same whichever of the two lines came first. Such a part carries ``mbox``
(``user``, ``saved``, ``mailbox``, ``text``) and sets the matching recipient's final state after
every other line (see :func:`merge`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable

__all__ = ["MESSAGE_STATUSES", "RECIPIENT_STATUSES", "merge", "record_key", "norm_addr",
           "addr_domain", "iso_ms", "NOQUEUE", "ADDRESS_FIELDS", "summary_text",
           "normalise_query", "held_key", "is_held", "msgid_of"]

NOQUEUE = "NOQUEUE"
RECIPIENT_STATUSES = ("sent", "deferred", "bounced", "rejected", "expired", "discarded")
MESSAGE_STATUSES = ("delivered", "partial", "deferred", "bounced", "rejected", "expired",
                    "discarded", "queued")
# fields of a record that hold addresses: a query value for them is normalised as they are
ADDRESS_FIELDS = ("from", "to", "recipients.to")

_BRACKETS = re.compile(r"^[\s<\"']+|[\s>\"']+$")


_normalised: dict[str, str] = {}


def norm_addr(text) -> str:
    """An address as stored for matching: angle brackets and quotes stripped, lower-cased
    (``<Dave@Example.ORG>`` -> ``dave@example.org``; the null sender ``<>`` -> ``""``)."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    found = _normalised.get(text)
    if found is None:  # a mail server's addresses repeat: each is worked out once
        if len(_normalised) > 50_000:
            _normalised.clear()
        found = _normalised[text] = _BRACKETS.sub("", text).strip().lower()
    return found


def addr_domain(addr: str) -> str:
    return addr.rsplit("@", 1)[1] if "@" in addr else ""


def record_key(host: str, qid: str, line_id: str = "") -> str:
    """The id of a message record: ``host/qid``; a NOQUEUE reject is a record of its own line."""
    if qid == NOQUEUE:
        return f"{host}/{NOQUEUE}/{line_id}"
    return f"{host}/{qid}"


def held_key(host: str, msgid: str) -> str:
    """The key of the held parts of a message-id on a host (a dovecot LMTP delivery)."""
    return f"{host}/<{msgid}>"


def is_held(qid: str) -> bool:
    """Whether a grouped entry's qid is a held message-id (``<msgid>``), not a queue id."""
    return qid.startswith("<")


def msgid_of(parts: dict[str, dict]) -> str | None:
    """The ``msgid`` :func:`merge` gives a record of these parts (from its earliest carrier)."""
    found = [item for item in parts.items() if item[1].get("msgid") is not None]
    return min(found, key=_order)[1]["msgid"] if found else None


_days: dict[int, str] = {}   # day number since 1970 -> "YYYY-MM-DDT"


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 in UTC with milliseconds (``2013-05-15T02:10:34.000Z``).
    The date is worked out once per day and the time of day as numbers: a record's times are
    mostly different seconds, and a datetime plus strftime per time was a tenth of what
    writing records cost."""
    if ms is None:
        return None
    sec, milli = divmod(ms, 1000)
    day, in_day = divmod(sec, 86400)   # Unix time has no leap seconds: every day is 86400 s
    date = _days.get(day)
    if date is None:
        if len(_days) > 10_000:
            _days.clear()
        date = _days[day] = datetime.fromtimestamp(day * 86400, timezone.utc).strftime(
            "%Y-%m-%dT")
    hour, in_hour = divmod(in_day, 3600)
    minute, second = divmod(in_hour, 60)
    return f"{date}{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def _order(item: tuple[str, dict]) -> tuple:
    line_id, part = item
    return (part.get("t") or 0, part.get("o") or 0, line_id)


def _links(values: Iterable[dict]) -> list[dict]:
    seen: dict[tuple, dict] = {}
    for link in values:
        qid = link.get("qid")
        if not qid:
            continue
        key = (qid, link.get("host") or "")
        seen[key] = {"qid": qid, "host": link.get("host") or None}
    return [seen[k] for k in sorted(seen)]


def _overall(statuses: list[str], flags: set[str]) -> str:
    if not statuses:
        for flag in ("rejected", "discarded", "expired"):
            if flag in flags:
                return flag
        return "queued"
    kinds = set(statuses)
    if kinds == {"sent"}:
        return "delivered"
    if "sent" in kinds:
        return "partial"
    if "deferred" in kinds:
        return "deferred"
    if len(kinds) == 1:
        only = next(iter(kinds))
        return {"bounced": "bounced", "rejected": "rejected", "expired": "expired",
                "discarded": "discarded"}[only]
    if kinds <= {"bounced", "rejected"}:
        return "bounced"
    if "expired" in kinds:
        return "expired"
    return "bounced"


def merge(host: str, qid: str, parts: dict[str, dict]) -> dict:
    """The record of one message from all its parts (order-independent, see the module)."""
    ordered = sorted(parts.items(), key=_order)
    times = [p["t"] for _, p in ordered if p.get("t") is not None]
    record: dict = {"qid": qid, "host": host, "from": None, "from_raw": None, "size": None,
                    "msgid": None, "client": None, "recipients": [], "status": "queued",
                    "first_seen": iso_ms(min(times)) if times else None,
                    "last_seen": iso_ms(max(times)) if times else None,
                    "delay_s": None, "spam": None, "next": [], "prev": [], "lines": len(parts)}
    rcpts: dict[str, dict] = {}
    flags: set[str] = set()
    reasons: dict[str, str] = {}
    nexts: list[dict] = []
    prevs: list[dict] = []
    mboxes: list[dict] = []
    for _, part in ordered:
        if part.get("mbox"):
            mboxes.append(part["mbox"])
            continue
        if "from" in part and record["from_raw"] is None:
            record["from_raw"] = part["from"]
            record["from"] = norm_addr(part["from"])
        for key in ("size", "msgid", "client", "nrcpts"):
            if part.get(key) is not None and record.get(key) is None:
                record[key] = part[key]
        if part.get("spam"):
            record["spam"] = dict(part["spam"])
        for r in part.get("rcpt") or ():
            to = norm_addr(r.get("to"))
            if not to:
                continue
            old = rcpts.get(to)
            state = {"to": to, "to_raw": (old or r)["to"] if old else r.get("to"),
                     "status": r.get("status"), "dsn": r.get("dsn"), "relay": r.get("relay"),
                     "delay": r.get("delay"), "reason": r.get("reason")}
            if old:  # what the later line does not say, the earlier one did
                for k in ("dsn", "relay", "delay", "reason"):
                    if state[k] is None:
                        state[k] = old[k]
                if state["status"] is None:
                    state["status"] = old["status"]
            rcpts[to] = state
        if part.get("flag"):
            flags.add(part["flag"])
            if part.get("reason"):
                reasons[part["flag"]] = part["reason"]
        nexts.extend(part.get("next") or ())
        prevs.extend(part.get("prev") or ())
    record.pop("nrcpts", None)
    for box in mboxes:
        _deliver(rcpts, box)
    recipients = []
    for to in sorted(rcpts):
        r = rcpts[to]
        status = r["status"] or "queued"
        if status == "deferred" and "expired" in flags:
            status = "expired"
            r["reason"] = r["reason"] or reasons.get("expired")
        if status in ("deferred", "queued") and "discarded" in flags:
            status = "discarded"
        if status in ("deferred", "queued") and "rejected" in flags:
            status = "rejected"
            r["reason"] = reasons.get("rejected") or r["reason"]
        r["status"] = status
        recipients.append(r)
    record["recipients"] = recipients
    record["status"] = _overall([r["status"] for r in recipients if r["status"] != "queued"],
                                flags)
    if record["status"] == "queued" and recipients and "rejected" in flags:
        record["status"] = "rejected"
    if flags & {"rejected", "discarded", "expired"} and not recipients:
        record["reason"] = next((reasons[f] for f in ("rejected", "discarded", "expired")
                                 if f in reasons), None)
    delays = [r["delay"] for r in recipients if isinstance(r.get("delay"), (int, float))]
    if delays:
        record["delay_s"] = max(delays)
    elif len(times) > 1:
        record["delay_s"] = round((max(times) - min(times)) / 1000, 3)
    else:
        record["delay_s"] = 0.0
    record["next"] = _links(nexts)
    record["prev"] = _links(prevs)
    return record


def _deliver(rcpts: dict[str, dict], box: dict) -> None:
    """A mailbox delivery (dovecot LMTP) on its recipient: the one with this address, else the
    first (by address) with this local part, else a new recipient when the user is an address,
    else the only recipient (a system user behind an alias), else none. It is the recipient's final
    state: saved is ``sent`` whatever an MTA line said; a failed save gives its reason."""
    user = norm_addr(box.get("user"))
    if not user:
        return
    target = rcpts.get(user)
    if target is None:
        local = user.split("@", 1)[0]
        target = next((rcpts[to] for to in sorted(rcpts) if to.split("@", 1)[0] == local),
                      None)
    if target is None and "@" in user:  # no MTA line for it: the delivery is its only line
        target = rcpts[user] = {"to": user, "to_raw": box.get("user"), "status": None,
                                "dsn": None, "relay": None, "delay": None, "reason": None}
    if target is None and len(rcpts) == 1:  # a system user behind an alias
        target = next(iter(rcpts.values()))
    if target is None:
        return
    if box.get("saved"):
        target["status"] = "sent"
        target["mailbox"] = box.get("mailbox")
        target["reason"] = box.get("text")
    elif target.get("status") != "sent":
        target["reason"] = box.get("text") or target.get("reason")


def summary_text(record: dict) -> str:
    """The words of a record a free-text query matches: addresses, ids, relays and reasons."""
    words = [record.get("qid") or "", record.get("from") or "", record.get("msgid") or "",
             record.get("status") or "", record.get("reason") or ""]
    client = record.get("client") or {}
    words += [client.get("hostname") or "", client.get("ip") or ""]
    for r in record.get("recipients") or ():
        words += [r.get("to") or "", r.get("relay") or "", r.get("reason") or "",
                  r.get("status") or ""]
    return " ".join(w for w in words if w)


_LOWER_FIELDS = ("status", "recipients.status", "domain", "recipients.domain", "spam.verdict")


def normalise_query(q):
    """A query's intermediate form with address values normalised as records store them
    (``to:<Dave@Example.org>`` means ``to:dave@example.org``), statuses and domains lower-cased.
    A regular expression is refused here, for every store alike: the embedded store cannot
    run one on a record, and Elasticsearch ran it on fields as stored (normalised, or not
    indexed at all, as ``recipients.domain``), silently finding nothing where the query meant
    something."""
    from logpipe.common.errors import QueryError
    from logpipe.query.tree import And, Not, Or, Regexp, Term, Wildcard

    if isinstance(q, Regexp):
        raise QueryError(f"{q.field}:/{q.source}/: regular expressions search log lines, not "
                         f"message records; on records use a wildcard ({q.field}:value*)")
    if isinstance(q, (And, Or)):
        return type(q)(tuple(normalise_query(i) for i in q.items))
    if isinstance(q, Not):
        return Not(normalise_query(q.item))
    if isinstance(q, Term) and q.field in ADDRESS_FIELDS:
        return Term(q.field, norm_addr(q.value))
    if isinstance(q, Term) and q.field in _LOWER_FIELDS:
        return Term(q.field, q.value.lower())
    if isinstance(q, Wildcard) and (q.field in ADDRESS_FIELDS or q.field in _LOWER_FIELDS):
        return Wildcard(q.field, q.pattern.lower())
    return q
