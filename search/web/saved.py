"""Saved searches of ``logpipe ui``: a name for a query, its time range, columns and order.

Kept in the state directory (``$LOGPIPE_HOME/ui-saved-searches.json``, beside the session key),
not in the broker: the page runs without a broker (``--redis`` is optional, the health and
dead-letter pages say when it is away) and these are the page's own settings, like its session
key, not pipeline data; a small JSON file is easy to back up, read and copy to another host.
Every change rewrites the file atomically (a 0600 temporary file in the same directory,
fsync, rename), so a crash leaves the old list or the new one, never half of one; one lock
orders the changes of one ``logpipe ui``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson

from logpipe.common.errors import QueryError

FILE = "ui-saved-searches.json"
MAX_SEARCHES = 500
NAME_MAX = 120
TEXT_MAX = 8192          # a query, or a from/to, at most this many characters
KEYS = ("q", "from", "to", "columns", "sort")


class Conflict(QueryError):
    http_status = 409


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise QueryError("a saved search needs a name")
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise QueryError(f"a name has at most {NAME_MAX} characters")
    return name


def _view(body: dict) -> dict:
    """The view to save: q, from, to, columns (a list of names), sort (asc or desc)."""
    out: dict = {}
    for key in ("q", "from", "to"):
        value = body.get(key) or ""
        if not isinstance(value, str) or len(value) > TEXT_MAX:
            raise QueryError(f"{key} must be text of at most {TEXT_MAX} characters")
        out[key] = value
    columns = body.get("columns") or []
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) \
            or len(columns) > 50 or sum(map(len, columns)) > TEXT_MAX:
        raise QueryError("columns must be a list of at most 50 field names")
    out["columns"] = columns
    out["sort"] = "asc" if body.get("sort") == "asc" else "desc"
    return out


class SavedSearches:
    """The saved searches in ``directory`` (the state directory)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / FILE
        self._lock = threading.Lock()

    def _read(self) -> list[dict]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError) as exc:
            raise QueryError(f"the saved searches in {self.path} cannot be read ({exc}); "
                             "fix or remove the file") from None
        items = data.get("searches") if isinstance(data, dict) else None
        return [s for s in items or [] if isinstance(s, dict) and isinstance(s.get("name"), str)]

    def _write(self, items: list[dict]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps({"searches": items}, option=orjson.OPT_INDENT_2))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def list(self) -> list[dict]:
        with self._lock:
            return sorted(self._read(), key=lambda s: s["name"].lower())

    def save(self, name, view: dict, replace: bool = False) -> dict:
        """Save ``view`` under ``name``; a name in use is a Conflict unless ``replace``."""
        name, view = _name(name), _view(view)
        with self._lock:
            items = self._read()
            old = next((s for s in items if s["name"] == name), None)
            if old is not None and not replace:
                raise Conflict(f"a saved search is named {name!r} already; pick another "
                               "name or replace it")
            if old is None and len(items) >= MAX_SEARCHES:
                raise QueryError(f"at most {MAX_SEARCHES} saved searches; delete some first")
            entry = {"name": name, **view, "saved_at": round(time.time(), 3)}
            items = [s for s in items if s["name"] != name] + [entry]
            self._write(items)
            return entry

    def rename(self, old, new) -> dict:
        old, new = _name(old), _name(new)
        with self._lock:
            items = self._read()
            entry = next((s for s in items if s["name"] == old), None)
            if entry is None:
                raise LookupError(f"no saved search named {old!r}")
            if new != old and any(s["name"] == new for s in items):
                raise Conflict(f"a saved search is named {new!r} already")
            entry["name"] = new
            self._write(items)
            return entry

    def delete(self, name) -> None:
        name = _name(name)
        with self._lock:
            items = self._read()
            kept = [s for s in items if s["name"] != name]
            if len(kept) == len(items):
                raise LookupError(f"no saved search named {name!r}")
            self._write(kept)


__all__ = ["SavedSearches", "Conflict", "FILE"]
