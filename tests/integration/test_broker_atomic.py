"""Every multi-step change of the broker's state is atomic: a process SIGKILLed before any of its
writes leaves the state as it was before the change or as it is after it, never between, and
nothing is lost or doubled.

Each case runs the change in a child process that counts its write commands (single commands and
pipelines/transactions) and kills itself with SIGKILL just before write number N; N grows until
the change completes unkilled. After each kill the broker's state is checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from logpipe.common.broker import Keys, connect, ensure_library
from logpipe.common.record import Record, encode, record_id

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNDECODABLE = b"not a record"

# Commands that change the broker's state (those the changes under test send one by one);
# a pipeline or a MULTI/EXEC is one write.
WRITES = {"FCALL", "SET", "HSET", "HDEL", "HINCRBY", "DEL", "XADD", "XDEL", "ZADD", "ZREM",
          "LPUSH", "RPUSH", "LREM", "LTRIM", "INCRBY", "EXPIRE", "SADD", "SREM"}

CHILD = """
import sys
from tests.integration.test_broker_atomic import child
child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


def child(case: str, redis_url: str, kill_before: int) -> None:
    """Run ``case`` with SIGKILL just before its write number ``kill_before`` (the test's
    breakpoint: only this child process is patched)."""
    import redis
    from redis.client import Pipeline

    writes = 0

    def write() -> None:
        nonlocal writes
        writes += 1
        if writes == kill_before:
            os.kill(os.getpid(), signal.SIGKILL)

    send_one = redis.Redis.execute_command
    send_many = Pipeline.execute

    def execute_command(self, *args, **options):
        if str(args[0]).upper() in WRITES:
            write()
        return send_one(self, *args, **options)

    def execute(self, *args, **options):
        if self.command_stack:
            write()
        return send_many(self, *args, **options)

    redis.Redis.execute_command = execute_command  # type: ignore[method-assign]
    Pipeline.execute = execute  # type: ignore[method-assign]
    CASES[case](connect(redis_url))


def _dispatcher(client, **options):
    from logpipe.indexer.dispatch import Dispatcher
    from logpipe.indexer.jobs import JobSettings

    return Dispatcher(client, JobSettings(redis_url="", store_url="sqlite:///unused.db"),
                      **options)


def _dead_letter_batch(client) -> None:
    batch_key = client.zrange(Keys().batches, 0, 0)[0].decode()
    _dispatcher(client).dead_letter_batch(batch_key, "gave up after 6 attempts: test")


def _requeue(client) -> None:
    assert _dispatcher(client, grace=0).janitor()["requeued"] == 1


def _claim_and_enqueue(client) -> None:
    assert _dispatcher(client, batch_size=2).dispatch_once() == 5


def _set_reason(client) -> None:
    from logpipe.indexer.dlq import DeadLetterQueue

    dlq = DeadLetterQueue(client)
    for letter in list(dlq.iter()):
        dlq.set_reason(letter, "still failing: new reason")


CASES = {"dead_letter_batch": _dead_letter_batch, "requeue": _requeue,
         "claim_and_enqueue": _claim_and_enqueue, "set_reason": _set_reason}


