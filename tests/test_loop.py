"""The scheduler of the control loops (common/loop.py), on a fake clock: no test waits."""

from __future__ import annotations

import pytest

from logpipe.common.loop import AGAIN, SKIP, FakeClock, Step, Ticker


def _recorder(log: list, name: str, outcome=None):
    def action():
        log.append(name)
        return outcome
    return action


def test_each_step_runs_at_its_own_period_on_the_injected_clock():
    clock, log = FakeClock(), []
    ticker = Ticker([Step("fast", _recorder(log, "fast")),
                     Step("slow", _recorder(log, "slow"), every=2.0)], clock)
    assert ticker.tick() == ["fast", "slow"]  # both due at start
    clock.advance(1.0)
    assert ticker.tick() == ["fast"]
    clock.advance(1.0)
    assert ticker.tick() == ["fast"]  # exactly 2 s: not yet (more than the period must pass)
    clock.advance(0.5)
    assert ticker.tick() == ["fast", "slow"]
    assert log == ["fast", "slow", "fast", "fast", "fast", "slow"]


def test_a_step_not_due_at_start_waits_one_period_and_restart_postpones_it():
    clock = FakeClock()
    ticker = Ticker([Step("later", lambda: None, every=10.0, due_at_start=False)], clock)
    assert ticker.tick() == []
    clock.advance(8)
    ticker.restart("later")
    clock.advance(8)
    assert ticker.tick() == []
    clock.advance(3)
    assert ticker.tick() == ["later"]


def test_again_keeps_a_step_due_and_skip_means_it_did_not_run():
    clock = FakeClock()
    outcomes = iter([AGAIN, None])
    ticker = Ticker([Step("work", lambda: next(outcomes), every=5.0),
                     Step("cond", lambda: SKIP, every=5.0)], clock)
    assert ticker.tick() == ["work"]
    assert ticker.tick() == ["work"]  # AGAIN: due at once, though 5 s have not passed
    assert ticker.tick() == []        # then its period runs
    assert ticker.step("cond").due(clock.now())  # skipped: still due


def test_stop_from_a_step_ends_the_tick_and_the_run_after_that_step():
    clock, log = FakeClock(), []
    ticker: Ticker

    def stopper():
        log.append("stopper")
        ticker.stop()

    ticker = Ticker([Step("first", _recorder(log, "first")), Step("stopper", stopper),
                     Step("after", _recorder(log, "after"))], clock)
    rests = []
    ticker.run(rest=lambda: rests.append(1) or 0.05)
    assert log == ["first", "stopper"]
    assert rests == [1]           # rest still hears of the last tick...
    assert clock.sleeps == []     # ...but the loop does not sleep once stopped


def test_run_sleeps_rest_on_the_clock_and_hands_listed_errors_to_on_error():
    clock = FakeClock()
    calls = iter([ConnectionError("down"), ConnectionError("down"), None, "stop"])
    ticker: Ticker

    def flaky():
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "stop":
            ticker.stop()

    ticker = Ticker([Step("flaky", flaky)], clock)
    seen = []
    ticker.run(rest=lambda: 0.25, errors=(ConnectionError,),
               on_error=lambda exc: (seen.append(str(exc)), clock.sleep(1.0)))
    assert seen == ["down", "down"]
    assert clock.sleeps == [1.0, 1.0, 0.25]


def test_errors_not_listed_reach_the_caller_and_names_must_be_unique():
    ticker = Ticker([Step("boom", lambda: 1 / 0)], FakeClock())
    with pytest.raises(ZeroDivisionError):
        ticker.run(errors=(ConnectionError,), on_error=lambda exc: None)
    with pytest.raises(ValueError, match="unique"):
        Ticker([Step("a", lambda: None), Step("a", lambda: None)])
    with pytest.raises(KeyError, match="no step named"):
        ticker.step("nope")


def test_done_ends_the_tick_after_that_step():
    log: list = []
    ticker = Ticker([Step("a", _recorder(log, "a", "done")), Step("b", _recorder(log, "b"))],
                    FakeClock())
    assert ticker.tick() == ["a"]
    assert ticker.tick() == ["a"]
    assert log == ["a", "a"]
