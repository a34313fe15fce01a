"""Turning lines into encoded records, fast.

The wire format is :func:`common.record.encode`'s (orjson object ``{id, host, path, offset, type,
fields, received_at, line}`` plus ``tags`` when non-empty) and the id is
:func:`common.record.record_id` ``(host, source, offset)``. A source's constant parts (host, path,
type, fields) are serialised once into a byte template; the hot path then works on whole chunks
with C-level operations (one validity check per chunk, bulk escaping with ``bytes.replace``, record
lengths and records built with ``map``), with no Python bytecode per line. It writes the records
already framed for the broker (:class:`shipper.framing.Framed`, RESP bulk strings): one formatting
per line makes a record's head, with its length, id and offset, and one join lays heads and lines
end to end. Chunks with anything unusual (invalid UTF-8, control characters, over-long lines) take
the per-line path, which is exact.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from itertools import accumulate, chain, compress, repeat

import orjson

from logpipe.common.record import source_prefix
from logpipe.shipper.framing import Framed

# control characters orjson would escape as \u00XX (tab, LF and CR are handled in bulk)
_BAD_CTRL = bytes(b for b in range(32) if b not in (9, 10, 13))
_KEEP_ONLY_BAD = bytes(b for b in range(256) if b not in _BAD_CTRL)
_plus1 = (1).__add__
_RECORD_TAIL = b'"}\r\n'  # closes the line's string, the record and its RESP bulk string

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
        # the ledger's sequence: records made from this source so far (the next record's number);
        # a reader starting at a stored offset starts it at the sequence stored with that offset
        self.seq = 0
        self._idfmt = _pct(source_prefix(host, source).encode()) + b"%x"
        self.set_path(path)

    def set_path(self, path: str) -> None:
        self.path = path
        safe_path = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        hp = _pct(orjson.dumps({"host": self.host, "path": safe_path})[1:-1])
        tf = _pct(orjson.dumps({"type": self.rtype, "fields": self.fields})[1:-1])
        head = b'{"id":"%s",' + hp + b',"offset":%d,"seq":%d,' + tf + b',"received_at":%s,"line":'
        self._fmt_json = head + b'%s}'            # line given as a JSON string
        self._fmt_tags = head + b'%s,"tags":%s}'  # ... and tags
        # the fast path's record head, RESP length first: (record length, offset for the id, offset,
        # sequence)
        self._frame_head = (b'$%d\r\n{"id":"' + self._idfmt + b'",' + hp + b',"offset":%d,"seq":%d,' + tf
                            + b',"received_at":')

    def ids(self, offsets) -> list[bytes]:
        return list(map(self._idfmt.__mod__, offsets))

    # -- whole chunks ---------------------------------------------------------------------------
    def encode_lines(self, lines: list[bytes], region: bytes, base: int) -> Framed:
        """The records of ``lines`` = ``region.split(b"\\n")`` without the last (empty) part, framed;
        ``region`` ends with a newline and starts at stream offset ``base``."""
        if not lines:
            return Framed(b"", 0)
        sizes = list(map(len, lines))
        offs = list(accumulate(map(_plus1, sizes), initial=base))
        offs.pop()
        fast = True
        if not region.isascii():
            try:
                region.decode("utf-8")
            except UnicodeDecodeError:
                fast = False
        if fast and region.translate(None, _KEEP_ONLY_BAD):
            fast = False
        if fast and len(region) > self.max_bytes and max(sizes) > self.max_bytes:
            fast = False
        if not fast:
            return Framed.of(self.encode_each(zip(offs, lines)))
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
            sizes = list(map(len, elines))
        if not self.keep_empty and 0 in sizes:  # (b"\n\n" in body is 20x slower than this)
            offs = list(compress(offs, sizes))
            elines = list(compress(elines, sizes))
            sizes = list(compress(sizes, sizes))
            if not elines:
                return Framed(b"", 0)
        head = self._frame_head + orjson.dumps(time.time()) + b',"line":"'
        seq0 = self.seq
        seqs = range(seq0, seq0 + len(elines))
        self.seq = seq0 + len(elines)
        heads = map(head.__mod__, zip(self._lengths(head, offs, sizes, seqs), offs, offs, seqs))
        blob = b"".join(chain.from_iterable(zip(heads, elines, repeat(_RECORD_TAIL))))
        return Framed(blob, len(elines))

    @staticmethod
    def _lengths(head: bytes, offs: list[int], sizes: list[int], seqs: range) -> list[int]:
        """Each record's length: the head's constant part, the id's hex digits, the offset's and the
        sequence's decimal digits, the escaped line (``sizes``) and the closing ``"}``. ``offs`` and
        ``seqs`` grow, so the digit counts change only at a few powers of 16 and 10: the chunk is cut
        there and each run adds one constant."""
        fixed = len(head % (0, 0, 0, 0)) - len(b"$0\r\n") - 3 + 2  # three 1-digit numbers out, '"}' in
        first, last = offs[0], offs[-1]
        cuts = []
        for radix in (10, 16):
            p = radix
            while p <= last:
                if p > first:
                    cuts.append(bisect_left(offs, p))
                p *= radix
        p = 10
        while p <= seqs[-1]:
            if p > seqs[0]:
                cuts.append(p - seqs[0])
            p *= 10
        if not cuts:
            return list(map((fixed + len(b"%x%d%d" % (first, first, seqs[0]))).__add__, sizes))
        cuts = [0, *sorted(set(cuts)), len(offs)]
        out: list[int] = []
        for i, j in zip(cuts, cuts[1:]):
            if i < j:
                k = fixed + len(b"%x%d%d" % (offs[i], offs[i], seqs[i]))
                out += map(k.__add__, sizes[i:j])
        return out

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
        seq = self.seq
        self.seq = seq + 1
        if tags:
            return self._fmt_tags % (rid, off, seq, ts, orjson.dumps(text), orjson.dumps(list(tags)))
        return self._fmt_json % (rid, off, seq, ts, orjson.dumps(text))
