"""How ``logpipe ui`` runs store work: bounded, cheap queries first, each under a time budget and
cancelled when its client goes away (issue 21).

* Store work runs on the gate's own threads, never on the server's: ``/health``, the dead letters
  and the static files answer however busy the store is.
* At most ``slots`` queries work at once (the CPU's cores); the others wait their turn in
  order of class, then arrival. A query starts *light*, unless its shape is known to be costly
  (a wildcard that is not a plain prefix: ``*a*``, ``f?o``) or the same query text was heavy
  before; a light query that works longer than ``quantum`` becomes *heavy*. A heavy query gives
  its slot up to a waiting light one at the embedded store's next check (a fraction of a
  millisecond; the budget's ``on_tick``), and takes its turn again after it: a flood of
  expensive queries slows itself, not a term search or the page around it.
* At most ``light_jobs`` light and ``heavy_jobs`` heavy queries are taken in (waiting or
  working); one more is answered at once with :class:`StoreBusy` (HTTP 503), not queued.
* Each query has ``timeout`` seconds from its arrival (waiting included); past it the store
  stops it and it answers "query too expensive: ..." (:class:`QueryTooExpensive`, HTTP 422).
  When the client disconnects the budget is cancelled: the embedded store interrupts the
  statement, Elasticsearch cancels the search task.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from logpipe.common.errors import QueryError, StoreBusy
from logpipe.query.lucene import compile_query
from logpipe.query.tree import And, Not, Or, TextWildcard, Wildcard
from logpipe.store import budget as budgets

LIGHT, HEAVY = 0, 1
DEFAULT_TIMEOUT = 10.0
KNOWN_HEAVY = 512          # query texts remembered as heavy


def looks_heavy(q: str) -> bool:
    """A query whose shape is costly on any store: a wildcard that is not a plain prefix
    (``*a*``, ``f?o*``) has to be checked against every word or value there is."""
    try:
        tree = compile_query((q or "").strip() or "*", datetime.now(timezone.utc))
    except (QueryError, ValueError, TypeError):
        return False  # the handler says what is wrong with it, at once
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (TextWildcard, Wildcard)) and not node.pattern.is_prefix_only():
            return True
        if isinstance(node, (And, Or)):
            todo.extend(node.items)
        elif isinstance(node, Not):
            todo.append(node.item)
    return False


class Job:
    __slots__ = ("budget", "level", "key", "since", "holding", "entry")

    def __init__(self, budget: budgets.Budget, level: int, key: str):
        self.budget, self.level, self.key = budget, level, key
        self.since = 0.0
        self.holding = False
        self.entry: tuple | None = None


class QueryGate:
    def __init__(self, timeout: float | None = DEFAULT_TIMEOUT, slots: int | None = None,
                 light_jobs: int = 16, heavy_jobs: int = 8, quantum: float = 0.25,
                 knob: str = "logpipe ui --query-timeout SECONDS"):
        self.timeout = timeout
        self.slots = max(1, slots or (os.cpu_count() or 2))
        self.light_jobs, self.heavy_jobs = max(1, light_jobs), max(1, heavy_jobs)
        self.quantum = quantum
        self.knob = knob
        self._cond = threading.Condition()
        self._running = 0
        self._queue: list = []                  # heap of (level, seq, job): waiting for a slot
        self._seq = itertools.count()
        self._taken = {LIGHT: 0, HEAVY: 0}      # jobs taken in, by class
        self._heavy: OrderedDict[str, None] = OrderedDict()
        self._executor = ThreadPoolExecutor(self.light_jobs + self.heavy_jobs,
                                            thread_name_prefix="logpipe-store")

    # ---------------------------------------------------------------- figures
    def figures(self) -> dict:
        with self._cond:
            return {"working": self._running, "waiting": len(self._queue),
                    "light": self._taken[LIGHT], "heavy": self._taken[HEAVY],
                    "slots": self.slots}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- admission
    def _is_heavy(self, key: str, hint: str | None) -> bool:
        with self._cond:
            if key in self._heavy:
                self._heavy.move_to_end(key)
                return True
        return hint is not None and looks_heavy(hint)

    def _remember_heavy(self, key: str) -> None:
        if not key:
            return
        self._heavy[key] = None
        self._heavy.move_to_end(key)
        while len(self._heavy) > KNOWN_HEAVY:
            self._heavy.popitem(last=False)

    def admit(self, key: str = "", query: str | None = None, what: str = "query") -> Job:
        """A job for one request's store work, or StoreBusy when its class is full."""
        level = HEAVY if self._is_heavy(key, query) else LIGHT
        with self._cond:
            limit = self.light_jobs if level == LIGHT else self.heavy_jobs
            total = self._taken[LIGHT] + self._taken[HEAVY]
            if self._taken[level] >= limit or total >= self.light_jobs + self.heavy_jobs:
                kind = "expensive " if level == HEAVY else ""
                raise StoreBusy(f"the store is busy: {self._taken[level]} {kind}queries are "
                                f"running or waiting; try again in a moment, or narrow the "
                                f"query so it is cheaper")
            self._taken[level] += 1
        return Job(budgets.Budget(self.timeout, knob=self.knob, what=what), level, key)

    def _done(self, job: Job) -> None:
        with self._cond:
            self._taken[job.level] -= 1

    # ---------------------------------------------------------------- slots (store threads)
    def _acquire(self, job: Job) -> bool:
        """Wait for a slot (light before heavy, then by arrival); False when the budget ran
        out or was cancelled meanwhile."""
        start = time.monotonic()
        with self._cond:
            entry = (job.level, next(self._seq), job)
            heapq.heappush(self._queue, entry)
            while not (self._running < self.slots and self._queue[0] is entry):
                if job.budget.stopped:
                    self._queue.remove(entry)
                    heapq.heapify(self._queue)
                    self._cond.notify_all()
                    job.budget.waited += time.monotonic() - start
                    return False
                remaining = job.budget.remaining()
                self._cond.wait(0.05 if remaining is None else min(0.05, remaining + 0.001))
            heapq.heappop(self._queue)
            self._running += 1
            job.holding = True
            job.since = time.monotonic()
            self._cond.notify_all()
        job.budget.waited += job.since - start
        return True

    def _release(self, job: Job) -> None:
        with self._cond:
            if job.holding:
                job.holding = False
                self._running -= 1
                self._cond.notify_all()

    def _tick(self, job: Job) -> None:
        """At each check of the embedded store: a light query past its quantum becomes heavy;
        a heavy one steps aside while a light one waits."""
        if job.level == LIGHT:
            if time.monotonic() - job.since <= self.quantum:
                return
            with self._cond:
                self._taken[LIGHT] -= 1
                self._taken[HEAVY] += 1
                job.level = HEAVY
                self._remember_heavy(job.key)
        queue = self._queue
        if job.holding and queue and queue[0][0] == LIGHT:
            self._release(job)
            self._acquire(job)

    def _execute(self, job: Job, fn: Callable, args: tuple) -> Any:
        job.budget.on_tick = lambda: self._tick(job)
        try:
            with budgets.applied(job.budget):
                if not self._acquire(job):
                    raise job.budget.error()
                try:
                    result = fn(*args)
                finally:
                    self._release(job)
            if job.level == HEAVY:
                with self._cond:
                    self._remember_heavy(job.key)
            return result
        finally:
            self._done(job)

    # ---------------------------------------------------------------- the event loop's side
    async def run(self, fn: Callable, *args, key: str = "", query: str | None = None,
                  gone: Callable[[], Awaitable[Any]] | None = None, what: str = "query") -> Any:
        """``fn(*args)`` on a store thread under a budget; ``gone()``: an awaitable that ends
        when the client has disconnected (the work is then cancelled and QueryCancelled
        raised). Raises StoreBusy when too many queries are in already."""
        job = self.admit(key, query, what)
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._execute, job, fn, args)
        except RuntimeError:  # the executor is shut down: the server is stopping
            self._done(job)
            raise StoreBusy("the page is shutting down") from None
        watch = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            if watch is None:
                return await future
            done, _ = await asyncio.wait({future, watch}, return_when=asyncio.FIRST_COMPLETED)
            if future in done:
                return future.result()
            job.budget.cancel()
            future.add_done_callback(_settled)
            raise job.budget.error()
        except asyncio.CancelledError:
            job.budget.cancel()
            future.add_done_callback(_settled)
            raise
        finally:
            if watch is not None:
                watch.cancel()


def _settled(future: asyncio.Future) -> None:
    """The end of work nobody waits for any more (its client went away): its error, the
    cancellation it was stopped with, is expected. Unread, asyncio would log it with a traceback
    for every abandoned request (a flood of them, on a pipe nobody reads, blocked the server)."""
    if not future.cancelled():
        future.exception()


async def disconnected(receive) -> None:
    """Ends when the ASGI client has gone (a GET's body has been read already, so the next
    message is the disconnect)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


__all__ = ["QueryGate", "looks_heavy", "disconnected", "DEFAULT_TIMEOUT"]
