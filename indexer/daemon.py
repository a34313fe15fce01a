"""The indexer daemon behind ``logpipe index``: the dispatcher's run loop, the worker pool and
the broker-outage tracker. ``indexer/cli.py`` parses the options and calls :func:`run`.

One loop of named steps (:class:`IndexerLoop`): claim batches while the queue has room, every two
seconds supervise the workers and run the janitor, report progress every second, and while nothing
waits let the store do its deferred work (the embedded store's full-text catch-up). A broker or store that is not up yet
at start, or a broker that goes away later, is waited for (one line when it goes, one when it is
back: :mod:`indexer.startup`); ``--burst`` ends once everything is stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from logpipe.common.broker import Keys, redact
from logpipe.common.broker.connection import password_refused
from logpipe.common.console import Progress, emit
from logpipe.common.errors import StoreError
from logpipe.common.loop import AGAIN, SKIP, SYSTEM_CLOCK, Clock, Step, Ticker
from logpipe.indexer.startup import Outage, broker_when_up, store_when_up


SUPERVISE_EVERY_S = 2.0   # workers checked, failed batches retried
REPORT_EVERY_S = 1.0      # the progress line
MAINTAIN_EVERY_S = 1.0    # is the pipeline idle? then the store's deferred work
# how often a pipeline that is never idle still gives the store one short maintenance step
BUSY_MAINTAIN_EVERY_S = 10.0
IDLE_NAP_S = 0.05         # the pause after a tick that claimed nothing


@dataclass(frozen=True)
class IndexerOptions:
    redis_url: str
    store_url: str
    config: str | None = None
    workers: int = 2
    burst: bool = False
    batch_size: int = 5000
    prefix: str = "logpipe"
    raw_list: str = "logpipe:raw"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


def run(opts: IndexerOptions, clock: Clock = SYSTEM_CLOCK) -> None:
    """Dispatch, supervise workers and keep the store maintained until stopped (or, with
    ``burst``, until everything queued is stored)."""
    from logpipe.indexer.dispatch import Dispatcher
    from logpipe.indexer.jobs import JobSettings, compiled_pipeline
    from logpipe.store import open_store

    redis_url, store_url, config = opts.redis_url, opts.store_url, opts.config
    workers, burst = opts.workers, opts.burst
    if config:
        # a broken config or pattern fails here, not in every batch (the built-in pipeline is
        # checked by the tests); the workers forked later start with it compiled
        compiled_pipeline(config)
    sink = open_store(store_url)  # a store URL that cannot work fails here
    settings = JobSettings(redis_url=redis_url, store_url=store_url, config_path=config,
                           prefix=opts.prefix, raw=opts.raw_list)
    loop: IndexerLoop | None = None

    def _stop(signum, frame):
        if loop is None:  # still starting: leave now (the workers are stopped)
            raise SystemExit(128 + signum)
        loop.ticker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Start order never matters: a broker or store that is not up yet is waited for.
    client = broker_when_up(redis_url, settings.keys, functions=True)
    # the workers start (import, connect) while the store is checked and the first batches
    # are claimed: a burst's first job no longer waits for their start-up
    pool = WorkerPool(redis_url, settings.keys.queue, workers, settings)
    pool.start()
    try:
        store_when_up(sink)
        dispatcher = Dispatcher(client, settings, batch_size=opts.batch_size,
                                max_queued_jobs=max(4, 2 * workers))
        if opts.metrics_port:
            from logpipe.indexer.metrics import serve_metrics
            serve_metrics(opts.metrics_port, client, settings.keys, opts.metrics_host)
    except BaseException:
        pool.stop()
        raise
    from logpipe.indexer.grok.native import engine
    emit("index_started", redis=redact(redis_url), store=redact(store_url), workers=workers,
         burst=burst, grok=engine())
    progress = Progress("index_progress")
    loading = BulkLoad(sink) if burst else None
    try:
        loop = IndexerLoop(dispatcher=dispatcher, pool=pool, sink=sink, client=client,
                           keys=settings.keys, redis_url=redis_url, burst=burst,
                           progress=progress, clock=clock, loading=loading)
        loop.run()
    finally:
        if loading is not None:
            loading.end()  # before the pool stops: what the burst wrote is searchable at exit
        pool.stop()
        sink.close()
        try:
            progress.close("index_done", **_figures(client, settings.keys))
        except RedisConnectionError:
            progress.close("index_done", broker="unreachable")


class BulkLoad:
    """A burst tells the store it is loading (:meth:`store.base.Maintenance.bulk_load`) at its
    start and again every few seconds (indices its writes created since), and that it is over
    at its end. A store that refuses (no permission to change index settings) is said once and
    left alone: the burst goes on at the store's usual cost."""

    def __init__(self, sink):
        self.sink, self.active = sink, True

    def keep(self) -> None:
        if self.active:
            try:
                self.sink.bulk_load(True)
            except StoreError as exc:
                emit("bulk_load_refused", reason=str(exc)[:300])
                self.active = False

    def end(self) -> None:
        if self.active:
            self.active = False
            try:
                self.sink.bulk_load(False)
            except StoreError as exc:
                emit("bulk_load_not_ended", reason=str(exc)[:300])


