"""An on-disk spool for the network inputs: a write-ahead log of encoded records.

The syslog listener's receiving thread appends every record it builds here *before it reads
more from the socket*; the agent reads records back in order and acknowledges them once the
broker confirmed them. So a kill -9 of the agent loses nothing the listener has consumed (the
bytes are in the page cache once ``write`` returned), and lines keep arriving while the broker
is away or the list is above the high-water mark: they wait here, up to ``max_bytes``.

Layout: a 0700 directory of 0600 segment files ``seg-<n>`` (records as ``<len:4><crc32:4>
<payload>``) and ``ack``, the confirmed position ``<segment> <offset>`` (written to a temporary
file and renamed). A segment wholly behind the confirmed position is deleted. At start the torn
tail of the last segment (a record cut by a crash: short or with a wrong checksum) is cut off.
Losing an update of ``ack`` only sends confirmed records again, with the same ids (idempotent).

fsync policy (``fsync``): ``"batch"`` (default) syncs after each read of a TCP/TLS connection
whose frames were appended, before that socket is read again, and UDP appends at most every
``sync_interval`` seconds; ``"interval"`` syncs everything at most every ``sync_interval``
seconds; ``"off"`` leaves it to the kernel. fsync matters for a power loss or kernel crash
only: a process crash never loses what ``write`` accepted.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import threading
import time
import zlib
from pathlib import Path

from logpipe.common.errors import ConfigError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SEGMENT_BYTES = 16 * 1024 * 1024
FSYNC_POLICIES = ("batch", "interval", "off")
_HEAD = struct.Struct(">II")
_SEG = re.compile(r"seg-(\d{12})")
READ_BLOCK = 1 << 20

Position = tuple[int, int]  # (segment number, byte offset in it)


def _seg_name(n: int) -> str:
    return f"seg-{n:012d}"


class Spool:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, fsync: str = "batch",
                 sync_interval: float = 1.0, segment_bytes: int = SEGMENT_BYTES):
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(f"spool_fsync must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        if max_bytes < 4096:
            raise ConfigError(f"spool_max_bytes must be at least 4096, got {max_bytes}")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.sync_interval = sync_interval
        self.segment_bytes = segment_bytes
        self.lock = threading.Lock()
        self._sizes: dict[int, int] = {}   # segment -> bytes written in it
        self._ack: Position = (0, 0)
        self._end: Position = (0, 0)       # what the writer has appended so far
        self._read: Position = (0, 0)      # the agent's next record (ahead of _ack)
        self._wfd: int | None = None
        self._rfd: int | None = None
        self._rseg = -1
        self._dirty = False
        self._last_sync = time.monotonic()
        self.recovered = 0                 # records found unconfirmed at open
        self.cut = 0                       # bytes of a torn tail cut off at open

    # -- opening --------------------------------------------------------------------------------
    def open(self) -> "Spool":
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = self.dir.stat()
        if st.st_uid != os.getuid():
            raise ConfigError(f"the spool directory {self.dir} belongs to another user")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.dir, 0o700)
        segs = sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _SEG.fullmatch(p.name)))
        for n in segs:
            self._sizes[n] = (self.dir / _seg_name(n)).stat().st_size
        ack = self._load_ack(segs)
        if segs:
            self._repair(segs[-1], ack if ack[0] == segs[-1] else (segs[-1], 0))
        for n in [n for n in segs if n < ack[0]]:
            self._unlink(n)
        self._ack = self._read = ack
        last = max(self._sizes) if self._sizes else ack[0]
        if last not in self._sizes:
            self._sizes[last] = 0
        self._open_writer(last)
        self._end = (last, self._sizes[last])
        self.recovered = self._count_from(ack)
        return self

    def _load_ack(self, segs: list[int]) -> Position:
        try:
            seg, off = (int(x) for x in (self.dir / "ack").read_text().split())
        except (OSError, ValueError):
            return (segs[0], 0) if segs else (0, 0)   # send again rather than lose
        if seg not in self._sizes:
            later = [n for n in segs if n > seg]
            return (later[0], 0) if later else (seg, 0)
        return seg, min(off, self._sizes[seg])

    def _repair(self, n: int, start: Position) -> None:
        """Cut the torn tail off segment ``n`` (scanned from ``start``)."""
        path = self.dir / _seg_name(n)
        with open(path, "rb") as f:
            f.seek(start[1])
            data = f.read()
        pos = 0
        while pos + 8 <= len(data):
            size, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + 8:pos + 8 + size]
            if len(body) < size or zlib.crc32(body) != crc:
                break
            pos += 8 + size
        good = start[1] + pos
        if good < self._sizes[n]:
            self.cut = self._sizes[n] - good
            os.truncate(path, good)
            self._sizes[n] = good

    def _count_from(self, pos: Position) -> int:
        count = 0
        for n in sorted(s for s in self._sizes if s >= pos[0]):
            with open(self.dir / _seg_name(n), "rb") as f:
                f.seek(pos[1] if n == pos[0] else 0)
                data = f.read()
            i = 0
            while i + 8 <= len(data):
                size, _ = _HEAD.unpack_from(data, i)
                i += 8 + size
                count += 1
        return count

    def _open_writer(self, n: int) -> None:
        if self._wfd is not None:
            os.close(self._wfd)
        self._wfd = os.open(self.dir / _seg_name(n), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(self._wfd, 0o600)

    # -- the writer (the listener's thread) -----------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes spooled and not confirmed yet."""
        with self.lock:
            return sum(self._sizes.values()) - self._ack[1]

    def full(self) -> bool:
        return self.size >= self.max_bytes

    def append(self, records: list[bytes], durable: bool = False) -> None:
        """Write ``records`` (one write call) and, by the fsync policy, sync them. ``durable``: the
        records came over TCP/TLS (the ``"batch"`` policy syncs them now)."""
        if not records:
            return
        blob = b"".join(_HEAD.pack(len(r), zlib.crc32(r)) + r for r in records)
        with self.lock:
            seg, off = self._end
            if off >= self.segment_bytes:
                self._sync()
                seg, off = seg + 1, 0
                self._sizes[seg] = 0
                self._open_writer(seg)
            assert self._wfd is not None
            view = memoryview(blob)
            while view:
                view = view[os.write(self._wfd, view):]
            self._sizes[seg] = off + len(blob)
            self._end = (seg, off + len(blob))
            self._dirty = True
        if self.fsync == "batch" and durable:
            self.sync()
        else:
            self.tick()

    def tick(self) -> None:
        """Sync data appended more than ``sync_interval`` ago (called by the listener's loop)."""
        if self._dirty and self.fsync != "off" and time.monotonic() - self._last_sync >= self.sync_interval:
            self.sync()

    def sync(self) -> None:
        with self.lock:
            self._sync()

    def _sync(self) -> None:
        if self._dirty and self._wfd is not None and self.fsync != "off":
            os.fsync(self._wfd)
        self._dirty = False
        self._last_sync = time.monotonic()

    # -- the reader (the agent's thread) --------------------------------------------------------
    def read(self, max_records: int) -> tuple[list[bytes], Position]:
        """Up to ``max_records`` records after the last one read, and the position after them."""
        out: list[bytes] = []
        with self.lock:
            end = self._end
        seg, off = self._read
        while len(out) < max_records and (seg, off) < end:
            if seg not in self._sizes or off >= (end[1] if seg == end[0] else self._sizes[seg]):
                if seg >= end[0]:
                    break
                seg, off = seg + 1, 0
                continue
            if self._rseg != seg:
                if self._rfd is not None:
                    os.close(self._rfd)
                self._rfd = os.open(self.dir / _seg_name(seg), os.O_RDONLY)
                self._rseg = seg
            limit = end[1] if seg == end[0] else self._sizes[seg]
            assert self._rfd is not None
            data = os.pread(self._rfd, min(READ_BLOCK, limit - off), off)
            i = 0
            while len(out) < max_records and i + 8 <= len(data):
                size, _ = _HEAD.unpack_from(data, i)
                if i + 8 + size > len(data):
                    if i == 0:  # one record bigger than a block
                        data = os.pread(self._rfd, 8 + size, off)
                        continue
                    break
                out.append(data[i + 8:i + 8 + size])
                i += 8 + size
            off += i
        self._read = (seg, off)
        return out, self._read

    def ack(self, pos: Position) -> None:
        """The broker confirmed every record before ``pos``: persist it, drop finished segments."""
        tmp = self.dir / "ack.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{pos[0]} {pos[1]}\n".encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "ack")
        with self.lock:
            self._ack = pos
            done = [n for n in self._sizes if n < pos[0]]
            for n in done:
                del self._sizes[n]
        for n in done:
            if n == self._rseg and self._rfd is not None:
                os.close(self._rfd)
                self._rfd, self._rseg = None, -1
            self._unlink(n)

    def _unlink(self, n: int) -> None:
        self._sizes.pop(n, None)
        try:
            os.unlink(self.dir / _seg_name(n))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        with self.lock:
            self._sync()
            for fd in (self._wfd, self._rfd):
                if fd is not None:
                    os.close(fd)
            self._wfd = self._rfd = None
            self._rseg = -1
