"""A store query's time budget: how long it may run, and a way to stop it from outside.

The caller runs its store calls under a :class:`Budget` (``with applied(budget): ...``); the
stores read it through :func:`current` on the same thread: the embedded store's progress
handler checks it every few thousand SQLite instructions (and interrupts the statement), the
Elasticsearch reader gives the search a ``timeout``, the client request a deadline and the task
an ``X-Opaque-Id`` to cancel it by. ``budget.cancel()`` (another thread: the client went away)
stops the query at its next check; the store then raises :meth:`Budget.error`.

``on_tick``: a hook called at each check of the embedded store (search/web/gate.py yields the
CPU there to cheaper queries); it may block.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from typing import Callable, Iterator

from logpipe.common.errors import LogpipeError, QueryCancelled, QueryTooExpensive

_ids = itertools.count(1)
_local = threading.local()

NARROW = ("narrow it: a shorter time range (from/to), a field term (host:, program:, qid:) "
          "instead of wildcards on the message, fewer words starting with *")


class Budget:
    def __init__(self, seconds: float | None, knob: str = "", what: str = "query"):
        self.seconds = seconds if seconds and seconds > 0 else None
        self.started = time.monotonic()
        self.deadline = None if self.seconds is None else self.started + self.seconds
        self.knob = knob        # how to raise the limit, e.g. "--timeout 60"
        self.what = what
        self.id = f"logpipe-q{next(_ids)}-{int(self.started * 1000) % 10**9}"
        self.waited = 0.0       # seconds spent waiting for a turn (the web's gate)
        self.on_tick: Callable[[], None] | None = None
        self._cancelled = threading.Event()
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- state
    def remaining(self) -> float | None:
        """Seconds left (None: no limit; never below 0)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def stopped(self) -> bool:
        return self.cancelled or self.expired

    def error(self) -> LogpipeError:
        if self.cancelled:
            return QueryCancelled(f"the {self.what} was cancelled: its client went away")
        waited = f", {self.waited:.1f} s of it waiting for a turn" if self.waited >= 0.1 else ""
        knob = f" (or raise the limit: {self.knob})" if self.knob else ""
        return QueryTooExpensive(f"query too expensive: the {self.what} did not finish within "
                                 f"its {self.seconds:g} s budget{waited}; {NARROW}{knob}")

    def check(self) -> None:
        """Raise :meth:`error` when the budget is spent or cancelled."""
        if self.stopped:
            raise self.error()

    def tick(self) -> bool:
        """A store's periodic check: True = stop the query now."""
        if self.stopped:
            return True
        if self.on_tick is not None:
            self.on_tick()
            return self.stopped
        return False

    # ---------------------------------------------------------------- cancellation
    def cancel(self) -> None:
        """Stop the query (from any thread): the embedded store at its next check, the
        hooks (e.g. Elasticsearch's task cancellation) at once."""
        self._cancelled.set()
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # best effort: the store's own deadline still stops it
                pass

    @contextlib.contextmanager
    def hook(self, fn: Callable[[], None]) -> Iterator[None]:
        """Run ``fn`` if the budget is cancelled while the block runs."""
        with self._lock:
            self._hooks.append(fn)
        try:
            yield
        finally:
            with self._lock:
                if fn in self._hooks:
                    self._hooks.remove(fn)


def current() -> Budget | None:
    """The budget the calling thread's store work runs under (None: no limit)."""
    return getattr(_local, "budget", None)


@contextlib.contextmanager
def applied(budget: Budget | None) -> Iterator[Budget | None]:
    """Run the block's store calls (on this thread) under ``budget``."""
    previous = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous


__all__ = ["Budget", "current", "applied", "NARROW"]
