"""A byte stream cut into lines, with the resume offset the registry may store.

Shared by every stream input (files, stdin): feed bytes, take encoded records. A line is only
taken once its newline arrived; ``flush()`` takes the unterminated rest (the file rotated, the
stream ended). A line longer than the encoder's ``max_bytes`` is emitted cut and tagged
``truncated`` and the rest of it skipped, so memory stays bounded.
"""

from __future__ import annotations

from logpipe.shipper.encode import RecordEncoder, cut_utf8
from logpipe.shipper.framing import Framed
from logpipe.shipper.multiline import Event, Multiline, MultilineSpec


class LineStream:
    def __init__(self, encoder: RecordEncoder, offset: int = 0,
                 multiline: MultilineSpec | None = None):
        self.encoder = encoder
        self.buf = b""
        self.pos = offset           # stream offset just after the last byte fed
        self.skip_start: int | None = None  # inside an over-long line that started here
        self.skip_seq = 0                   # ... and the sequence its cut record got
        self.ml = Multiline(multiline) if multiline else None

    @property
    def resume_offset(self) -> int:
        """Where to start again after a restart so that nothing not yet taken is lost."""
        if self.ml is not None and self.ml.pending:
            return self.ml.start
        if self.skip_start is not None:
            return self.skip_start
        return self.pos - len(self.buf)

    @property
    def resume_seq(self) -> int:
        """The ledger sequence of the first record made again from :attr:`resume_offset`."""
        if self.skip_start is not None and not (self.ml is not None and self.ml.pending):
            return self.skip_seq
        return self.encoder.seq

    @property
    def has_line(self) -> bool:
        return b"\n" in self.buf

    def feed(self, data: bytes) -> None:
        if self.skip_start is not None:
            i = data.find(b"\n")
            if i < 0:
                self.pos += len(data)
                return
            self.pos += i + 1
            data = data[i + 1:]
            self.skip_start = None
        self.buf = self.buf + data if self.buf else data
        self.pos += len(data)

    def take(self, max_lines: int, now: float) -> Framed | list[bytes]:
        buf = self.buf
        if not buf or max_lines <= 0:
            return []
        parts = buf.split(b"\n", max_lines)
        rest = parts.pop()
        if not parts:
            if len(buf) > self.encoder.max_bytes:  # no newline within max_bytes: cut and skip
                start = self.pos - len(buf)
                self.skip_seq = self.encoder.seq
                rec = self.encoder.encode_raw(start, cut_utf8(buf, self.encoder.max_bytes),
                                              ("truncated",))
                self.buf = b""
                self.skip_start = start
                return [rec] if rec is not None else []
            return []
        base = self.pos - len(buf)
        n = len(buf) - len(rest)
        self.buf = rest
        if self.ml is None:
            return self.encoder.encode_lines(parts, buf[:n] if rest else buf, base)
        return self._multiline(parts, base, now)

    def _multiline(self, parts: list[bytes], base: int, now: float) -> list[bytes]:
        events: list[Event] = []
        off = base
        assert self.ml is not None  # take() calls this only with multiline on
        feed = self.ml.feed
        for line in parts:
            raw = line[:-1] if line.endswith(b"\r") else line
            events.extend(feed(off, raw, now))
            off += len(line) + 1
        return self._encode_events(events)

    def _encode_events(self, events: list[Event]) -> list[bytes]:
        out = []
        for off, text, tags in events:
            rec = self.encoder.encode_raw(off, text, tags)
            if rec is not None:
                out.append(rec)
        return out

    def expire(self, now: float) -> list[bytes]:
        """Multiline events that waited longer than the flush timeout."""
        if self.ml is None:
            return []
        return self._encode_events(self.ml.expire(now))

    def flush(self, now: float) -> list[bytes]:
        """Everything left: complete lines, the unterminated last line, a pending event."""
        out: list[bytes] = []
        while b"\n" in self.buf:
            out.extend(self.take(1 << 30, now))
        if self.buf and self.skip_start is None:
            start = self.pos - len(self.buf)
            raw, self.buf = self.buf, b""
            if self.ml is not None:
                out.extend(self._encode_events(self.ml.feed(start, raw, now)))
            else:
                rec = self.encoder.encode_raw(start, raw)
                if rec is not None:
                    out.append(rec)
        self.buf = b""
        self.skip_start = None
        if self.ml is not None:
            out.extend(self._encode_events(self.ml.expire(now, force=True)))
        return out
