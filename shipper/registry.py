"""The offset registry: how far every file was confirmed by the broker.

One JSON file, keyed by file identity ``"<dev>:<ino>:<fingerprint>"`` where the fingerprint hashes
the first ``fp_len`` bytes of the file, so a reused inode with other content is a new file. An
offset is only stored after the broker confirmed every line before it. Saving is atomic: a temp
file in the same directory, fsync, rename. A registry that cannot be parsed is moved aside with a
warning and the agent starts empty (files are read again from the start; record ids are stable,
so the repeats are harmless downstream) instead of crash-looping.

A lock file next to the registry keeps two agents from sharing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import orjson

from common.errors import LogpipeError

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
        self.dirty = False
        self._lock_fd: int | None = None
        self.fsync_interval = 1.0
        self._last_fsync = -1e9

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
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            if self.log:
                self.log.warning("registry_corrupt", path=str(self.path), moved_to=str(aside),
                                 error=str(exc)[:200],
                                 effect="files are read again from the start; "
                                        "repeated records keep their ids")
            self.files = {}
            self.dirty = True
        return self

    def save(self) -> None:
        if not self.dirty:
            return
        data = orjson.dumps({"version": VERSION, "updated": time.time(), "files": self.files})
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
            now = time.monotonic()
            if self.fsync and now - self._last_fsync >= self.fsync_interval:
                os.fsync(fd)
                self._last_fsync = now
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.dirty = False

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
        self.dirty = True
        return key

    def set_offset(self, key: str, offset: int, path: str | None = None) -> None:
        e = self.files.get(key)
        if e is None:
            return
        if e["offset"] != offset or (path and e["path"] != path):
            e["offset"] = offset
            if path:
                e["path"] = path
            e["updated"] = time.time()
            self.dirty = True

    def remove(self, key: str) -> None:
        if self.files.pop(key, None) is not None:
            self.dirty = True


def read_registry(path: Path | str) -> dict:
    """For ``--status``: the entries, or {} when absent/unreadable (never moves anything)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
        return data.get("files", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
