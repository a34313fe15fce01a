"""The page's query gate (search/web/gate.py) without a store: what happens to work whose client
went away."""

from __future__ import annotations

import asyncio
import gc
import threading

from logpipe.common.errors import QueryCancelled
from logpipe.search.web.gate import QueryGate
from logpipe.store import budget as budgets


def test_work_abandoned_by_its_client_ends_without_an_unread_error():
    """A client that hangs up cancels its query; the query's own ending (QueryCancelled, raised
    on the store thread after the handler has answered) is read by the gate, so asyncio logs no
    "Future exception was never retrieved" traceback per abandoned request."""
    gate = QueryGate(timeout=30, slots=1)
    reported: list[dict] = []
    started, finished = threading.Event(), threading.Event()

    def store_work():  # as the embedded store does: check the budget until told to stop
        started.set()
        try:
            while True:
                budgets.current().check()
                threading.Event().wait(0.01)
        finally:
            finished.set()

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        hung_up = asyncio.Event()

        async def gone():
            await hung_up.wait()

        request = asyncio.ensure_future(gate.run(store_work, key="q", query="q", gone=gone))
        await loop.run_in_executor(None, started.wait, 10)
        hung_up.set()
        try:
            await request
        except QueryCancelled as exc:
            answered = str(exc)  # not the exception: its traceback would keep the work alive
        else:
            raise AssertionError("an abandoned query answered")
        del request
        await loop.run_in_executor(None, finished.wait, 10)
        for _ in range(5):  # let the store thread's result reach the loop
            await asyncio.sleep(0.01)
        gc.collect()  # an unread exception is reported when its future is collected
        await asyncio.sleep(0)
        return answered

    try:
        answered = asyncio.run(main())
    finally:
        gate.close()
    assert finished.is_set()
    assert "client went away" in answered
    assert reported == []
