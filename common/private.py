"""Private files: secrets and state that only the owner may read.

Files are created with mode 0600 and directories with 0700 at ``open``/``mkdir`` time (never
chmod-ed afterwards, so there is no moment in which another user could open them). Reading a
secret file refuses one that group or others can read, naming the file and the fix.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

from logpipe.common.errors import ConfigError

FILE_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_UMASK = 0o077


def private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory open to group or
    others is tightened, because it is logpipe's own state directory."""
    path = Path(path)
    old = os.umask(PRIVATE_UMASK)
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    finally:
        os.umask(old)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(DIR_MODE)
    return path


def write_private(path: str | os.PathLike, data: str | bytes) -> Path:
    """Atomically replace ``path`` with ``data`` in a file created 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def open_private_append(path: str | os.PathLike):
    """A binary append handle on a log file created 0600 (an existing file keeps its mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    return os.fdopen(fd, "ab")


@contextmanager
def private_umask():
    """Files created inside (by this process or by children it starts) are 0600/0700."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def check_private(path: str | os.PathLike, what: str = "secret file") -> None:
    """Refuse a file holding secrets that group or others can read."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", str(path)) from None
    if mode & 0o077:
        raise ConfigError(f"the {what} is readable by group or others (mode {mode:04o}); "
                          f"it holds a secret: run `chmod 600 {path}`", str(path))


def read_secret(path: str | os.PathLike, what: str = "secret file") -> str:
    """The stripped text of a private file (refused when group or others can read it)."""
    check_private(path, what)
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", str(path)) from None
    if not text:
        raise ConfigError(f"the {what} is empty", str(path))
    return text
