"""Tailing files: globs, offsets, rotation, truncation.

Files are followed by identity (device + inode, plus a fingerprint of the first bytes kept in the
registry), not by name:

* **rename-and-create** (logrotate's default): the open file no longer matches the glob; it is read
  to its end and released once it stopped growing for ``rotate_grace`` seconds, while the new file
  under the old name is picked up by the next scan and read from 0. A file renamed to a name that
  still matches a glob (``app.log`` -> ``app.log.1`` with ``app.log*``) just changes its path.
* **copytruncate**: the size drops below our position (or the first bytes change): the file is
  read again from 0 as a new identity.
* **deleted** files are read to the end and released (the fd is closed, the entry dropped).
* a last line without its newline waits until it is complete, or until the file rotated.

After a restart, registry entries whose file left the globs (rotated while the agent was down)
are looked up in their directory by inode and finished first.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat as stat_mod
import time
from functools import partial

from logpipe.shipper.encode import RecordEncoder
from logpipe.shipper.framing import Framed
from logpipe.shipper.inputs.base import Chunk, Input
from logpipe.shipper.lines import LineStream
from logpipe.shipper.registry import FP_BYTES, fingerprint

READ_SIZE = 1024 * 1024


class Reader:
    """One open file."""

    def __init__(self, inp: "FileInput", path: str, fd: int, st, key: str, offset: int):
        self.inp = inp
        self.path = path
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.key = key
        e = inp.ctx.registry.files[key]
        self.fp, self.fp_len = e["fp"], e["fp_len"]
        spec = inp.spec
        self.encoder = RecordEncoder(inp.ctx.host, path, spec.type, spec.fields, key,
                                     spec.max_bytes, spec.keep_empty)
        self.encoder.seq = int(e.get("seq", 0) or 0)
        self.stream = LineStream(self.encoder, offset, spec.multiline)
        self.acked = offset
        self.size = st.st_size
        self.eof = False
        self.rotated = False       # no longer reachable through the globs
        self.last_growth = 0.0
        self.finished = False      # everything read and handed out; release after the last ack
        self.gone = False          # rotated away, deleted or truncated: forget it once released
        self.verify = False        # compare the first bytes at the next end of file
        self.lines = 0
        self.bytes = 0
        self._rate_mark = (time.monotonic(), 0)
        self.lines_per_s = 0.0
        os.lseek(fd, offset, os.SEEK_SET)

    def set_path(self, path: str) -> None:
        if path != self.path:
            self.path = path
            self.encoder.set_path(path)

    def _chunk(self, values: list[bytes] | Framed, before: int) -> Chunk:
        after = self.stream.resume_offset
        return Chunk(values, max(0, after - before),
                     partial(self._confirm, after, len(values), self.stream.resume_seq), self.path)

    def _confirm(self, offset: int, lines: int, seq: int | None = None) -> None:
        self.lines += lines
        self.bytes += max(0, offset - self.acked)
        self.acked = offset
        self.inp.ctx.registry.set_offset(self.key, offset, self.path, seq)

    def poll(self, max_lines: int, now: float) -> Chunk | None:
        if self.finished:
            return None
        stream = self.stream
        before = stream.resume_offset
        if self.eof and not stream.has_line:
            # at the end last time: one fstat tells whether anything happened since; before
            # reading new bytes, make sure the file was not truncated (copytruncate) meanwhile
            st = os.fstat(self.fd)
            self.size = st.st_size
            verify, self.verify = self.verify, False
            if st.st_size < stream.pos or ((verify or st.st_size > stream.pos)
                                           and not self._same_head(st.st_size)):
                return self._truncated(now, st)
            if st.st_size == stream.pos:
                return self._at_end(now, st)
            self.eof = False
        if not stream.has_line or len(stream.buf) < READ_SIZE:
            try:
                data = os.read(self.fd, READ_SIZE)
            except OSError as exc:  # e.g. EIO on a vanished network mount
                self.inp.ctx.log.warning("file_read_error", path=self.path, error=exc.strerror)
                data = b""
            if data:
                stream.feed(data)
                self.last_growth = now
            else:
                self.eof = True
        values = stream.take(max_lines, now)
        if values or stream.resume_offset != before:
            return self._chunk(values, before)
        return None

    def _at_end(self, now: float, st) -> Chunk | None:
        """Everything read: rotated or deleted files are released after ``rotate_grace``
        seconds without growth (their unterminated last line is sent then); --once ends."""
        gone = self.rotated or st.st_nlink == 0
        if self.inp.ctx.once or (gone and now - self.last_growth >= self.inp.spec.rotate_grace):
            before = self.stream.resume_offset
            values = self.stream.flush(now)
            self.finished = True
            self.gone = gone
            if gone:
                self.inp.ctx.log.info("file_released", path=self.path,
                                      reason="deleted" if st.st_nlink == 0 else "rotated")
            return self._chunk(values, before)
        return None

    def _same_head(self, size: int) -> bool:
        if size < self.fp_len:
            return False
        return fingerprint(os.pread(self.fd, self.fp_len, 0)) == self.fp

    def _truncated(self, now: float, st) -> Chunk:
        self.inp.ctx.log.warning("file_truncated", path=self.path, size=st.st_size,
                                 offset=self.stream.pos, action="reading it again from 0")
        before = self.stream.resume_offset
        values = self.stream.flush(now)  # the old content's unterminated last line
        self.finished = True
        self.gone = True
        self.inp.restart_after_truncation.add((self.dev, self.ino))
        return self._chunk(values, before)

    @property
    def releasable(self) -> bool:
        return self.finished and self.acked >= self.stream.resume_offset

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    def status(self) -> dict:
        try:
            self.size = os.fstat(self.fd).st_size
        except OSError:
            pass
        now = time.monotonic()
        t0, l0 = self._rate_mark
        if now - t0 >= 1.0:
            self.lines_per_s = round((self.lines - l0) / (now - t0), 1)
            self._rate_mark = (now, self.lines)
        return {"path": self.path, "id": self.key, "offset": self.acked, "size": self.size,
                "lag": max(0, self.size - self.acked), "lines": self.lines, "bytes": self.bytes,
                "lines_per_s": self.lines_per_s,
                "state": "rotated" if self.rotated else ("eof" if self.eof else "reading")}


class FileInput(Input):
    kind = "file"

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.patterns = [os.path.abspath(os.path.expanduser(p)) for p in spec.paths]
        self.readers: dict[tuple[int, int], Reader] = {}
        self.restart_after_truncation: set[tuple[int, int]] = set()
        self._next_scan = 0.0
        self._first_scan = True
        self._rr = 0
        self._warned: set[str] = set()
        self._scanned_once = False

    # -- discovery ------------------------------------------------------------------------------
    def _glob(self) -> dict[tuple[int, int], tuple[str, os.stat_result]]:
        found: dict[tuple[int, int], tuple[str, os.stat_result]] = {}
        for pattern in self.patterns:
            names = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
            for path in sorted(names):
                if any(fnmatch.fnmatch(path, ex) or fnmatch.fnmatch(os.path.basename(path), ex)
                       for ex in self.spec.exclude):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), (path, st))
        return found

    def start(self) -> None:
        self.scan(0.0)
        missing = [p for p in self.patterns if not glob.has_magic(p) and not os.path.exists(p)]
        for p in missing:
            self.ctx.log.warning("file_not_found", path=p, action="waiting for it to appear")

    def scan(self, now: float) -> None:
        found = self._glob()
        reader: Reader | None
        for ident, reader in self.readers.items():
            reader.verify = True
            if ident in found:
                reader.set_path(found[ident][0])
                reader.rotated = False
            elif not reader.rotated:
                reader.rotated = True
                self.ctx.log.info("file_rotated", path=reader.path,
                                  action="finishing it, then following the new file")
        for ident, (path, st) in found.items():
            if ident in self.readers:
                continue
            reader = self._open(path, now)
            if reader is not None:
                self.readers[(reader.dev, reader.ino)] = reader
        self._first_scan = False
        self._scanned_once = True

    def _open(self, path: str, now: float, rotated: bool = False) -> Reader | None:
        ctx = self.ctx
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if path not in self._warned:
                self._warned.add(path)
                ctx.log.warning("file_unreadable", path=path, error=exc.strerror)
            return None
        self._warned.discard(path)
        st = os.fstat(fd)
        head = os.pread(fd, FP_BYTES, 0)
        ident = (st.st_dev, st.st_ino)
        fresh = ident in self.restart_after_truncation
        match = None if fresh else ctx.registry.match(st.st_dev, st.st_ino, fd, st.st_size)
        if match is None:
            # a new file: wait for a complete first line (or FP_BYTES) so the fingerprint is
            # stable, except in --once mode where the file will not grow
            if not head or (len(head) < FP_BYTES and b"\n" not in head and not ctx.once):
                os.close(fd)
                return None
            self.restart_after_truncation.discard(ident)
            for key, e in list(ctx.registry.files.items()):
                if e["dev"] == st.st_dev and e["ino"] == st.st_ino:
                    ctx.registry.remove(key)
            offset = 0
            if self.spec.start_at == "end" and self._first_scan:
                offset = st.st_size
            # after a truncation the same first bytes may come back: a new identity regardless
            key = ctx.registry.add(st.st_dev, st.st_ino, head, path, offset,
                                   salt=f"t{time.time_ns()}" if fresh else "")
            ctx.registry.save()  # the identity is on disk before any of its records is sent
            ctx.log.info("file_opened", path=path, offset=offset, size=st.st_size, new=True)
        else:
            key, entry = match
            offset = entry["offset"]
            if offset > st.st_size:
                os.close(fd)
                ctx.registry.remove(key)
                self.restart_after_truncation.add(ident)
                return self._open(path, now, rotated)
            ctx.log.info("file_opened", path=path, offset=offset, size=st.st_size, new=False)
        reader = Reader(self, path, fd, st, key, offset)
        reader.rotated = rotated
        reader.last_growth = now
        return reader

    def open_keys(self) -> set[str]:
        return {r.key for r in self.readers.values()}

    def recover_orphans(self, open_keys: set[str], now: float) -> None:
        """Registry entries of ours (their last path matches one of our globs) whose file left
        the globs while we were down (rotated): finish them if they are still in their
        directory."""
        reg = self.ctx.registry
        for key, e in list(reg.files.items()):
            if key in open_keys or not any(fnmatch.fnmatch(e["path"], p) for p in self.patterns):
                continue
            candidate = None
            try:
                with os.scandir(os.path.dirname(e["path"]) or ".") as it:
                    for entry in it:
                        if entry.inode() == e["ino"] and entry.is_file(follow_symlinks=False):
                            candidate = entry.path
                            break
            except OSError:
                continue
            if candidate is None or (e["dev"], e["ino"]) in self.readers:
                continue
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if st.st_dev != e["dev"] or st.st_size <= e["offset"]:
                continue
            reader = self._open(candidate, now, rotated=True)
            if reader is None:
                continue
            if reader.key != key:  # the inode holds other content now
                reader.close()
                reg.remove(reader.key)
                continue
            self.readers[(reader.dev, reader.ino)] = reader
            open_keys.add(key)
            self.ctx.log.info("file_resumed_rotated", path=candidate, offset=e["offset"])


    # -- reading --------------------------------------------------------------------------------
    def poll(self, max_lines: int, now: float) -> list[Chunk]:
        if now >= self._next_scan:
            self._next_scan = now + self.spec.scan_interval
            self.scan(now)
        out: list[Chunk] = []
        readers = list(self.readers.values())
        if not readers:
            return out
        n = len(readers)
        start = self._rr % n
        self._rr += 1
        for i in range(n):
            if max_lines <= 0:
                break
            reader = readers[(start + i) % n]
            chunk = reader.poll(max_lines, now)
            if chunk is not None:
                out.append(chunk)
                max_lines -= len(chunk.values)
        self._release()
        return out

    def _release(self) -> None:
        for ident, reader in list(self.readers.items()):
            if reader.releasable and reader.gone:  # (--once keeps finished files: no rescans)
                reader.close()
                self.ctx.registry.remove(reader.key)
                del self.readers[ident]

    def expire(self, now: float) -> list[Chunk]:
        out = []
        for reader in self.readers.values():
            before = reader.stream.resume_offset
            values = reader.stream.expire(now)
            if values:
                out.append(reader._chunk(values, before))
        return out

    def flush(self, now: float) -> list[Chunk]:
        # on shutdown, unterminated last lines stay in the file (read again after the restart);
        # pending multiline events are sent
        out = []
        for reader in self.readers.values():
            before = reader.stream.resume_offset
            values = reader.stream.expire(now + 1e9)
            if values:
                out.append(reader._chunk(values, before))
        return out

    @property
    def done(self) -> bool:
        if not self.ctx.once or not self._scanned_once:
            return False
        self._release()
        return all(r.finished for r in self.readers.values())

    def stop(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()

    def status(self) -> list[dict]:
        return [r.status() for r in self.readers.values()]


def recover_and_prune(file_inputs: list["FileInput"], registry, now: float) -> None:
    """After the first scan of every file input: finish rotated leftovers, forget the rest."""
    open_keys: set[str] = set()
    for fi in file_inputs:
        open_keys |= fi.open_keys()
    for fi in file_inputs:
        fi.recover_orphans(open_keys, now)
    for key in list(registry.files):
        if key not in open_keys:
            registry.remove(key)
    registry.save()
