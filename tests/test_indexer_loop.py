"""The indexer daemon's loop (indexer/daemon.IndexerLoop) as named steps on a fake clock: which
step runs when, the burst end, broker outages and a refused password, without waiting."""

from __future__ import annotations

import pytest
from redis.exceptions import AuthenticationError, ConnectionError as RedisConnectionError

from logpipe.common.broker import Keys
from logpipe.common.errors import BrokerError
from logpipe.common.loop import FakeClock
from logpipe.indexer.daemon import IndexerLoop


class Dispatcher:
    """Claims what ``claims`` says tick after tick (an exception is raised instead)."""

    def __init__(self, claims):
        self.claims = list(claims)
        self.janitor_runs = 0

    def dispatch_once(self):
        claim = self.claims.pop(0) if self.claims else 0
        if isinstance(claim, BaseException):
            raise claim
        return claim

    def janitor(self):
        self.janitor_runs += 1

    def idle(self):
        return not self.claims


class Sink:
    def __init__(self, deferred_steps=0):
        self.deferred = deferred_steps
        self.busy_calls = 0

    def maintain(self, busy=False):
        if busy:
            self.busy_calls += 1
            return False
        if self.deferred:
            self.deferred -= 1
            return True
        return False


class Pool:
    def __init__(self):
        self.supervised = 0

    def supervise(self):
        self.supervised += 1


def _loop(claims, sink, burst, clock):
    loop = IndexerLoop(dispatcher=Dispatcher(claims), pool=Pool(), sink=sink, client=None,
                       keys=Keys(), redis_url="redis://127.0.0.1:1/0", burst=burst,
                       progress=None, clock=clock)
    loop.ticker.step("report").action = lambda: None  # the figures need a broker
    return loop


def test_a_burst_ends_once_idle_with_the_store_fully_maintained():
    clock, sink = FakeClock(), Sink(deferred_steps=3)
    loop = _loop([5, 5, 0], sink, burst=True, clock=clock)
    loop.run()
    assert sink.deferred == 0                # drained before the end: fully searchable
    assert loop.ticker.ran[-1] == "maintain"  # the step that ended it
    assert clock.sleeps == []  # records moved, then the idle tick ended it: no nap


def test_steady_stream_gets_busy_maintenance_every_ten_seconds_and_janitor_every_two():
    clock, sink = FakeClock(), Sink()
    loop = _loop([1] * 1000, sink, burst=False, clock=clock)
    ran = []
    for _ in range(24):  # 24 ticks half a second apart: 12 s of records always moving
        ran.append(loop.ticker.tick())
        clock.advance(0.5)
    assert sink.busy_calls == 1
    assert sum("janitor" in r for r in ran) == 5  # at 0, 2.5, 5, 7.5, 10 s
    assert all("maintain" not in r for r in ran)  # never idle: the store's lock stays free


def test_idle_pipeline_maintains_step_after_step_and_skips_the_busy_step():
    clock, sink = FakeClock(), Sink(deferred_steps=2)
    loop = _loop([], sink, burst=False, clock=clock)
    assert "maintain" in loop.ticker.tick()
    assert "maintain" in loop.ticker.tick()  # more deferred work: at once again
    assert "maintain" in loop.ticker.tick()  # the last step: then once a second
    assert "maintain" not in loop.ticker.tick()
    clock.advance(11)
    assert "busy-maintain" not in loop.ticker.tick()
    assert sink.busy_calls == 0


def test_broker_outage_is_waited_for_on_the_clock_and_a_refused_password_ends_the_loop():
    clock = FakeClock()
    loop = _loop([RedisConnectionError("gone"), RedisConnectionError("gone"),
                  AuthenticationError("WRONGPASS")], Sink(), burst=True, clock=clock)
    with pytest.raises(BrokerError, match="refused"):
        loop.run()
    assert len(clock.sleeps) == 2 and all(s > 0 for s in clock.sleeps)  # backoff, no real wait


class LoadingSink(Sink):
    """Records what a burst tells it about loading; refuses after ``refuse_after`` calls."""

    def __init__(self, refuse_after=None):
        super().__init__()
        self.loads: list[bool] = []
        self.refuse_after = refuse_after

    def bulk_load(self, active):
        from logpipe.common.errors import StoreError

        self.loads.append(active)
        if self.refuse_after is not None and len(self.loads) > self.refuse_after:
            raise StoreError("403 security_exception: no manage privilege")


def test_a_burst_loads_every_two_seconds_and_ends_the_load(capsys):
    from logpipe.indexer.daemon import BulkLoad

    clock, sink = FakeClock(), LoadingSink()
    loading = BulkLoad(sink)
    loop = IndexerLoop(dispatcher=Dispatcher([5] * 20), pool=Pool(), sink=sink,
                       client=None, keys=Keys(), redis_url="redis://127.0.0.1:1/0", burst=True,
                       progress=None, clock=clock, loading=loading)
    loop.ticker.step("report").action = lambda: None
    for _ in range(12):  # 6 s of records moving, a tick every half second
        loop.ticker.tick()
        clock.advance(0.5)
    assert sink.loads == [True, True, True]  # at 0, 2.5 and 5 s: indices made since get it too
    loading.end()
    loading.end()  # once only
    assert sink.loads == [True, True, True, False]


def test_a_store_that_refuses_the_load_is_said_once_and_left_alone(capsys):
    from logpipe.indexer.daemon import BulkLoad

    sink = LoadingSink(refuse_after=1)
    loading = BulkLoad(sink)
    loading.keep()
    loading.keep()  # refused: one line, then no more asking
    loading.keep()
    loading.end()
    assert sink.loads == [True, True]
    out = capsys.readouterr()
    assert (out.out + out.err).count("bulk_load_refused") == 1
