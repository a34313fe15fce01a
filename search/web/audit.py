"""The audit log: who changed what, and when.

One JSON object a line in ``$LOGPIPE_HOME/audit.log`` (``LOGPIPE_AUDIT_LOG`` names another),
created 0600 in a 0700 directory and only ever appended to (``O_APPEND``; nothing in logpipe
rewrites or truncates it: rotate it with ``logrotate``'s ``copytruncate`` off, by renaming).
Entries: ``at`` (seconds since the epoch), ``who`` (the account, or ``token`` for the access
token's admin), ``role``, ``ip``, ``action`` (``replay``, ``purge``, ``alert_ack``,
``alert_mute``, ``alert_rule_saved``, ``alert_rule_deleted``, ``sign_in``, ``sign_in_failed``,
``password_set``, ``user_add``, ``user_remove``, ``user_role``, ``user_link``), ``what``
(the object and figures) and ``ok``. Never a password or a link's token.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import orjson

ENV_LOG = "LOGPIPE_AUDIT_LOG"
FILE = "audit.log"
READ_TAIL_BYTES = 1024 * 1024   # the page reads at most the last 1 MB


def default_path() -> Path:
    from logpipe.common.config import home

    return Path(os.environ.get(ENV_LOG) or home() / FILE)


class AuditLog:
    def __init__(self, path: str | os.PathLike | None = None,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path) if path else default_path()
        self.clock = clock
        self._lock = threading.Lock()

    def record(self, action: str, who: str, *, role: str = "", ip: str = "", ok: bool = True,
               **what: Any) -> dict:
        from logpipe.common.private import open_private_append, private_dir

        entry = {"at": round(self.clock(), 3), "who": who, "role": role, "ip": ip,
                 "action": action, "ok": ok,
                 "what": {k: v for k, v in what.items() if v is not None}}
        line = orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        with self._lock:
            private_dir(self.path.parent)
            with open_private_append(self.path) as out:
                out.write(line)
        return entry

    def entries(self, limit: int = 500) -> list[dict]:
        """The newest ``limit`` entries, newest first (a line that is not an entry is shown as
        such, not dropped: someone wrote into the file)."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - READ_TAIL_BYTES))
                blob = f.read()
        except FileNotFoundError:
            return []
        lines = blob.split(b"\n")
        if len(blob) >= READ_TAIL_BYTES:
            lines = lines[1:]   # the first may be cut
        out = []
        for raw in reversed([x for x in lines if x.strip()][-limit:]):
            try:
                entry = orjson.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError
            except (orjson.JSONDecodeError, ValueError):
                entry = {"at": 0, "who": "?", "action": "unreadable line", "ok": False,
                         "what": {"line": raw[:200].decode("utf-8", "replace")}}
            out.append(entry)
        return out
