"""What /proc says of a process: its command line and its parent (Linux)."""

from __future__ import annotations

from pathlib import Path


def cmdline(pid: int) -> str:
    """The command line of ``pid``, its arguments joined by spaces."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")


def parent_pid(pid: int) -> int:
    """The parent of ``pid``. /proc/PID/stat is ``pid (comm) state ppid ...``, and comm may hold
    spaces and parentheses: the fields are counted after its last ``)``."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
