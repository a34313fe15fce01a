"""What one parsed mail line says about its message: the per-line part of a message record.

The indexer calls :func:`keep` with the events a batch stored (indexed or already there); each
mail event with a queue id gives one part, keyed by (host, qid) and its line id, and the store
merges it into the message record (``store/messages.py`` owns the merge, each store its table).
Field names are the mail pipeline's (``indexer/pipelines/mail.toml``); what grok leaves in free
text (postfix's ``removed``/``expired`` lines, amavis, sendmail's DSN hand-offs) is read from the
line here. A line that cannot be read is skipped for the record, never lost: it is stored as an
event like any other.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Iterable

from logpipe.store.base import MessageRecords
from logpipe.store.messages import NOQUEUE, held_key, record_key

log = logging.getLogger("logpipe.indexer.messages")

_QUEUED_AS = re.compile(r"(?:queued as|Ok: queued as|ok: queued as)\s+([0-9A-Za-z]{5,20})\b")
_ACCEPTED = re.compile(r"^\s*([0-9A-Za-z]{8,20}) Message accepted for delivery")
_DSN_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SCORE = re.compile(r"(?:score|hits|Hits)[=:]\s*(-?\d+(?:\.\d+)?)")
_RELAY = re.compile(r"\brelay=([^,\[\s]+)")
_SM_NOTIFY = re.compile(r"^([0-9A-Za-z]{12,20}): (DSN|return to sender|sender notify|"
                        r"postmaster notify): ?(.*)$")
_PF_NDR = re.compile(r"sender (?:non-delivery|delivery status|delay) notification: "
                     r"([0-9A-Za-z]{5,20})")
_AMAVIS = re.compile(r"\b(Passed|Blocked) ([A-Z-]+)\b.*?Queue-ID: ([0-9A-Za-z]{5,20})")
_AMAVIS_NEXT = re.compile(r"queued_as: ([0-9A-Za-z]{5,20})")
_MAILBOX = re.compile(r"(?:saved mail to|stored mail into mailbox) '?([^']+?)'?$")
_LOCAL_RELAYS = ("127.0.0.1", "localhost", "::1", "local", "none", "")
_ts_cache: dict[str, int] = {}


def _ms(stamp) -> int | None:
    if not isinstance(stamp, str):
        return None
    value = _ts_cache.get(stamp)
    if value is None:
        try:
            value = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
        if len(_ts_cache) > 50_000:
            _ts_cache.clear()
        _ts_cache[stamp] = value
    return value


def delay_seconds(text) -> float | None:
    """sendmail ``[D+]HH:MM:SS`` or postfix seconds (``1.2``) as seconds."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    text = str(text).strip()
    try:
        if ":" in text:
            days = 0
            if "+" in text:
                d, text = text.split("+", 1)
                days = int(d)
            h, m, s = text.split(":")
            return float(days * 86400 + int(h) * 3600 + int(m) * 60 + int(s))
        return float(text)
    except ValueError:
        return None


def _relay(value) -> str | None:
    if not value or value == "none":
        return None
    text = str(value).rstrip(".")
    return text or None


def _dsn_of(text: str | None, default: str | None = None) -> str | None:
    if text:
        m = _DSN_CODE.search(text)
        if m:
            return m.group(1)
    return default


def _link(qid: str, relay: str | None, host: str) -> dict:
    return {"qid": qid, "host": host if (relay or "") in _LOCAL_RELAYS or relay is None
            or relay.startswith("private/") else relay}


def _sendmail_stat(stat: str, dsn: str | None) -> tuple[str | None, str]:
    low = stat.lower()
    if low.startswith("sent"):
        inner = stat[stat.find("(") + 1:stat.rfind(")")] if "(" in stat else ""
        return "sent", inner
    if low.startswith("deferred"):
        return "deferred", stat.split(":", 1)[1].strip() if ":" in stat else stat
    if low.startswith("queued"):
        return None, stat
    if dsn and dsn.startswith("4"):
        return "deferred", stat
    return "bounced", stat


