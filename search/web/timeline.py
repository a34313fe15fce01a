"""One mail message's story from its events: received, milter and spam verdicts, delivery
attempts, the final verdict, and the queue ids it was handed to.

Pure functions over stored events (the field names of the mail pipeline: ``from``, ``to``,
``size``, ``relay``, ``stat``/``status``, ``delay``, ``dsn``, ``program``, ``message``).
"""

from __future__ import annotations

from logpipe.search.trace import handoffs

_MILTER_PROGRAMS = {"milter-greylist", "opendkim", "opendmarc", "mailscanner", "spamd",
                    "amavis", "amavisd", "clamav-milter", "spamass-milter", "postgrey"}


def _text(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def classify(event: dict) -> str:
    """received | milter | delivery | rejected | other."""
    message = _text(event.get("message"))
    lower = message.lower()
    program = _text(event.get("program")).lower()
    if "reject=" in lower or " reject:" in lower or "rejected" in lower:
        return "rejected"
    if event.get("to") and (event.get("stat") or event.get("status") or event.get("dsn")):
        return "delivery"
    if event.get("from") and not event.get("to") and (event.get("size") is not None
                                                      or "size=" in lower):
        return "received"
    if program in _MILTER_PROGRAMS or "milter" in lower or "spam" in lower:
        return "milter"
    if "client=" in lower and program.endswith("smtpd"):
        return "received"
    return "other"


def verdict_of(stat: str) -> str:
    s = stat.strip().lower()
    if s.startswith("sent") or s.startswith("delivered"):
        return "sent"
    if s.startswith("deferred"):
        return "deferred"
    if s.startswith("bounced") or "user unknown" in s or s.startswith("dsn:") or "returned" in s:
        return "bounced"
    if "reject" in s:
        return "rejected"
    return s.split(" ", 1)[0] or "unknown"


def story(qid: str, events: list[dict]) -> dict:
    """{qid, steps: [{kind, time, fields: [(name, value)], message, id}], verdict, handoffs}."""
    steps = []
    verdict = None
    for event in events:
        kind = classify(event)
        names = {"received": ("from", "size", "nrcpts", "relay", "msgid"),
                 "delivery": ("to", "relay", "delay", "dsn", "stat", "status"),
                 "milter": ("program",),
                 "rejected": ("from", "to", "relay"),
                 "other": ()}[kind]
        fields = [(n, _text(event.get(n))) for n in names if event.get(n) not in (None, "")]
        steps.append({"kind": kind, "time": event.get("@timestamp"), "fields": fields,
                      "message": _text(event.get("message")), "id": event.get("id"),
                      "host": _text(event.get("host")), "program": _text(event.get("program"))})
        if kind == "delivery":
            verdict = verdict_of(_text(event.get("stat") or event.get("status")))
        elif kind == "rejected":
            verdict = "rejected"
    return {"qid": qid, "steps": steps, "verdict": verdict or ("unknown" if events else "none"),
            "handoffs": handoffs(events), "attempts": sum(s["kind"] == "delivery"
                                                         for s in steps)}
