"""Turning lines into encoded records, fast.

The wire format is :func:`common.record.encode`'s (orjson object ``{id, host, path, offset, type,
fields, received_at, line}`` plus ``tags`` when non-empty) and the id is
:func:`common.record.record_id` ``(host, source, offset)``. A source's constant parts (host, path,
type, fields) are serialised once into a byte template; the hot path then works on whole chunks
with C-level operations (one validity check per chunk, bulk escaping with ``bytes.replace``, ids
and records built with ``map``), with no Python bytecode per line. Chunks with anything unusual
(invalid UTF-8, control characters, over-long lines) take the per-line path, which is exact.
"""

from __future__ import annotations

import time
from itertools import accumulate, compress, repeat
from typing import Iterator

import orjson

from common.record import source_prefix

# control characters orjson would escape as \u00XX (tab, LF and CR are handled in bulk)
_BAD_CTRL = bytes(b for b in range(32) if b not in (9, 10, 13))
_KEEP_ONLY_BAD = bytes(b for b in range(256) if b not in _BAD_CTRL)
_plus1 = (1).__add__

DEFAULT_MAX_BYTES = 1024 * 1024


def cut_utf8(raw: bytes, limit: int) -> bytes:
    """``raw`` cut to at most ``limit`` bytes without splitting a UTF-8 sequence."""
    cut = raw[:limit]
    i = len(cut)
    # back off over continuation bytes to the start of the last character, drop it if incomplete
    j = i - 1
    while j >= 0 and i - j <= 4 and (cut[j] & 0xC0) == 0x80:
        j -= 1
    if j >= 0 and cut[j] >= 0xC0:
        lead = cut[j]
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if i - j < need:
            return cut[:j]
    return cut


def decode_line(raw: bytes, max_bytes: int, tags: list) -> str:
    """One line as text: cut to ``max_bytes`` (tag ``truncated``), invalid UTF-8 replaced (tag
    ``invalid_utf8``). Nothing is dropped; the tags say what was changed."""
    if len(raw) > max_bytes:
        raw = cut_utf8(raw, max_bytes)
        tags.append("truncated")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        tags.append("invalid_utf8")
        return raw.decode("utf-8", "replace")


def _pct(b: bytes) -> bytes:
    return b.replace(b"%", b"%%")


class RecordEncoder:
    """Encodes records for one source (a file identity, a stdin stream)."""

    def __init__(self, host: str, path: str, rtype: str, fields: dict, source: str,
                 max_bytes: int = DEFAULT_MAX_BYTES, keep_empty: bool = False):
        self.host, self.rtype, self.fields = host, rtype, dict(fields)
        self.source = source
        self.max_bytes = max_bytes
        self.keep_empty = keep_empty
        self._idfmt = _pct(source_prefix(host, source).encode()) + b"%x"
        self.set_path(path)

    def set_path(self, path: str) -> None:
        self.path = path
        safe_path = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        hp = _pct(orjson.dumps({"host": self.host, "path": safe_path})[1:-1])
        tf = _pct(orjson.dumps({"type": self.rtype, "fields": self.fields})[1:-1])
        head = b'{"id":"%s",' + hp + b',"offset":%d,' + tf + b',"received_at":%s,"line":'
        self._fmt_body = head + b'"%s"}'          # line given pre-escaped
        self._fmt_json = head + b'%s}'            # line given as a JSON string
        self._fmt_tags = head + b'%s,"tags":%s}'  # ... and tags

    def ids(self, offsets) -> list[bytes]:
        return list(map(self._idfmt.__mod__, offsets))

    # -- whole chunks ---------------------------------------------------------------------------
    def encode_lines(self, lines: list[bytes], region: bytes, base: int) -> list[bytes]:
        """``lines`` = ``region.split(b"\\n")`` without the last (empty) part; ``region`` ends with
        a newline and starts at stream offset ``base``."""
        if not lines:
            return []
        offs = list(accumulate(map(_plus1, map(len, lines)), initial=base))
        offs.pop()
        fast = True
        if not region.isascii():
            try:
                region.decode("utf-8")
            except UnicodeDecodeError:
                fast = False
        if fast and region.translate(None, _KEEP_ONLY_BAD):
            fast = False
        if fast and max(map(len, lines)) > self.max_bytes:
            fast = False
        if not fast:
            return self.encode_each(zip(offs, lines))
        body = region
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        if b"\\" in body:
            body = body.replace(b"\\", b"\\\\")
        if b'"' in body:
            body = body.replace(b'"', b'\\"')
        if b"\t" in body:
            body = body.replace(b"\t", b"\\t")
        if b"\r" in body:
            body = body.replace(b"\r", b"\\r")
        if body is region:  # nothing to escape (the usual case): the lines are the records'
            elines = lines
        else:
            elines = body.split(b"\n")
            elines.pop()
        ts = orjson.dumps(time.time())
        rows: Iterator[tuple[bytes, int, bytes, bytes]] = zip(self.ids(offs), offs, repeat(ts), elines)
        if not self.keep_empty and (b"\n\n" in body or body[:1] == b"\n"):
            rows = compress(rows, elines)
        return list(map(self._fmt_body.__mod__, rows))

    # -- one line at a time (exact path) --------------------------------------------------------
    def encode_each(self, pairs) -> list[bytes]:
        ts = orjson.dumps(time.time())
        out = []
        for off, raw in pairs:
            rec = self.encode_raw(off, raw, (), ts)
            if rec is not None:
                out.append(rec)
        return out

    def encode_raw(self, off: int, raw: bytes, tags=(), ts: bytes | None = None) -> bytes | None:
        tags = list(tags)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        text = decode_line(raw, self.max_bytes, tags)
        if not text and not self.keep_empty:
            return None
        return self.encode_text(off, text, tags, ts)

    def encode_text(self, off: int, text: str, tags=(), ts: bytes | None = None) -> bytes:
        ts = ts or orjson.dumps(time.time())
        rid = self._idfmt % off
        if tags:
            return self._fmt_tags % (rid, off, ts, orjson.dumps(text), orjson.dumps(list(tags)))
        return self._fmt_json % (rid, off, ts, orjson.dumps(text))