def part_of(doc: dict) -> tuple[str, str, str, dict] | None:
    """(host, qid, record key, part) for one event, or None when it says nothing about a
    message. Raises on nothing it can read: unknown shapes give None."""
    qid = doc.get("qid")
    program = str(doc.get("program") or "")
    line = doc.get("message") or ""
    if not qid:
        if program.startswith("dovecot") and doc.get("service") == "lmtp" and doc.get("msgid"):
            return _lmtp(doc)
        if program.startswith("amavis") and "Queue-ID" in line:
            m = _AMAVIS.search(line)
            if not m:
                return None
            qid = m.group(3)
        else:
            return None
    qid = str(qid)
    host = str(doc.get("logsource") or doc.get("host") or "")
    part: dict = {"t": _ms(doc.get("@timestamp")), "o": doc.get("offset") or 0}
    if isinstance(part["o"], str):
        part["o"] = int(part["o"]) if part["o"].isdigit() else 0
    if qid == NOQUEUE:
        if doc.get("action") != "reject":
            return None
        reason = str(doc.get("reason") or "")
        if doc.get("from") is not None:
            part["from"] = doc["from"]
        if doc.get("client") or doc.get("clientip"):
            part["client"] = {"hostname": doc.get("client"), "ip": doc.get("clientip")}
        part["rcpt"] = [{"to": doc.get("to") or "", "status": "rejected",
                         "dsn": _dsn_of(reason), "relay": None, "delay": None,
                         "reason": reason}] if doc.get("to") else []
        part["flag"] = "rejected"
        part["reason"] = reason
        return host, qid, "", part
    if program.startswith("postfix"):
        _postfix(doc, part, host, line)
    elif program.startswith("sendmail") or program.startswith("sm-"):
        _sendmail(doc, part, host)
    elif program.startswith("MailScanner"):
        msg = str(doc.get("mailScannerMsg") or "")
        if " is spam" in msg or " is not spam" in msg:
            m = _SCORE.search(msg)
            part["spam"] = {"verdict": "ham" if " is not spam" in msg else "spam",
                            "score": float(m.group(1)) if m else None}
    elif program.startswith("amavis"):
        m = _AMAVIS.search(line)
        if m:
            kind = m.group(2)
            sc = _SCORE.search(line)
            part["spam"] = {"verdict": "spam" if "SPAM" in kind else "ham",
                            "score": float(sc.group(1)) if sc else None}
            if m.group(1) == "Blocked":
                part["flag"] = "discarded"
                part["reason"] = f"amavis: Blocked {kind}"
            nx = _AMAVIS_NEXT.search(line)
            if nx:
                part["next"] = [{"qid": nx.group(1), "host": host}]
    else:
        msg = str(doc.get("milterMsg") or "")
        if program.startswith("spamass") or "X-Spam-Status" in msg:
            _spam_header(msg, part)
        elif doc.get("milterAction") == "reject" or msg.startswith("reject"):
            part["flag"] = "rejected"
            part["reason"] = msg
    return host, qid, record_key(host, qid), part


def _lmtp(doc: dict) -> tuple[str, str, str, dict] | None:
    """A dovecot LMTP delivery: a held part of the record with this msgid on this host."""
    msgid = str(doc["msgid"]).strip("<>")
    user = doc.get("user")
    if not msgid or not user:
        return None
    host = str(doc.get("logsource") or doc.get("host") or "")
    offset = doc.get("offset") or 0
    if isinstance(offset, str):
        offset = int(offset) if offset.isdigit() else 0
    text = str(doc.get("dovecotMsg") or "").strip()
    m = _MAILBOX.search(text)
    part = {"t": _ms(doc.get("@timestamp")), "o": offset,
            "mbox": {"user": str(user), "saved": m is not None,
                     "mailbox": m.group(1) if m else None, "text": text or None}}
    return host, f"<{msgid}>", held_key(host, msgid), part


def _spam_header(text: str, part: dict) -> None:
    idx = text.find("X-Spam-Status:")
    if idx < 0:
        return
    rest = text[idx + 14:].strip()
    m = _SCORE.search(rest)
    part["spam"] = {"verdict": "spam" if rest.lower().startswith("yes") else "ham",
                    "score": float(m.group(1)) if m else None}


def _sendmail(doc: dict, part: dict, host: str) -> None:
    if doc.get("from") is not None and doc.get("to") is None:
        part["from"] = doc["from"]
        if doc.get("size") is not None:
            part["size"] = doc["size"] if isinstance(doc["size"], int) else \
                int(doc["size"]) if str(doc["size"]).isdigit() else None
        if doc.get("msgid"):
            part["msgid"] = str(doc["msgid"]).strip("<>")
        if doc.get("relay") or doc.get("relayip"):
            part["client"] = {"hostname": _relay(doc.get("relay")), "ip": doc.get("relayip")}
        return
    if doc.get("to") is not None and doc.get("stat") is not None:
        stat = str(doc["stat"])
        dsn = doc.get("dsn")
        status, reason = _sendmail_stat(stat, dsn)
        relay = _relay(doc.get("relay")) or doc.get("relayip")
        delay = delay_seconds(doc.get("delay"))
        part["rcpt"] = [{"to": one.strip(), "status": status, "dsn": dsn, "relay": relay,
                         "delay": delay, "reason": reason}
                        for one in str(doc["to"]).split(",") if one.strip()]
        if status == "sent":
            m = _QUEUED_AS.search(reason) or _ACCEPTED.search(reason)
            if m:
                part["next"] = [_link(m.group(1), relay, host)]
        return
    if doc.get("unknownUser"):
        part["rcpt"] = [{"to": doc["unknownUser"], "status": "bounced", "dsn": "5.1.1",
                         "relay": None, "delay": None, "reason": "User unknown"}]
        return
    if doc.get("reject"):
        reason = str(doc["reject"])
        if doc.get("ruleset") == "check_rcpt" and doc.get("arg1"):
            part["rcpt"] = [{"to": doc["arg1"], "status": "rejected", "dsn": _dsn_of(reason),
                             "relay": None, "delay": None, "reason": reason}]
        else:
            part["flag"] = "rejected"
            part["reason"] = reason
        return
    milter = str(doc.get("milterMsg") or "")
    if milter:
        action = doc.get("milterAction")
        if "X-Spam-Status" in milter:
            _spam_header(milter, part)
        elif action == "reject" or "reject=" in milter:
            part["flag"] = "rejected"
            part["reason"] = milter.split("reject=", 1)[-1].strip()
        elif action == "discard" or milter.endswith("discard"):
            part["flag"] = "discarded"
            part["reason"] = "milter: discard"
        return
    text = str(doc.get("sendmailMsg") or "")
    m = _SM_NOTIFY.match(text)
    if m:
        part["next"] = [{"qid": m.group(1), "host": host}]
        if "Cannot send message" in m.group(3):
            part["flag"] = "expired"
            part["reason"] = m.group(3).strip()


