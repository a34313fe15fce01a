"""Compressed items on the raw list: many records in one list item, for shippers far from the broker.

A compressed item is ``MARKER`` + the record count (4 bytes, big-endian) + zlib (stdlib) of the
records as consecutive RESP bulk strings (``$<len>\\r\\n<record>\\r\\n``: what the shipper already
has framed for RPUSH, so packing costs the compression and nothing per record). The marker starts
with a NUL byte, which no text line or JSON item starts with; everything else on the list is read
as before, so plain records (the default) and other shippers' items stay accepted beside it.

The indexer expands an item into its records, each then judged alone like any item: its own id
(idempotent writes, the ledger's sequence), its own dead letter. An item that cannot be expanded
(corrupt, truncated, counts that disagree, over the bounds) raises :class:`DecodeError`: the
indexer dead-letters the whole item, stage ``decode``, with the reason. Bounds: at most
``MAX_RECORDS`` records and ``MAX_EXPANDED`` bytes expanded per item (no zip bomb gets further).
"""

from __future__ import annotations

import struct
import zlib

from logpipe.common.errors import DecodeError

MARKER = b"\x00logpipe+zlib:1\x00"
_COUNT = struct.Struct(">I")
HEAD = len(MARKER) + _COUNT.size
MAX_RECORDS = 10_000
MAX_EXPANDED = 64 * 1024 * 1024
DEFAULT_RECORDS_PER_ITEM = 200
CODECS = ("none", "zlib")


def pack(framed: bytes, count: int, level: int = 1) -> bytes:
    """One compressed item from ``count`` records framed as RESP bulk strings."""
    return MARKER + _COUNT.pack(count) + zlib.compress(framed, level)


def is_packed(item: bytes) -> bool:
    return item[:1] == b"\x00" and item[:len(MARKER)] == MARKER


def split_frames(blob: bytes, count: int, per: int) -> list[tuple[bytes, int]]:
    """``blob`` (``count`` RESP bulk strings) cut into runs of at most ``per`` records."""
    if count <= per:
        return [(blob, count)]
    out: list[tuple[bytes, int]] = []
    start = pos = n = 0
    find = blob.index
    while n < count:
        eol = find(b"\r\n", pos)
        pos = eol + 2 + int(blob[pos + 1:eol]) + 2
        n += 1
        if n % per == 0 or n == count:
            out.append((blob[start:pos], n - (len(out) * per)))
            start = pos
    return out


def unpack(item: bytes) -> list[bytes]:
    """The records of a compressed item, in order; :class:`DecodeError` says what is wrong."""
    if len(item) < HEAD:
        raise DecodeError("compressed item: shorter than its header")
    (count,) = _COUNT.unpack_from(item, len(MARKER))
    if not 0 < count <= MAX_RECORDS:
        raise DecodeError(f"compressed item: {count} records (1 to {MAX_RECORDS} allowed)")
    d = zlib.decompressobj()
    try:
        blob = d.decompress(memoryview(item)[HEAD:], MAX_EXPANDED)
    except zlib.error as exc:
        raise DecodeError(f"compressed item: not zlib data ({exc})") from None
    if d.unconsumed_tail:
        raise DecodeError(f"compressed item: expands to more than {MAX_EXPANDED:,} bytes")
    if not d.eof:
        raise DecodeError("compressed item: the zlib stream is cut short")
    if d.unused_data:
        raise DecodeError(f"compressed item: {len(d.unused_data)} bytes after the zlib stream")
    out: list[bytes] = []
    pos, size_all = 0, len(blob)
    while pos < size_all:
        eol = blob.find(b"\r\n", pos, pos + 24)
        if blob[pos:pos + 1] != b"$" or eol < 0 or not blob[pos + 1:eol].isdigit():
            raise DecodeError(f"compressed item: bad framing at byte {pos} of record {len(out) + 1}")
        start = eol + 2
        end = start + int(blob[pos + 1:eol])
        if blob[end:end + 2] != b"\r\n":
            raise DecodeError(f"compressed item: record {len(out) + 1} is cut short")
        out.append(blob[start:end])
        pos = end + 2
        if len(out) > count:
            break
    if len(out) != count:
        raise DecodeError(f"compressed item: holds {len(out)} records, its header says {count}")
    return out
