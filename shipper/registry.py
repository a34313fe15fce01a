"""The offset registry: how far every file was confirmed by the broker.

One JSON file, keyed by file identity ``"<dev>:<ino>:<fingerprint>"`` where the fingerprint hashes
the first ``fp_len`` bytes of the file, so a reused inode with other content is a new file. An
offset is only stored after the broker confirmed every line before it. Saving is atomic: a temp
file in the same directory, fsync, rename. A registry that cannot be parsed is moved aside with a
warning and the agent starts empty (files are read again from the start; record ids are stable,
so the repeats are harmless downstream) instead of crash-looping.

Offsets move after every confirmed batch, hundreds of times a second when shipping a backlog, and
a rename over an existing file costs a file system journal wait (1-3 ms on ext4, more than encoding
the batch). So when only offsets moved, they go into ``<registry>.offsets`` instead, overwritten in
place (one ``pwrite``: whole after a kill, since the page cache survives the process), naming the
``generation`` of the registry file they update; the registry file itself is rewritten when files
come or go, at most ``checkpoint_interval`` seconds after the offsets moved, and at exit. Loading
applies the offsets file when its generation matches; one that cannot be parsed (a power loss
during its write) is ignored: the registry file is at most ``checkpoint_interval`` older.

A lock file next to the registry keeps two agents from sharing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import orjson

from logpipe.common.errors import LogpipeError

VERSION = 1
FP_BYTES = 1024


def fingerprint(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


class RegistryLocked(LogpipeError):
    pass


class Registry:
    def __init__(self, path: Path | str, fsync: bool = True, log=None):
        self.path = Path(path)
        self.fsync = fsync
        self.log = log
        self.files: dict[str, dict] = {}
        self.dirty = False           # something changed since the last save
        self._layout_changed = False  # files came, went or moved: the registry file is rewritten
        self._behind = False          # offsets were saved in the offsets file since
        self._lock_fd: int | None = None
        self.fsync_interval = 1.0
        self._last_fsync = -1e9
        self.checkpoint_interval = 1.0
        self._last_full = -1e9
        self.generation = 0
        self.offsets_path = offsets_path(self.path)
        self._offsets_fd: int | None = None
        self._offsets_len = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise RegistryLocked(f"another shipper (pid {other}) is using the registry "
                                 f"{self.path}; stop it or pass --registry PATH") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._offsets_fd is not None:
            os.close(self._offsets_fd)
            self._offsets_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> "Registry":
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self
        try:
            data = orjson.loads(raw)
            files = data["files"]
            if not isinstance(files, dict) or data.get("version") != VERSION:
                raise ValueError("unexpected layout")
            for key, e in files.items():
                if not (isinstance(e, dict) and isinstance(e.get("offset"), int)
                        and isinstance(e.get("ino"), int) and isinstance(e.get("dev"), int)
                        and isinstance(e.get("fp"), str) and isinstance(e.get("fp_len"), int)):
                    raise ValueError(f"bad entry {key!r}")
            self.files = files
            self.generation = int(data.get("generation", 0))
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            if self.log:
                self.log.warning("registry_corrupt", path=str(self.path), moved_to=str(aside),
                                 error=str(exc)[:200],
                                 effect="files are read again from the start; "
                                        "repeated records keep their ids")
            self.files = {}
            self.dirty = self._layout_changed = True
            return self
        self._apply_offsets()
        return self

    def _apply_offsets(self) -> None:
        try:
            apply_offsets(self.files, self.generation, self.offsets_path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if self.log:
                self.log.warning("registry_offsets_ignored", path=str(self.offsets_path),
                                 error=str(exc)[:200],
                                 effect=f"offsets from {self.path.name} are used (at most "
                                        f"{self.checkpoint_interval:g} s older; repeats keep their ids)")

    def save(self, full: bool = False) -> None:
        """Store what changed: the whole registry file when files came or went, when ``full``, or
        ``checkpoint_interval`` after it was last written; else only the offsets, in place."""
        if not self.dirty and not (full and self._behind):
            return
        now = time.monotonic()
        if full or self._layout_changed or now - self._last_full >= self.checkpoint_interval:
            self._save_registry(now)
            self._behind = False
        else:
            self._save_offsets()
            self._behind = True  # the registry file's offsets are older than the offsets file's
        self.dirty = False

    def _save_offsets(self) -> None:
        data = orjson.dumps({"generation": self.generation,
                             "offsets": {key: e["offset"] for key, e in self.files.items()},
                             "seqs": {key: e.get("seq", 0) for key, e in self.files.items()}})
        if self._offsets_fd is None:
            self._offsets_fd = os.open(self.offsets_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._offsets_len = os.fstat(self._offsets_fd).st_size
        if len(data) < self._offsets_len:  # cover what a longer earlier write left (JSON allows spaces)
            data += b" " * (self._offsets_len - len(data))
        os.pwrite(self._offsets_fd, data, 0)
        self._offsets_len = len(data)

    def _save_registry(self, now: float) -> None:
        # unique, not just the next number: an offsets file left by a registry that was moved aside
        # must never match a new one
        self.generation = max(time.time_ns(), self.generation + 1)
        data = orjson.dumps({"version": VERSION, "updated": time.time(), "generation": self.generation,
                             "files": self.files})
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            # A killed agent loses nothing that was written (the page cache survives it), so
            # every save is renamed into place at once; fsync, which only matters for a power
            # loss, is paid at most once per fsync_interval (at-least-once either way).
            if self.fsync and now - self._last_fsync >= self.fsync_interval:
                os.fsync(fd)
                self._last_fsync = now
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._last_full = now
        self._layout_changed = False

    # -- entries --------------------------------------------------------------------------------
    def match(self, dev: int, ino: int, fd: int, size: int) -> tuple[str, dict] | None:
        """The entry for the open file ``fd`` (same device, inode and first bytes), if any.
        Entries for the same inode with other content (a reused inode) are dropped."""
        for key, e in list(self.files.items()):
            if e["dev"] != dev or e["ino"] != ino:
                continue
            if e["fp_len"] <= size and fingerprint(os.pread(fd, e["fp_len"], 0)) == e["fp"]:
                return key, e
            self.remove(key)
        return None

    def add(self, dev: int, ino: int, head: bytes, path: str, offset: int = 0,
            salt: str = "") -> str:
        key = f"{dev}:{ino}:{fingerprint(head)}" + (f":{salt}" if salt else "")
        self.files[key] = {"path": path, "dev": dev, "ino": ino, "fp": fingerprint(head),
                           "fp_len": len(head), "offset": offset, "updated": time.time()}
        self.dirty = self._layout_changed = True
        return key

    def set_offset(self, key: str, offset: int, path: str | None = None,
                   seq: int | None = None) -> None:
        """``seq``: the ledger sequence of the next record from ``offset`` (records confirmed so far)."""
        e = self.files.get(key)
        if e is None:
            return
        if seq is not None and e.get("seq") != seq:
            e["seq"] = seq
            self.dirty = True
        if e["offset"] != offset or (path and e["path"] != path):
            e["offset"] = offset
            if path and e["path"] != path:
                e["path"] = path
                self._layout_changed = True
            e["updated"] = time.time()
            self.dirty = True

    def remove(self, key: str) -> None:
        if self.files.pop(key, None) is not None:
            self.dirty = self._layout_changed = True


def offsets_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".offsets")


def apply_offsets(files: dict, generation: int, path: Path) -> None:
    """Offsets saved in place after the registry file of ``generation`` was written are the newer
    ones: put them into ``files``. Raises ValueError (or KeyError, TypeError) if the file is torn."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    data = orjson.loads(raw)
    if not isinstance(data, dict) or data.get("generation") != generation:
        return  # from an older registry file, whose offsets that one already holds
    for key, offset in data["offsets"].items():
        if key in files and isinstance(offset, int):
            files[key]["offset"] = offset
    for key, seq in (data.get("seqs") or {}).items():  # the ledger's sequences (absent before them)
        if key in files and isinstance(seq, int):
            files[key]["seq"] = seq


def read_registry(path: Path | str) -> dict:
    """For ``--status``: the entries, or {} when absent/unreadable (never moves anything)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
        files = data.get("files", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
    try:
        apply_offsets(files, data.get("generation", 0), offsets_path(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return files
