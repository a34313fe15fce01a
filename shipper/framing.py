"""Records framed for the wire: RESP bulk strings (``$<len>\\r\\n<record>\\r\\n``), ready to follow an
``RPUSH key`` header.

The file input's encoder writes its records framed in one pass (:meth:`shipper.encode.RecordEncoder
.encode_lines`), so no per-record ``bytes`` object is made only to be framed again by the sender. Other
inputs hand lists of records; :meth:`Framed.of` frames those. :class:`Outgoing` is one batch on its way:
runs of framed records, with the count the ``RPUSH`` headers need.
"""

from __future__ import annotations

from typing import Iterator

_BULK = b"$%d\r\n%s\r\n"


def frame(values: list[bytes]) -> bytes:
    """``values`` as consecutive RESP bulk strings (C-level joins, no Python bytecode per value)."""
    return b"".join(map(_BULK.__mod__, zip(map(len, values), values)))


class Framed:
    """``count`` records framed as RESP bulk strings in one ``blob``. Iterating gives the records back
    (for tests and the rare paths that need them one by one)."""

    __slots__ = ("blob", "count")

    def __init__(self, blob: bytes, count: int):
        self.blob = blob
        self.count = count

    @classmethod
    def of(cls, values: list[bytes]) -> "Framed":
        return cls(frame(values), len(values))

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[bytes]:
        blob, pos = self.blob, 0
        for _ in range(self.count):
            if blob[pos:pos + 1] != b"$":
                raise ValueError(f"bad framing at byte {pos}: expected '$'")
            eol = blob.index(b"\r\n", pos)
            size = int(blob[pos + 1:eol])
            start = eol + 2
            end = start + size
            if blob[end:end + 2] != b"\r\n":
                raise ValueError(f"bad framing at byte {end}: a record is not {size} bytes long")
            yield blob[start:end]
            pos = end + 2
        if pos != len(blob):
            raise ValueError(f"bad framing: {len(blob) - pos} bytes after the last record")

    def __repr__(self) -> str:
        return f"Framed({self.count} records, {len(self.blob)} bytes)"


class Outgoing:
    """The records of one batch, in order, as runs of :class:`Framed` records."""

    __slots__ = ("parts", "count")

    def __init__(self) -> None:
        self.parts: list[Framed] = []
        self.count = 0

    def add(self, values: "Framed | list[bytes]") -> int:
        if not values:
            return 0
        part = values if isinstance(values, Framed) else Framed.of(values)
        self.parts.append(part)
        self.count += part.count
        return part.count

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            yield from part