def _postfix(doc: dict, part: dict, host: str, line: str) -> None:
    stat = doc.get("stat")
    if doc.get("to") is not None and stat:
        reason = str(doc.get("statusMsg") or "")
        relay = _relay(doc.get("relay"))
        if relay is None:
            m = _RELAY.search(line)
            relay = m.group(1) if m else None
        status = {"sent": "sent", "deferred": "deferred", "bounced": "bounced",
                  "expired": "expired", "undeliverable": "bounced"}.get(str(stat), None)
        if doc.get("action") == "reject":
            status = "rejected"
            reason = str(doc.get("reason") or reason)
        part["rcpt"] = [{"to": doc["to"], "status": status, "dsn": doc.get("dsn"),
                         "relay": relay, "delay": delay_seconds(doc.get("delay")),
                         "reason": reason or None}]
        if status == "sent":
            m = _QUEUED_AS.search(reason)
            if m:
                part["next"] = [_link(m.group(1), relay, host)]
        return
    if doc.get("action") == "reject" and doc.get("to"):
        reason = str(doc.get("reason") or "")
        part["rcpt"] = [{"to": doc["to"], "status": "rejected", "dsn": _dsn_of(reason),
                         "relay": None, "delay": None, "reason": reason}]
        if doc.get("from") is not None:
            part["from"] = doc["from"]
        return
    if doc.get("from") is not None:
        part["from"] = doc["from"]
        if doc.get("size") is not None:
            size = doc["size"]
            part["size"] = size if isinstance(size, int) else int(size) if str(size).isdigit() else None
        if doc.get("nrcpts") is not None:
            part["nrcpts"] = doc["nrcpts"]
    if doc.get("msgid"):
        part["msgid"] = str(doc["msgid"]).strip("<>")
    if doc.get("client") and doc.get("clientip") and doc.get("action") is None:
        part["client"] = {"hostname": doc.get("client"), "ip": doc.get("clientip")}
    msg = str(doc.get("postfixMsg") or "")
    if not msg:
        return
    if "status=expired" in msg:
        part["flag"] = "expired"
        part["reason"] = msg.split("status=expired,", 1)[-1].strip() or "expired"
        m = re.search(r"from=<([^>]*)>", msg)
        if m:
            part["from"] = m.group(1)
    elif msg.startswith("milter-reject:") or msg.startswith("reject:"):
        part["flag"] = "rejected"
        reason = msg.split(":", 1)[1].strip()
        part["reason"] = reason.split(": ", 1)[-1].split(";", 1)[0] if ": " in reason else reason
    elif msg.startswith("milter-discard:") or msg.startswith("discard:"):
        part["flag"] = "discarded"
        part["reason"] = msg.split(":", 1)[1].strip().split(";", 1)[0]
    else:
        m = _PF_NDR.search(msg)
        if m:
            part["next"] = [{"qid": m.group(1), "host": host}]


def parts_of(events: Iterable) -> dict[str, tuple[str, str, dict[str, dict]]]:
    """The parts of a batch's events grouped by record: {key: (host, qid, {line id: part})}.
    An event whose part cannot be read is left out (and logged): it is still stored."""
    grouped: dict[str, tuple[str, str, dict[str, dict]]] = {}
    for event in events:
        try:
            found = part_of(event.doc)
        except Exception as exc:  # a line of an unexpected shape: the record skips it
            log.warning("message record: line %s not read: %s: %s", event.id,
                        type(exc).__name__, exc)
            continue
        if found is None:
            continue
        host, qid, key, part = found
        if qid == NOQUEUE:
            key = record_key(host, qid, event.id)
        entry = grouped.get(key)
        if entry is None:
            entry = grouped[key] = (host, qid, {})
        entry[2][event.id] = part
    return grouped


def keep(sink: MessageRecords, events: list) -> int:
    """Merge the parts of these stored events into their message records (every store keeps
    them: store.base.MessageRecords). Returns how many records were touched. Store errors
    propagate (the batch is retried; the merge is idempotent)."""
    grouped = parts_of(events)
    if not grouped:
        return 0
    sink.write_messages(grouped)
    return len(grouped)
