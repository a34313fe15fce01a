"""The one retry policy: what to retry, exponential backoff with jitter, when to give up.

Every loop that waits for something that is down uses it: the shipper pushing to a broker that is
away, the indexer's dispatcher waiting for the broker, a job waiting for the store, the janitor
spacing out retries of a failed batch. A policy is a value (frozen, shareable); one retry episode
is a :class:`Backoff` made by :meth:`RetryPolicy.start`.

Delay of attempt ``n`` (1-based): ``first * factor ** (n - 1)``, capped at ``cap``, then jittered
to a uniform draw in ``[delay * (1 - jitter), delay * (1 + jitter)]`` so that many clients that
lost the same server do not come back in step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from logpipe.common.errors import Transient


@dataclass(frozen=True)
class RetryPolicy:
    first: float = 0.5                 # seconds before the first retry
    cap: float = 5.0                   # the longest wait between two tries
    factor: float = 2.0                # growth per attempt
    jitter: float = 0.5                # 0: exact delays; 0.5: +-50 %
    give_up_after: float | None = None  # seconds since the first failure; None: never
    max_attempts: int | None = None    # retries; None: unlimited
    # what is worth another try: by default the transient errors (common/errors.py)
    retry_on: tuple[type[BaseException], ...] = (Transient,)

    def __post_init__(self):
        if self.first < 0 or self.cap < self.first or self.factor < 1 or \
                not 0 <= self.jitter <= 1:
            raise ValueError(f"inconsistent retry policy {self!r}")

    def retries(self, exc: BaseException) -> bool:
        """Whether this error is worth another try under this policy."""
        return isinstance(exc, self.retry_on)

    def nominal_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based), without jitter."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # no float overflow for very long outages: stop growing once past the cap
        delay = self.first
        for _ in range(attempt - 1):
            if delay >= self.cap:
                break
            delay *= self.factor
        return min(delay, self.cap)

    def delay(self, attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        """The jittered delay before retry number ``attempt``."""
        nominal = self.nominal_delay(attempt)
        if not self.jitter:
            return nominal
        return rng(nominal * (1 - self.jitter), nominal * (1 + self.jitter))

    def gives_up(self, attempt: int, elapsed: float) -> bool:
        """True once retry number ``attempt`` would exceed the attempts or the time allowed."""
        if self.max_attempts is not None and attempt > self.max_attempts:
            return True
        return self.give_up_after is not None and elapsed >= self.give_up_after

    def start(self, clock: Callable[[], float] = time.monotonic) -> "Backoff":
        return Backoff(self, clock)


class Backoff:
    """One retry episode under a policy: counts attempts, knows when to give up."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.clock = clock
        self.started = clock()
        self.attempt = 0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def exhausted(self) -> bool:
        """No retry left: the caller gives up (raises, dead-letters...)."""
        return self.policy.gives_up(self.attempt + 1, self.elapsed)

    def next_delay(self, advance: bool = True) -> float:
        """The jittered wait before the next try; ``advance=False`` waits as long again
        without growing the delay."""
        if advance or self.attempt == 0:
            self.attempt += 1
        return self.policy.delay(self.attempt)

    def wait(self, sleep: Callable[[float], None] = time.sleep, advance: bool = True) -> None:
        sleep(self.next_delay(advance))

    def reset(self) -> None:
        """The thing came back: the next failure starts from the first delay again."""
        self.started = self.clock()
        self.attempt = 0


# The policies of logpipe's loops, named where a reader looks for them.
BROKER_OUTAGE = RetryPolicy(first=0.2, cap=5.0)              # dispatcher waiting for the broker
SHIPPER_PUSH = RetryPolicy(first=0.1, cap=30.0)              # an agent pushing to a broker that is away
BATCH_RETRY = RetryPolicy(first=2.0, cap=60.0, jitter=0.0, max_attempts=6)  # a failed batch job
STORE_DOWN_RETRY = RetryPolicy(first=30.0, cap=30.0, factor=1.0, jitter=0.0)  # batch, store down


def store_write_policy(wait: float) -> RetryPolicy:
    """A job writing to a store that pushes back: retried within the job for ``wait`` seconds."""
    return RetryPolicy(first=0.5, cap=5.0, give_up_after=wait)