class IndexerLoop:
    """The dispatcher's loop as named steps on one clock (:mod:`common.loop`):

    * ``supervise`` (every 2 s): restart workers that died;
    * ``dispatch`` (every tick): claim raw records into batch jobs while the queue has room;
    * ``janitor`` (every 2 s): retry or dead-letter batches whose job failed or vanished;
    * ``report`` (every second): the progress line;
    * ``maintain`` (every second, every tick with ``burst``, only when nothing moved): once the
      pipeline is idle, the store's deferred work (the embedded store's full-text catch-up),
      step after step while it has some; it runs only when nothing waits, so it never takes the
      store's write lock from the workers. A burst ends here, fully searchable;
    * ``busy-maintain`` (every 10 s without an idle moment): one short maintenance step, so the
      counts and the full text still move on under a steady stream;
    * ``bulk-load`` (burst only, every 2 s): the store told it is loading (:class:`BulkLoad`).

    A broker that goes away is waited for (one line when it goes, one when it is back); a refused
    password ends the loop with BrokerError (a restart with the new URL file helps, waiting not).
    """

    def __init__(self, *, dispatcher, pool, sink, client, keys: Keys, redis_url: str,
                 burst: bool, progress: Progress, clock: Clock = SYSTEM_CLOCK,
                 loading: BulkLoad | None = None):
        self.dispatcher, self.pool, self.sink = dispatcher, pool, sink
        self.client, self.keys, self.redis_url = client, keys, redis_url
        self.burst, self.progress, self.clock = burst, progress, clock
        self.moved = 0  # what the last dispatch claimed
        self.outage = Outage("broker", broker=redact(redis_url))  # the same lines as at start-up
        self.ticker = Ticker([
            Step("supervise", pool.supervise, every=SUPERVISE_EVERY_S),
            Step("dispatch", self.dispatch),
            Step("janitor", dispatcher.janitor, every=SUPERVISE_EVERY_S),
            Step("report", self.report, every=REPORT_EVERY_S),
            Step("maintain", self.maintain, every=0.0 if burst else MAINTAIN_EVERY_S),
            Step("busy-maintain", self.busy_maintain, every=BUSY_MAINTAIN_EVERY_S,
                 due_at_start=False),
            *([Step("bulk-load", loading.keep, every=SUPERVISE_EVERY_S)] if loading else []),
        ], clock)

    def run(self) -> None:
        self.ticker.run(rest=self.rest, errors=(RedisConnectionError, RedisTimeoutError),
                        on_error=self.broker_error)

    def dispatch(self) -> None:
        self.moved = self.dispatcher.dispatch_once()

    def report(self) -> None:
        self.progress.update(**_figures(self.client, self.keys))

    def maintain(self) -> str | None:
        if self.moved:
            return SKIP  # records are moving: the store's write lock is the workers'
        if not self.dispatcher.idle():
            return None
        if self.burst:
            while self.sink.maintain():  # a burst ends fully searchable
                pass
            self.ticker.stop()
            return None
        self.ticker.restart("busy-maintain")  # idle: no need for the busy step
        return AGAIN if self.sink.maintain() else None

    def busy_maintain(self) -> None:
        try:
            self.sink.maintain(busy=True)
        except StoreError:
            pass  # the store is busy or away: the writes say so; next time

    def rest(self) -> float:
        """After a tick the broker answered: it is back if it was away; a short nap unless
        records are moving."""
        self.outage.ended()
        return 0.0 if self.moved else IDLE_NAP_S

    def broker_error(self, exc: BaseException) -> None:
        if isinstance(exc, RedisAuthenticationError):
            # the password was rotated while running: waiting cannot help, a restart with the
            # new URL file does (`logpipe up`'s supervisor or systemd does it)
            raise password_refused(self.redis_url, exc) from None
        self.outage.wait(exc, self.clock.sleep)


class WorkerPool:
    """Worker processes, restarted if one dies (a killed worker's batch is retried).

    While this process runs a single thread (at start), a worker is forked from it: what a job
    needs is imported and compiled here once (:func:`indexer.jobs.prepare`), and each worker
    starts with it instead of paying for it again (RQ, the Elasticsearch client, the patterns:
    about a CPU-second per worker and burst; issue 27). Once other threads run here (the
    metrics server's), a fork would copy their locks half-held, so a worker is spawned as a new
    interpreter instead (``python -m logpipe.indexer.worker``)."""

    def __init__(self, redis_url: str, queue: str, size: int, settings=None):
        self.redis_url, self.queue, self.size = redis_url, queue, size
        self.settings = settings  # JobSettings: what prepare() loads before the first fork
        self.procs: list = []   # subprocess.Popen or worker.ForkedWorker
        self._prepared = False

    def _start_one(self):
        import threading

        if threading.active_count() == 1:
            from logpipe.indexer.worker import fork_worker
            if not self._prepared and self.settings is not None:
                import gc

                from logpipe.indexer.jobs import prepare
                prepare(self.settings)
                # what start-up made stays out of every collection, here and in the workers
                # (a collection there would touch, and so copy, every page of it)
                gc.freeze()
            self._prepared = True
            return fork_worker(self.redis_url, self.queue)
        return self._spawn()

    def _spawn(self) -> subprocess.Popen:
        from logpipe.common.config import url_file_of
        from logpipe.indexer.worker import ENV_URL_FILE

        # The URL (and its password) goes through the environment, never argv; the file it was
        # read from goes too, so that a worker reconnecting after a password rotation reads the
        # new one, and one restarted by supervise() as well.
        env = {**os.environ, "LOGPIPE_REDIS_URL": self.redis_url}
        env.pop(ENV_URL_FILE, None)
        source = url_file_of(self.redis_url)
        if source:
            env[ENV_URL_FILE] = json.dumps(source)
        return subprocess.Popen([sys.executable, "-m", "logpipe.indexer.worker", self.queue],
                                stdin=subprocess.DEVNULL, env=env)

    def start(self) -> None:
        self.procs = [self._start_one() for _ in range(self.size)]

    def supervise(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                emit("worker_died", pid=proc.pid, code=proc.returncode)
                self.procs[i] = self._start_one()

    def stop(self, timeout: float = 30) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the current job
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _figures(client, keys: Keys) -> dict:
    from logpipe.indexer.stats import progress

    return progress(client, keys)
