"""The one retry policy: delays, jitter bounds, give-up, what is retried, episodes."""

from __future__ import annotations

import dataclasses

import pytest

from logpipe.common.errors import BrokerError, ConfigError, StoreError
from logpipe.common.retry import (BATCH_RETRY, BROKER_OUTAGE, SHIPPER_PUSH, STORE_DOWN_RETRY,
                          RetryPolicy, store_write_policy)


def test_delays_grow_exponentially_up_to_the_cap():
    policy = RetryPolicy(first=0.5, cap=5.0, factor=2.0, jitter=0.0)
    assert [policy.nominal_delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(3) == 2.0  # no jitter: exact
    assert policy.nominal_delay(10_000) == 5.0  # a very long outage does not overflow


def test_jitter_stays_within_its_bounds_and_varies():
    policy = RetryPolicy(first=1.0, cap=1.0, jitter=0.5)
    draws = [policy.delay(1) for _ in range(500)]
    assert all(0.5 <= d <= 1.5 for d in draws)
    assert len(set(draws)) > 100
    low = policy.delay(1, rng=lambda a, b: a)
    high = policy.delay(1, rng=lambda a, b: b)
    assert (low, high) == (0.5, 1.5)


def test_give_up_after_attempts_or_time():
    by_count = RetryPolicy(max_attempts=3)
    assert not by_count.gives_up(3, elapsed=1e9)
    assert by_count.gives_up(4, 0)
    by_time = RetryPolicy(give_up_after=30)
    assert not by_time.gives_up(1000, 29.9) and by_time.gives_up(1, 30)
    assert not RetryPolicy().gives_up(10 ** 6, 10 ** 9)  # never gives up by default


def test_what_to_retry():
    policy = RetryPolicy(retry_on=(BrokerError, StoreError))
    assert policy.retries(BrokerError("down")) and policy.retries(StoreError("503"))
    assert not policy.retries(ConfigError("bad url"))


def test_an_episode_counts_attempts_gives_up_and_resets():
    now = [100.0]
    slept = []
    backoff = RetryPolicy(first=1.0, cap=8.0, jitter=0.0, give_up_after=10).start(
        clock=lambda: now[0])
    for _ in range(3):
        assert not backoff.exhausted()
        backoff.wait(sleep=slept.append)
    assert slept == [1.0, 2.0, 4.0] and backoff.attempt == 3
    backoff.wait(sleep=slept.append, advance=False)  # as long again, not longer
    assert slept[-1] == 4.0
    now[0] += 10
    assert backoff.exhausted()
    backoff.reset()
    assert not backoff.exhausted() and backoff.next_delay() == 1.0


def test_inconsistent_policies_are_refused():
    for bad in (dict(first=-1), dict(first=10, cap=1), dict(factor=0.5), dict(jitter=2)):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_logpipe_loops_keep_their_pace():
    """The policies the loops use, as they behaved before there was one type."""
    assert [BATCH_RETRY.delay(n) for n in (1, 2, 5, 6)] == [2.0, 4.0, 32.0, 60.0]
    assert BATCH_RETRY.gives_up(7, 0) and not BATCH_RETRY.gives_up(6, 0)
    assert STORE_DOWN_RETRY.delay(1) == STORE_DOWN_RETRY.delay(50) == 30.0
    assert BROKER_OUTAGE.nominal_delay(1) == 0.2 and BROKER_OUTAGE.cap == 5.0
    assert SHIPPER_PUSH.nominal_delay(1) == 0.1 and SHIPPER_PUSH.cap == 30.0
    store = store_write_policy(30)
    assert store.give_up_after == 30 and store.nominal_delay(1) == 0.5
    assert dataclasses.replace(BATCH_RETRY, max_attempts=2).gives_up(3, 0)


def test_transient_or_permanent_is_decided_by_type_and_the_default_policy_follows_it():
    import pickle

    from logpipe.common.errors import (BrokerSetupError, BrokerUnavailable, LogpipeError,
                                       Permanent, StoreRefused, StoreUnreachable, Transient,
                                       is_transient)
    from logpipe.indexer.jobs import StoreUnavailable

    policy = RetryPolicy()
    down, refused = StoreError("store unreachable: 503"), StoreError("bad password", permanent=True)
    assert isinstance(down, StoreUnreachable) and isinstance(down, Transient)
    assert isinstance(refused, StoreRefused) and isinstance(refused, Permanent)
    assert (down.permanent, refused.permanent) == (False, True)  # derived from the type
    assert str(refused) == "bad password"
    assert type(pickle.loads(pickle.dumps(refused))) is StoreRefused  # crosses RQ as it is
    assert policy.retries(down) and not policy.retries(refused)
    assert issubclass(BrokerUnavailable, LogpipeError) and policy.retries(BrokerUnavailable("x"))
    assert policy.retries(StoreUnavailable("not stored after 30s"))
    for permanent in (BrokerSetupError("load the library"), ConfigError("bad url"),
                      BrokerError("NOPERM"), ValueError("a bug")):
        assert not is_transient(permanent) and not policy.retries(permanent)
