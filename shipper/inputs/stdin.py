"""Reading standard input (``logpipe ship -``).

When stdin is a regular file (``logpipe ship - < app.log``) record ids use its identity like the
file input does, so shipping the same file twice yields the same ids. For a pipe, ids are unique
per run. Input ends at EOF; the unterminated last line is sent then.
"""

from __future__ import annotations

import os
import select
import stat as stat_mod
import uuid
from functools import partial

from logpipe.shipper.encode import RecordEncoder
from logpipe.shipper.framing import Framed
from logpipe.shipper.inputs.base import Chunk, Input
from logpipe.shipper.lines import LineStream
from logpipe.shipper.registry import FP_BYTES, fingerprint

READ_SIZE = 1024 * 1024


class StdinInput(Input):
    kind = "stdin"
    path = "-"
    stream: LineStream   # set by start()

    def __init__(self, spec, ctx, fd: int = 0):
        super().__init__(spec, ctx)
        self.fd = fd
        self.eof = False
        self.lines = 0
        self.bytes = 0

    def start(self) -> None:
        st = os.fstat(self.fd)
        offset = 0
        if stat_mod.S_ISREG(st.st_mode):
            offset = os.lseek(self.fd, 0, os.SEEK_CUR)
            head = os.pread(self.fd, FP_BYTES, 0)
            source = f"{st.st_dev}:{st.st_ino}:{fingerprint(head)}"
        else:
            source = f"stdin:{uuid.uuid4().hex}"
        spec = self.spec
        encoder = RecordEncoder(self.ctx.host, self.path, spec.type, spec.fields, source,
                                spec.max_bytes, spec.keep_empty)
        self.stream = LineStream(encoder, offset, spec.multiline)

    def _ack(self, nlines: int, nbytes: int) -> None:
        self.lines += nlines
        self.bytes += nbytes

    def _chunk(self, values: list[bytes] | Framed, before: int) -> Chunk:
        n = max(0, self.stream.resume_offset - before)
        return Chunk(values, n, partial(self._ack, len(values), n), self.path)

    def poll(self, max_lines: int, now: float) -> list[Chunk]:
        if self.eof:
            return []
        stream = self.stream
        before = stream.resume_offset
        if not stream.has_line:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0)
            except (OSError, ValueError):
                ready = [self.fd]
            if ready:
                data = os.read(self.fd, READ_SIZE)
                if data:
                    stream.feed(data)
                else:
                    self.eof = True
                    return [self._chunk(stream.flush(now), before)]
        values = stream.take(max_lines, now)
        return [self._chunk(values, before)] if values else []

    def expire(self, now: float) -> list[Chunk]:
        before = self.stream.resume_offset
        values = self.stream.expire(now)
        return [self._chunk(values, before)] if values else []

    def flush(self, now: float) -> list[Chunk]:
        before = self.stream.resume_offset
        values = self.stream.flush(now)
        return [self._chunk(values, before)] if values else []

    @property
    def done(self) -> bool:
        return self.eof

    def status(self) -> list[dict]:
        return [{"path": "-", "lines": self.lines, "bytes": self.bytes,
                 "state": "eof" if self.eof else "reading"}]
