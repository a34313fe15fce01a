"""The record: one log line on its way from a shipper to a store.

On the broker list every record is one orjson object::

    {"id": "...", "host": "mail1", "path": "/var/log/maillog", "offset": 1234,
     "type": "mail", "fields": {}, "received_at": 1764288000.123, "line": "...", "tags": []}

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
from datetime import datetime

import orjson

from common.errors import DecodeError

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

    def to_dict(self) -> dict:
        out = {
            "id": self.id, "host": self.host, "path": self.path, "offset": self.offset,
            "type": self.type, "fields": self.fields, "received_at": self.received_at,
            "line": self.line,
        }
        if self.tags:
            out["tags"] = self.tags
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


def decode(raw: bytes | str, fallback_id: str) -> Record:
    """Turn one raw list item into a :class:`Record`.

    ``fallback_id`` names the item's position in its batch (e.g. ``<batch uuid>:<index>``); it
    becomes the id of foreign items that carry no source position, so reprocessing the same batch
    still yields the same ids. Raises :class:`DecodeError` for items that are not text at all.
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
    else:
        text = raw
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        if not text.strip():
            raise DecodeError("item is empty")
        return _from_plain(text.rstrip("\r\n"), fallback_id)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        # A text line that happens to start with '{' is still a log line.
        return _from_plain(text.rstrip("\r\n"), fallback_id)
    if "line" in obj and "id" in obj:
        return _from_logpipe(obj)
    if "message" in obj:
        return _from_event(obj, fallback_id)
    raise DecodeError("JSON object has neither 'line' (logpipe) nor 'message' (Logstash/Filebeat)")


def _from_logpipe(obj: dict) -> Record:
    line = obj["line"]
    if not isinstance(line, str):
        raise DecodeError("field 'line' is not a string")
    fields = obj.get("fields") or {}
    if not isinstance(fields, dict):
        raise DecodeError("field 'fields' is not an object")
    get = obj.get
    rid, host, path, rtype = obj["id"], get("host") or "", get("path") or "", get("type") or ""
    received_at, tags = get("received_at"), get("tags")
    return Record(
        id=rid if type(rid) is str else str(rid), line=line,
        host=host if type(host) is str else str(host),
        path=path if type(path) is str else str(path), offset=get("offset"),
        type=rtype if type(rtype) is str else str(rtype), fields=fields,
        received_at=received_at if type(received_at) is float and received_at
        else float(received_at or time.time()),
        tags=tags if type(tags) is list else list(tags or []),
    )


def _from_plain(line: str, fallback_id: str) -> Record:
    return Record(id=fallback_id, line=line, received_at=time.time())


def _from_event(obj: dict, fallback_id: str) -> Record:
    """A Logstash JSON event or a Filebeat redis-output event."""
    message = obj.get("message")
    if not isinstance(message, str):
        raise DecodeError("field 'message' is not a string")
    host = obj.get("host")
    if isinstance(host, dict):  # Filebeat / ECS: host.name
        host = host.get("name") or host.get("hostname") or ""
    log = obj.get("log") if isinstance(obj.get("log"), dict) else {}
    log_file = log.get("file") if isinstance(log.get("file"), dict) else {}
    path = log_file.get("path") or obj.get("path") or ""
    offset = log.get("offset", obj.get("offset"))
    fields = obj.get("fields") if isinstance(obj.get("fields"), dict) else {}
    rtype = obj.get("type") or fields.get("type") or ""
    received = _parse_time(obj.get("@timestamp")) or time.time()
    if isinstance(offset, int) and path:
        rid = record_id(str(host or ""), str(path), offset)
    else:
        rid = fallback_id
    tags = obj.get("tags") if isinstance(obj.get("tags"), list) else []
    return Record(id=rid, line=message, host=str(host or ""), path=str(path),
                  offset=offset if isinstance(offset, int) else None, type=str(rtype),
                  fields=dict(fields), received_at=received, tags=list(tags))


def _parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
