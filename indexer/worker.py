"""One RQ worker process: ``python -m indexer.worker QUEUE`` (broker URL in LOGPIPE_REDIS_URL or
LOGPIPE_REDIS_URL_FILE: never in argv, where any local user could read it).

A :class:`rq.SimpleWorker` (:func:`worker_class`) runs jobs in its own process instead of forking
a work horse per job: a batch takes tens of milliseconds, a fork would be a large share of that, and the sink's
connection and the compiled patterns stay warm across jobs. A worker killed mid-batch loses
nothing: the batch key stays until the dispatcher's janitor enqueues it again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from typing import Any

# set by the daemon: ["path", embedded] of the URL file LOGPIPE_REDIS_URL was read from
ENV_URL_FILE = "LOGPIPE_REDIS_URL_SOURCE"
WORKER_TTL = 30  # seconds without a heartbeat before other hosts consider this worker dead
# How long the pub/sub thread (RQ's command channel: `rq` CLI's shutdown, kill-horse, stop-job)
# blocks in one read before it looks at its stop flag again; RQ's own 60 s is what a stop waited.
PUBSUB_POLL_S = 0.2
# what unsubscribe publishes on the worker's channel to wake its pub/sub thread: not an RQ
# command (RQ ignores unknown ones; handle_payload skips it before RQ parses it)
_WAKE = b'{"command": "logpipe-wake"}'


def worker_class():
    """RQ's :class:`rq.SimpleWorker` with a pub/sub thread that stops at once.

    RQ 3.0 subscribes each worker to its command channel in a thread that blocks in
    ``get_message(timeout=60)``; at teardown it sends UNSUBSCRIBE and then calls the thread's
    ``stop()``, which since redis-py 8.2 *joins* the thread with no timeout. When the thread
    reads the UNSUBSCRIBE reply before ``stop()`` clears its flag, it loops and waits again,
    now on "subscribed" (a threading.Event nothing sets) for the full 60 s: the worker, and
    with it ``logpipe index --burst`` (whose pool stop gave up after 30 s), lingered ~30 s in
    about half the runs under load (issue 27). Here the flag is cleared first, the thread is
    woken by a message on its own channel (and never blocks longer than :data:`PUBSUB_POLL_S`
    when that cannot reach it), and the thread closes its own connection (the server drops the
    subscription with it), so no UNSUBSCRIBE races it."""
    from redis.exceptions import RedisError
    from rq import SimpleWorker

    class Worker(SimpleWorker):
        pubsub_thread: Any

        def subscribe(self):
            self.pubsub = self.connection.pubsub()
            self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
            self.pubsub_thread = self.pubsub.run_in_thread(
                sleep_time=PUBSUB_POLL_S, daemon=True,
                exception_handler=self._pubsub_exception_handler)

        def execute_job(self, job, queue):
            try:
                super().execute_job(job, queue)
            finally:
                collect_after_job()

        def handle_payload(self, message):
            if message.get("data") not in (_WAKE, _WAKE.decode()):
                super().handle_payload(message)

        def unsubscribe(self):
            thread, self.pubsub_thread = self.pubsub_thread, None
            if thread is None:
                return
            # clears the run flag (stop without waiting), then wakes the thread's read with a
            # message on its own channel, so it sees the flag now rather than after its poll
            # (up to PUBSUB_POLL_S of every worker's exit); then waits for the loop to close
            # the connection. A daemon thread still stuck after that (a dead broker, which
            # the wake-up could not reach either) ends with us.
            thread.stop(timeout=0)
            try:
                self.connection.publish(self.pubsub_channel_name, _WAKE)
            except RedisError:  # the broker is gone: the poll's end is the wake-up
                pass
            thread.join(5 * PUBSUB_POLL_S)

    return Worker


def run(redis_url: str, queue_name: str, burst: bool = False) -> None:
    from rq import Queue

    from logpipe.common.broker import connect

    tune_gc()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # RQ logs every failed job with a full traceback; a user-facing failure (the store is down)
    # deserves one line, so RQ's own handler is replaced by one that says what happened.
    logging.getLogger("rq.worker").setLevel(logging.CRITICAL)
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    connection = connect(redis_url)
    worker = worker_class()([Queue(queue_name, connection=connection)], connection=connection,
                            worker_ttl=WORKER_TTL, log_job_description=False,
                            job_monitoring_interval=10, exception_handlers=[_one_line],
                            disable_default_exception_handler=True)
    worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
    # what is alive now stays out of the shutdown collections (as in common.cli.run)
    import gc
    gc.disable()
    gc.freeze()


def fork_worker(redis_url: str, queue_name: str) -> "ForkedWorker":
    """A worker forked from this process (the daemon, while it runs one thread: see
    :class:`indexer.daemon.WorkerPool`): it starts with every module this process imported and
    every pattern it compiled, and the URL files it read (a reconnect reads the current
    password). The child runs :func:`run` and leaves with its exit code, never returning
    into the daemon's code (nor running its exit handlers)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child would print the daemon's buffered lines again
    # The daemon's SIGTERM/SIGINT handlers stop the daemon's loop: a stop that reached the
    # child before it put back the default ones would run them there (in its at-fork hooks,
    # as an "exception ignored"), and the child would go on to work, deaf to that stop. So
    # both signals stay blocked across the fork until the child has the defaults: a stop sent
    # meanwhile then ends it at once.
    stops = {signal.SIGTERM, signal.SIGINT}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return ForkedWorker(pid)
    code = 1
    try:
        # the defaults until RQ installs the worker's own handlers
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        run(redis_url, queue_name)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            os._exit(code)


class ForkedWorker:
    """A forked worker, with the part of :class:`subprocess.Popen` the pool uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:  # not reaped: the pid is still this worker's
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def tune_gc() -> None:
    """A batch makes hundreds of thousands of short-lived objects (records, events, parts,
    rows), freed by their reference counts, and no cycles worth chasing during it. The
    collector is off while a job runs (at 50,000 allocations a pass it still took 6% of a
    worker: each pass walked the batch's live events; the default 700 took ~15%) and runs
    after each job (:func:`collect_after_job`), when only what outlives a batch is left to
    walk; what start-up made (modules, compiled patterns) stays out of every collection."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()


_JOBS_DONE = [0]
FULL_COLLECTION_EVERY = 100  # jobs


def collect_after_job() -> None:
    """The young objects after every job (the cycles a batch left, if any: few survive it),
    everything every :data:`FULL_COLLECTION_EVERY` jobs."""
    import gc

    _JOBS_DONE[0] += 1
    gc.collect(2 if _JOBS_DONE[0] % FULL_COLLECTION_EVERY == 0 else 1)


def _one_line(job, exc_type, exc_value, traceback) -> bool:
    from logpipe.common.console import emit
    from logpipe.common.errors import LogpipeError

    if isinstance(exc_value, LogpipeError):
        emit("batch_failed", job=job.id, error=str(exc_value)[:300])
    else:  # a bug: keep the traceback in the log
        logging.getLogger("logpipe.worker").error("job %s failed", job.id,
                                                  exc_info=(exc_type, exc_value, traceback))
    return False


def _broker_url() -> str:
    import json
    import os

    from logpipe.common.config import remember_url_file, resolve_redis_url

    url = resolve_redis_url()
    if os.environ.get(ENV_URL_FILE):
        path, embedded = json.loads(os.environ[ENV_URL_FILE])
        remember_url_file(url, path, embedded)
    return url


if __name__ == "__main__":
    run(_broker_url(), sys.argv[1], burst="--burst" in sys.argv[2:])
