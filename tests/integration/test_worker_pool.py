"""The indexer's worker pool (indexer/daemon.py WorkerPool, indexer/worker.py fork_worker).

At start the daemon runs one thread: it imports and compiles what a job needs once, then forks its
workers, which start with it (issue 27: about a CPU-second per worker and burst). A worker that
dies is replaced: forked again while the daemon still runs one thread, spawned as a new
interpreter (``python -m logpipe.indexer.worker``) once it runs others (the metrics server's),
where a fork would copy their locks half-held. Every worker, however started, stops on the
daemon's SIGTERM, and the work they do is the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.services.valkey import find_free_port

from tests.support.mail import mail_records
from tests.support.procs import cmdline, parent_pid
from tests.support.stores import events_in_file

pytestmark = pytest.mark.integration


def _workers(client) -> dict[int, str]:
    """The live RQ workers' pids, with their command lines."""
    from rq import Worker

    found = {}
    for worker in Worker.all(connection=client):
        if worker.pid and Path(f"/proc/{worker.pid}").exists() and worker.get_state() != "suspended":
            try:
                found[worker.pid] = cmdline(worker.pid)
            except OSError:
                pass
    return found


def _two_workers(client, without: int | None = None):
    """The workers when exactly two run (and ``without`` is not one of them), else None."""
    found = _workers(client)
    return found if len(found) == 2 and without not in found else None


def _wait(predicate, what: str, proc, log: Path, timeout: float = 180):
    """Polls a real signal; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the indexer exited ({proc.returncode}) waiting for {what}:\n"
                        f"{log.read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _start(redis_url: str, db: Path, log: Path, *extra: str):
    env = {**os.environ, "LOGPIPE_REDIS_URL": redis_url}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logpipe.common.cli", "index", "--store", f"sqlite:///{db}",
             "--workers", "2", "--batch-size", "100", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the indexer did not stop within 60 s of SIGTERM")


def _kill_one(client, proc, log: Path, workers: dict[int, str]) -> dict[int, str]:
    """SIGKILL one worker; the pool's replacement, once two workers run again."""
    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: "worker_died" in log.read_text(), "the death to be noticed", proc, log)
    now = _wait(lambda: _two_workers(client, without=victim), "a replacement worker", proc, log)
    return {pid: line for pid, line in now.items() if pid not in workers}


def test_workers_are_forked_at_start_and_after_a_death_then_do_the_work(redis_url, tmp_path):
    client = connect(redis_url)
    client.flushdb()
    db, log = tmp_path / "events.db", tmp_path / "index.log"
    proc = _start(redis_url, db, log)
    try:
        workers = _wait(lambda: _two_workers(client), "two workers", proc, log)
        for pid, line in workers.items():
            # forked: the daemon's child, with the daemon's command line (not a new interpreter)
            assert parent_pid(pid) == proc.pid
            assert line == cmdline(proc.pid) and "logpipe.indexer.worker" not in line
        items, _ = mail_records(300)
        client.rpush(Keys().raw, *items)
        first = len(items)
        _wait(lambda: events_in_file(db) == first, f"{first} events stored", proc, log)

        (pid, line), = _kill_one(client, proc, log, workers).items()
        assert parent_pid(pid) == proc.pid and line == cmdline(proc.pid)  # forked again
        more, _ = mail_records(200, host="mx-after")
        client.rpush(Keys().raw, *more)
        total = first + len(more)
        _wait(lambda: events_in_file(db) == total, f"{total} events stored", proc, log)
        alive = list(_workers(client))
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() and parent_pid(pid) == proc.pid for pid in alive)


def test_a_worker_replaced_while_the_daemon_runs_threads_is_spawned(redis_url, tmp_path):
    client = connect(redis_url)
    client.flushdb()
    db, log = tmp_path / "events.db", tmp_path / "index.log"
    # the metrics server runs in a thread of the daemon, started after the first workers
    proc = _start(redis_url, db, log, "--metrics-port", str(find_free_port()))
    try:
        workers = _wait(lambda: _two_workers(client), "two workers", proc, log)
        assert all(line == cmdline(proc.pid) for line in workers.values())
        (pid, line), = _kill_one(client, proc, log, workers).items()
        assert parent_pid(pid) == proc.pid
        assert line.split()[1:3] == ["-m", "logpipe.indexer.worker"], line
        items, _ = mail_records(200)
        client.rpush(Keys().raw, *items)
        good = len(items)
        _wait(lambda: events_in_file(db) == good, f"{good} events stored", proc, log)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]


# The daemon's side of a fork: its own SIGTERM handler (it stops the daemon's loop), then a
# worker forked, and stopped before it has started. An at-fork hook of the test's keeps the
# child there long enough for the stop to arrive first, every run.
_STOPPED_AT_ONCE = """
import os, signal, sys, time
from logpipe.indexer.worker import fork_worker

def daemon_stop(signum, frame):
    raise SystemExit(128 + signum)

signal.signal(signal.SIGTERM, daemon_stop)
os.register_at_fork(after_in_child=lambda: time.sleep(1.0))
worker = fork_worker(sys.argv[1], "logpipe")
os.kill(worker.pid, signal.SIGTERM)
try:
    print(worker.wait(30))
except Exception as exc:
    worker.kill()
    print("still running:", type(exc).__name__)
"""


def test_a_worker_stopped_before_it_started_ends_at_once(redis_url):
    run = subprocess.run([sys.executable, "-c", _STOPPED_AT_ONCE, redis_url],
                         capture_output=True, text=True, timeout=120)
    # ended by the stop itself (the default action), not the daemon's handler in the child
    assert run.stdout.strip() == str(-signal.SIGTERM), run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
