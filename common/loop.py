"""Control loops as named steps on one clock.

A daemon's loop is a list of :class:`Step`, each with its own period, run in order by a
:class:`Ticker` that reads time from one :class:`Clock` (monotonic time + sleep). Tests inject a
:class:`FakeClock` and tick by hand, so no test waits in real time for a period to pass.

A step's action returns what the ticker does with its timer:

* ``None`` (or anything not below): it ran, its period starts again now;
* :data:`AGAIN`: it ran and is due again at the next tick (more work is waiting);
* :data:`SKIP`: it did not run this time (its condition did not hold), still due;
* :data:`DONE`: it ran, and the steps after it wait for the next tick (this tick's work is done).

:meth:`Ticker.stop` (from a signal handler or a step) ends the loop after the step running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Monotonic time and real sleep."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock for tests: time moves only when slept or advanced; every sleep is recorded."""

    def __init__(self, start: float = 1000.0):
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.time += seconds


AGAIN = "again"
SKIP = "skip"
DONE = "done"


@dataclass
class Step:
    """One named piece of a loop: ``action()`` runs when more than ``every`` seconds have passed
    since it last ran (``every=0``: at every tick). ``due_at_start=False`` waits one period first."""

    name: str
    action: Callable[[], object]
    every: float = 0.0
    due_at_start: bool = True
    last: float | None = field(default=None, repr=False)  # when it last ran; None: never

    def due(self, now: float) -> bool:
        return self.last is None or self.every <= 0 or now - self.last > self.every


class Ticker:
    """Runs :class:`Step` in order, each when its period has passed, on one clock."""

    def __init__(self, steps: list[Step], clock: Clock = SYSTEM_CLOCK):
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        self.steps = steps
        self.clock = clock
        self.stopping = False
        self.ran: list[str] = []  # the steps that ran at the last tick, in order
        now = self.now = clock.now()  # the time of the current (or last) tick
        for step in steps:
            if not step.due_at_start:
                step.last = now

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step named {name!r}: {[s.name for s in self.steps]}")

    def restart(self, name: str) -> None:
        """The step's period starts again now (what it waits for just happened another way)."""
        self.step(name).last = self.clock.now()

    def stop(self) -> None:
        self.stopping = True

    def tick(self) -> list[str]:
        """Run the steps that are due, in order; returns their names. An exception from a step
        leaves it (and the steps after it) due and reaches the caller."""
        self.ran = []
        now = self.now = self.clock.now()
        for step in self.steps:
            if self.stopping:
                break
            if not step.due(now):
                continue
            outcome = step.action()
            if outcome == SKIP:
                continue
            self.ran.append(step.name)
            if outcome != AGAIN:
                step.last = now
            if outcome == DONE:
                break
        return self.ran

    def run(self, rest: Callable[[], float] = lambda: 0.0,
            errors: tuple[type[BaseException], ...] = (),
            on_error: Callable[[BaseException], None] | None = None) -> None:
        """Tick until stopped. After a tick that raised nothing, ``rest()`` is called (also on
        the tick that stopped the loop) and the loop sleeps that many seconds. An exception of a
        type in ``errors`` goes to ``on_error`` (which waits, or raises) and the loop goes on."""
        while not self.stopping:
            try:
                self.tick()
            except errors as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            pause = rest()
            if pause > 0 and not self.stopping:
                self.clock.sleep(pause)
