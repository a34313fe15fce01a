"""SQL functions the embedded store's read connections carry.

``lp_regexp(pattern, value)``: 1 when a string value matches a Lucene regexp as a whole (the
pattern is query.regexp's translation, run by the ``regex`` module), 0 otherwise (numbers,
null). Each value gets at most ``query.regexp.VALUE_TIMEOUT`` seconds (less when the query's
budget has less left): SQLite's progress handler does not run inside a function, so a regexp that
backtracks without end is stopped here; the statement then fails and :func:`raise_failure`
turns that into "query too expensive: ..." instead of SQLite's "user-defined function raised
exception".
"""

from __future__ import annotations

import sqlite3
import threading

from logpipe.common.errors import QueryTooExpensive
from logpipe.query.regexp import VALUE_TIMEOUT, RegexpTimeout, fullmatch
from logpipe.store import budget as budgets

_failure = threading.local()


def _regexp(pattern, value) -> int:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return 0
    timeout = VALUE_TIMEOUT
    budget = budgets.current()
    remaining = budget.remaining() if budget is not None else None
    if remaining is not None:
        timeout = max(0.01, min(timeout, remaining))
    try:
        return 1 if fullmatch(pattern, value, timeout) else 0
    except RegexpTimeout as exc:
        _failure.error = QueryTooExpensive(f"query too expensive: {exc}")
        raise


def register(conn: sqlite3.Connection) -> None:
    conn.create_function("lp_regexp", 2, _regexp, deterministic=True)


def raise_failure(exc: BaseException) -> None:
    """Raise the clear error of one of our functions that failed the statement, if it did."""
    error = getattr(_failure, "error", None)
    if error is not None:
        _failure.error = None
        if "user-defined function" in str(exc):
            raise error from None


__all__ = ["register", "raise_failure"]
