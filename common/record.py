"""The record: one log line on its way from a shipper to a store.

On the broker list every record is one orjson object::

    {"id": "...", "host": "mail1", "path": "/var/log/maillog", "offset": 1234,
     "type": "mail", "fields": {}, "received_at": 1764288000.123, "line": "...", "tags": []}

Two optional fields feed the indexer's loss ledger (``indexer/ledger.py``): ``seq``, the record's
number within its source (0, 1, 2, ... with no hole: the shipper counts the records it makes from
one file identity or one listener run, and stores the count with the offset), and ``src``, the
source's name; without ``src`` a logpipe record's source is its id's prefix (the hash of host and
file identity). Records without ``seq`` (other shippers', older logpipe's) are accepted as before and
are simply not in the ledger.

``id`` is stable for the same source position (host, file identity, byte offset), so every later
stage can be idempotent: the store writes with it, and a batch processed twice is a no-op.

Other shippers write other shapes onto the same list. :func:`decode` accepts a plain text line
(rsyslog's omhiredis, Logstash's redis output in ``plain`` codec), a Logstash JSON event and a
Filebeat redis-output event, and normalises them into the same :class:`Record`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from logpipe.common.errors import DecodeError

__all__ = ["Record", "record_id", "encode", "decode"]


@dataclass(slots=True)
class Record:
    id: str
    line: str
    host: str = ""
    path: str = ""
    offset: int | None = None
    type: str = ""
    fields: dict = field(default_factory=dict)
    received_at: float = 0.0
    tags: list = field(default_factory=list)
    seq: int | None = None   # the ledger's sequence within the source (optional)
    src: str = ""            # the ledger's source name (optional: the id's prefix otherwise)

    @property
    def ledger_source(self) -> str:
        """The ledger's name for this record's source: ``src``, else the id up to its last ``-``."""
        if self.src:
            return self.src
        head, sep, _ = self.id.rpartition("-")
        return head if sep else self.id

    def to_dict(self) -> dict:
        out: dict[str, object] = {
            "id": self.id, "host": self.host, "path": self.path, "offset": self.offset,
            "type": self.type, "fields": self.fields, "received_at": self.received_at,
            "line": self.line,
        }
        if self.tags:
            out["tags"] = self.tags
        if self.seq is not None:
            out["seq"] = self.seq
        if self.src:
            out["src"] = self.src
        return out


def source_prefix(host: str, source: str) -> str:
    """The constant part of every id from one source: a short hash of host and file identity."""
    key = f"{host}\x1f{source}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=8).hexdigest() + "-"


def record_id(host: str, source: str, offset: int | str) -> str:
    """A short stable id for one source position: ``<source hash>-<offset in hex>``.

    ``source`` identifies the file (device, inode and a fingerprint of its first bytes, or the
    path for inputs without identity); the same line read twice gets the same id. The hash is
    computed once per source, so a shipper pays only for formatting the offset per line.
    """
    tail = format(offset, "x") if isinstance(offset, int) else str(offset)
    return source_prefix(host, source) + tail


def encode(record: Record) -> bytes:
    """Serialise a record for the broker list."""
    return orjson.dumps(record.to_dict())


# Elasticsearch refuses an ``_id`` longer than 512 bytes; the id is the store's ``_id``.
MAX_ID_BYTES = 512
# received_at is seconds since the epoch: 0 up to the end of year 9999 (datetime's range).
MAX_EPOCH = 253402300799.0
# Literals a JSON producer writes by mistake (json.dumps(None)); never a log line on their own.
_JSON_LITERALS = frozenset({"null", "true", "false"})
JSON_PARSE_FAILURE = "_jsonparsefailure"
TIMESTAMP_PARSE_FAILURE = "_timestampparsefailure"


def decode(raw: bytes | str, fallback_id: str) -> Record:
    """Turn one raw list item into a :class:`Record`, or raise :class:`DecodeError`.

    ``fallback_id`` names the item's position in its batch (e.g. ``<batch uuid>:<index>``); it
    becomes the id of foreign items that carry no source position, so reprocessing the same batch
    still yields the same ids.

    How an item is read (what a Logstash user would expect from its ``plain`` and ``json``
    codecs on one list):

    * Text that does not look like JSON is a plain log line (rsyslog's omhiredis, Logstash's
      ``plain`` codec), numbers included: a line of digits is an ordinary log line.
    * An item whose first non-blank character is ``{``, ``[`` or ``"``, or that is exactly
      ``null``, ``true`` or ``false``, is JSON. A JSON object is an event: logpipe's own record
      (``id`` and ``line``) or a Logstash/Filebeat event (``message``), validated field by field.
      Any other JSON value (an array, a string, a literal) is not an event and is refused with a
      decode error naming its kind; it is never stored as if it were a text line.
    * Text that looks like JSON but does not parse is kept as a text line tagged
      ``_jsonparsefailure``, like Logstash's ``json`` codec does ("original data now in message").

    Every violation raises :class:`DecodeError` with the field's name and what is wrong.
    """
    if type(raw) is bytes and raw[:1] == b"{":
        # the usual item, a shipper's record: orjson reads the bytes (and checks the UTF-8)
        # without a str copy first; anything unusual takes the general path below
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if type(obj) is dict and "line" in obj and "id" in obj:
            return _from_logpipe(obj)
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"item is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    elif isinstance(raw, str):
        text = raw
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecodeError(f"item is not UTF-8 text ({exc.reason} at character {exc.start})") \
                from None
    else:
        raise DecodeError(f"item is {type(raw).__name__}, not bytes or text")
    stripped = text.strip()
    if not stripped:
        raise DecodeError("item is empty")
    if stripped[0] not in '{["' and stripped not in _JSON_LITERALS:
        return _from_plain(text.rstrip("\r\n"), fallback_id)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Broken JSON (cut short, nested too deep) or a text line that
        # starts with a bracket: kept as text, tagged so nobody mistakes it for a parsed event.
        return _from_plain(text.rstrip("\r\n"), fallback_id, [JSON_PARSE_FAILURE])
    if not isinstance(obj, dict):
        raise DecodeError(f"item is a JSON {_json_kind(obj)}, not an event object (one JSON "
                          f"object per list item, or a plain text line)")
    if "line" in obj and "id" in obj:
        return _from_logpipe(obj)
    if "message" in obj:
        return _from_event(obj, fallback_id)
    raise DecodeError("JSON object has neither 'line' and 'id' (logpipe) nor 'message' "
                      "(Logstash/Filebeat)")


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _text(obj: dict, name: str, required: bool = False) -> str:
    """A string field; absent or null is '' unless required."""
    value = obj.get(name)
    if isinstance(value, str):
        return value
    if value is None and not required:
        return ""
    need = "a string" if required else "a string or null"
    raise DecodeError(f"must be {need}, got {_json_kind(value)}", name)


def _record_id(value) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"must be a string, got {_json_kind(value)}", "id")
    if not value:
        raise DecodeError("must not be empty", "id")
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise DecodeError(f"is {size} bytes long; Elasticsearch accepts at most {MAX_ID_BYTES} "
                          f"bytes as a document id", "id")
    return value


def _offset(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"must be a byte offset (integer) or null, got {_json_kind(value)}", name)
    if value < 0:
        raise DecodeError(f"must not be negative, got {value}", name)
    return value


def _tags(value, name: str, lenient: bool = False) -> list:
    if value is None:
        return []
    if lenient and isinstance(value, str):  # Logstash accepts `tags => "one"`
        return [value]
    if not isinstance(value, list):
        raise DecodeError(f"must be a list of strings, got {_json_kind(value)}", name)
    for i, tag in enumerate(value):
        if not isinstance(tag, str):
            raise DecodeError(f"item {i} must be a string, got {_json_kind(tag)}", name)
    return list(value)


def _fields(value, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"must be an object, got {_json_kind(value)}", name)
    return value


def _received_at(value) -> float:
    if value is None:
        return time.time()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError(f"must be seconds since the epoch (a number), got {_json_kind(value)}",
                          "received_at")
    if not 0 <= value <= MAX_EPOCH:
        raise DecodeError(f"{value!r} is not a time between 1970 and 9999 in seconds since the "
                          f"epoch", "received_at")
    return float(value)


def _from_logpipe(obj: dict) -> Record:
    get = obj.get
    rid, line, host, path, offset, rtype, fields, received, tags = (
        obj["id"], obj["line"], get("host"), get("path"), get("offset"), get("type"),
        get("fields"), get("received_at"), get("tags"))
    # a shipper's record, every field of the expected type, checked in one expression (the
    # common case: a tenth of the field-by-field checks below, which say what is wrong)
    if (type(rid) is str and 0 < len(rid) <= MAX_ID_BYTES // 4 and type(line) is str
            and type(host) is str and type(path) is str and type(rtype) is str
            and (offset is None or type(offset) is int and offset >= 0)
            and (fields is None or type(fields) is dict)
            and type(received) is float and 0 <= received <= MAX_EPOCH
            and (tags is None or type(tags) is list and all(type(t) is str for t in tags))):
        seq = get("seq")
        if seq is None or type(seq) is int and seq >= 0:
            src = get("src")
            if src is None or type(src) is str:
                return Record(rid, line, host, path, offset, rtype, {} if fields is None else fields,
                              received, [] if tags is None else list(tags), seq, src or "")
    return Record(
        id=_record_id(obj["id"]), line=_text(obj, "line", required=True),
        host=_text(obj, "host"), path=_text(obj, "path"),
        offset=_offset(obj.get("offset"), "offset"), type=_text(obj, "type"),
        fields=_fields(obj.get("fields"), "fields"),
        received_at=_received_at(obj.get("received_at")),
        tags=_tags(obj.get("tags"), "tags"),
        seq=_offset(obj.get("seq"), "seq"), src=_text(obj, "src"),
    )


def _from_plain(line: str, fallback_id: str, tags: list | None = None) -> Record:
    return Record(id=fallback_id, line=line, received_at=time.time(), tags=tags or [])


def _from_event(obj: dict, fallback_id: str) -> Record:
    """A Logstash JSON event or a Filebeat redis-output event."""
    message = _text(obj, "message", required=True)
    host = obj.get("host")
    if isinstance(host, dict):  # Filebeat / ECS: host.name
        host = host.get("name") or host.get("hostname") or ""
        if not isinstance(host, str):
            raise DecodeError(f"must be a string, got {_json_kind(host)}", "host.name")
    elif host is None:
        host = ""
    elif not isinstance(host, str):
        raise DecodeError(f"must be a string or an object with 'name', got {_json_kind(host)}",
                          "host")
    log = obj.get("log")
    log = log if isinstance(log, dict) else {}  # Logstash events may use "log" for anything
    log_file = log.get("file")
    log_file = log_file if isinstance(log_file, dict) else {}
    if log_file.get("path") is not None:
        path = log_file["path"]
        if not isinstance(path, str):
            raise DecodeError(f"must be a string, got {_json_kind(path)}", "log.file.path")
    else:
        path = _text(obj, "path")
    if "offset" in log:
        offset = _offset(log["offset"], "log.offset")
    else:
        offset = _offset(obj.get("offset"), "offset")
    fields = dict(_fields(obj.get("fields"), "fields"))
    rtype = obj.get("type")
    if rtype is None:
        rtype = fields.get("type")
        if rtype is not None and not isinstance(rtype, str):
            raise DecodeError(f"must be a string, got {_json_kind(rtype)}", "fields.type")
    elif not isinstance(rtype, str):
        raise DecodeError(f"must be a string, got {_json_kind(rtype)}", "type")
    tags = _tags(obj.get("tags"), "tags", lenient=True)
    stamp = obj.get("@timestamp")
    received = _parse_time(stamp)
    if received is None:
        received = time.time()
        if stamp is not None:  # Logstash tags an event whose time it cannot read
            tags.append(TIMESTAMP_PARSE_FAILURE)
    if offset is not None and path:
        rid = record_id(host, path, offset)
    else:
        rid = fallback_id
    return Record(id=rid, line=message, host=host, path=path, offset=offset, type=rtype or "",
                  fields=fields, received_at=received, tags=tags)


def _parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # Logstash's @timestamp is UTC
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return seconds if 0 <= seconds <= MAX_EPOCH else None