def run_killed(case: str, redis_url: str, kill_before: int) -> bool:
    """Run the case in a child killed before write ``kill_before``; whether it completed."""
    done = subprocess.run([sys.executable, "-c", CHILD, case, redis_url, str(kill_before)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return True
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return False


def each_kill_point(case: str, redis_url: str, prepare, check) -> int:
    """For N = 1, 2, ...: fresh state, run killed before write N, check; until a run completes.
    Returns how many kill points there were."""
    client = connect(redis_url)
    for kill_before in range(1, 60):
        client.flushall()
        ensure_library(client)  # loaded by an admin before the indexer runs: not a step of the change
        prepare(client)
        completed = run_killed(case, redis_url, kill_before)
        check(client, completed)
        if completed:
            return kill_before - 1
    raise AssertionError(f"{case} never completed")


def records(n: int) -> list[bytes]:
    return [encode(Record(id=record_id("h", "f", i), line=f"Nov 28 10:00:00 h app[1]: {i}",
                          type="syslog", received_at=time.time())) for i in range(n)]


def _claimed_batch(client, items: list[bytes]) -> str:
    from logpipe.common.broker.ledgers import PendingBatches

    client.rpush(Keys().raw, *items)
    claimed = PendingBatches(client).claim(len(items))
    assert claimed is not None
    return claimed[0]


def test_dead_lettering_a_batch_is_one_step(redis_url):
    items = records(3) + [UNDECODABLE]
    keys = Keys()

    def prepare(client):
        batch_key = _claimed_batch(client, items)
        client.hset(keys.batch_attempts, batch_key, 6)
        client.hset(keys.batch_due, batch_key, 0)

    def check(client, completed):
        letters = client.xrange(keys.dlq)
        if not completed and not letters:  # killed before: the batch is pending as it was
            (batch_key,) = [k.decode() for k in client.zrange(keys.batches, 0, -1)]
            assert client.lrange(batch_key, 0, -1) == items
            assert client.hget(keys.batch_attempts, batch_key) == b"6"
            return
        # after: every item dead-lettered once, the batch and its bookkeeping gone
        assert sorted(fields[b"record"] for _, fields in letters) == sorted(items)
        ids = [fields[b"id"].decode() for _, fields in letters]
        assert len(set(ids)) == 4 and {orjson.loads(i)["id"] for i in items[:3]} <= set(ids)
        assert client.hget(keys.dlq_stages, "index") == b"4"
        assert client.hlen(keys.dlq_ids) == 4
        assert client.zcard(keys.batches) == 0 and not client.keys(f"{keys.prefix}:batch:*")
        assert client.hlen(keys.batch_attempts) == 0 and client.hlen(keys.batch_due) == 0

    assert each_kill_point("dead_letter_batch", redis_url, prepare, check) == 1


def test_a_requeue_keeps_the_batch_and_records_attempts_and_due_time_together(redis_url):
    items = records(3)
    keys = Keys()

    def prepare(client):
        batch_key = _claimed_batch(client, items)
        client.zadd(keys.batches, {batch_key: 1.0})  # long past the grace; its job is gone
        client.hset(keys.batch_attempts, batch_key, 1)

    def check(client, completed):
        (batch_key,) = [k.decode() for k in client.zrange(keys.batches, 0, -1)]
        assert client.lrange(batch_key, 0, -1) == items  # nothing lost
        attempts = int(client.hget(keys.batch_attempts, batch_key))
        due = client.hget(keys.batch_due, batch_key)
        assert (attempts, due is None) in ((1, True), (2, False))  # both or neither
        queued = client.lrange(f"rq:queue:{keys.queue}", 0, -1)
        assert queued.count(f"batch-{Keys.batch_id(batch_key)}".encode()) <= 1  # never doubled
        if completed:
            assert attempts == 2 and len(queued) == 1

    assert each_kill_point("requeue", redis_url, prepare, check) >= 2


def test_a_claim_then_its_job_loses_and_doubles_no_record(redis_url):
    items = records(5)
    keys = Keys()

    def prepare(client):
        client.rpush(keys.raw, *items)

    def check(client, completed):
        held = client.lrange(keys.raw, 0, -1)
        batches = [k.decode() for k in client.zrange(keys.batches, 0, -1)]
        for batch_key in batches:
            held += client.lrange(batch_key, 0, -1)
        assert sorted(held) == sorted(items)  # each record once: raw list or a registered batch
        # a batch whose job was not enqueued is the janitor's (job missing): still registered
        assert len(client.keys(f"{keys.prefix}:batch:*")) == len(batches)
        if completed:
            assert len(batches) == 3 and client.llen(f"rq:queue:{keys.queue}") == 3

    assert each_kill_point("claim_and_enqueue", redis_url, prepare, check) >= 3


def test_a_new_reason_never_takes_a_letter_out_of_the_queue(redis_url):
    from logpipe.indexer.dlq import DeadLetterQueue

    items = records(2)
    keys = Keys()

    def prepare(client):
        dlq = DeadLetterQueue(client)
        for raw in items:
            dlq.add(raw, orjson.loads(raw)["id"], "parse", "old reason", "syslog")

    def check(client, completed):
        letters = list(DeadLetterQueue(client).iter())
        assert sorted(letter.record for letter in letters) == sorted(items)
        assert {letter.reason for letter in letters} <= {"old reason", "still failing: new reason"}
        assert client.hget(keys.dlq_stages, "parse") == b"2" and client.hlen(keys.dlq_ids) == 2
        assert all(client.hget(keys.dlq_ids, letter.record_id).decode() == letter.entry_id
                   for letter in letters)
        if completed:
            assert {letter.reason for letter in letters} == {"still failing: new reason"}

    assert each_kill_point("set_reason", redis_url, prepare, check) == 2
