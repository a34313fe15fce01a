"""The broker's state, one ledger type per concern, each owning its keys and every command on them
(as python-rq's registries own theirs): callers say what they want done, never which key or
command does it.

* :class:`RawList`: the records shippers pushed, not claimed yet.
* :class:`PendingBatches`: claimed batch keys, their claim times, failed attempts and retry times.
* :class:`DeadLetters`: the dead-letter stream, its record-id index and its counts by stage
  (``indexer/dlq.py`` reads and filters them as :class:`DeadLetter` s).
* :class:`ShipperStatus`: the shippers' status hash (each shipper writes its entry, stats read).
* :class:`Counters`: the totals, the per-second and per-minute rate buckets, the depth samples.

A change that takes more than one command is one function of the library
(:mod:`common.broker.functions`) or one MULTI/EXEC, so a process killed at any point leaves the
state before or after it, never between.
"""

from __future__ import annotations

from typing import Callable

from logpipe.common.broker.connection import replica_wait
from logpipe.common.broker.functions import DEAD_LETTER_BATCH, DLQ_ADD, fcall
from logpipe.common.broker.keys import Broker, Keys
from logpipe.common.errors import BrokerError

# Per-second rate buckets live two minutes; per-minute ones (and depth samples) a bit more than
# the hour the health page shows.
RATE_TTL = 120
HISTORY_MINUTES = 60
MINUTE_TTL = (HISTORY_MINUTES + 2) * 60


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RawList:
    """The raw list shippers push to (read here; claims move from it: :class:`PendingBatches`)."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()

    def length(self) -> int:
        return int(self.client.llen(self.keys.raw))

    def head(self) -> bytes | None:
        """The oldest record waiting."""
        return self.client.lindex(self.keys.raw, 0)


class PendingBatches:
    """Batches claimed from the raw list and not yet finished: the batch keys, the ``batches``
    zset (claim time), the attempts and due-time hashes."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()
        self._broker = Broker(client, self.keys)
        self._wait = replica_wait(client)

    def claim(self, max_items: int) -> tuple[str, int] | None:
        """Move up to ``max_items`` raw records into a new registered batch (atomic)."""
        return self._broker.claim_batch(max_items)

    def finish(self, batch_key: str, also=None) -> None:
        """Forget a batch whose every record is stored or dead-lettered (see
        :meth:`Broker.finish_batch` for ``also``)."""
        self._broker.finish_batch(batch_key, also=also)

    def count(self) -> int:
        return int(self.client.zcard(self.keys.batches))

    def claimed_before(self, when: float, limit: int) -> list[tuple[str, float]]:
        """(batch key, claim time) of the oldest ``limit`` batches claimed before ``when``."""
        return [(_text(key), float(at)) for key, at in self.client.zrangebyscore(
            self.keys.batches, "-inf", when, start=0, num=limit, withscores=True)]

    def oldest(self) -> str | None:
        found = self.client.zrange(self.keys.batches, 0, 0)
        return _text(found[0]) if found else None

    def items(self, batch_key: str) -> list[bytes]:
        return self.client.lrange(batch_key, 0, -1)

    def first_item(self, batch_key: str) -> bytes | None:
        return self.client.lindex(batch_key, 0)

    def attempts(self, batch_key: str) -> int:
        """How many times the batch's job failed so far."""
        return int(self.client.hget(self.keys.batch_attempts, batch_key) or 0)

    def is_due(self, batch_key: str, now: float) -> bool:
        """Whether a failed batch may be retried at ``now``."""
        due = self.client.hget(self.keys.batch_due, batch_key)
        return due is None or float(due) <= now

    def schedule_retry(self, batch_key: str, attempts: int, due_at: float) -> None:
        """Record the batch's attempts and the time its next retry is due, together (MULTI)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.batch_attempts, batch_key, attempts)
        pipe.hset(self.keys.batch_due, batch_key, due_at)
        pipe.execute()

    def dead_letter(self, batch_key: str, reason: str, now: float,
                    identify: Callable[[bytes, int], tuple[str, str]]) -> int:
        """Dead-letter every item of the batch (stage ``index``) and forget the batch, as one
        function call, confirmed by the replicas the client's ``WAIT`` policy asks for (as the
        batch's deletion by a job). ``identify(item, position)`` names an item's record id and
        type. Returns the number of items."""
        items = self.items(batch_key)
        args: list = [reason[:4000], f"{now:.3f}"]
        for position, raw in enumerate(items):
            args += identify(raw, position)
        keys = [batch_key, self.keys.batches, self.keys.batch_attempts, self.keys.batch_due,
                self.keys.dlq, self.keys.dlq_ids, self.keys.dlq_stages]
        pipe = self.client.pipeline(transaction=False)
        fcall(self.client, pipe, DEAD_LETTER_BATCH, keys, args)
        n = int(self._wait.confirm(self.client, pipe)[0])
        if n < 0:  # a batch key is written once, at its claim: this is not logpipe's doing
            raise BrokerError(f"batch {batch_key} changed while it was dead-lettered (it had "
                              f"{len(items)} items); something other than logpipe writes to "
                              f"{self.keys.prefix}:batch:* keys")
        return n


class DeadLetters:
    """The dead-letter stream, its record id -> entry id index and its counts by stage."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()

    @staticmethod
    def _fields(raw, record_id: str, stage: str, reason: str, rtype: str, when: float) -> list:
        return [record_id, stage, "record", raw, "id", record_id, "stage", stage,
                "reason", reason[:4000], "type", rtype, "time", f"{when:.3f}"]

    def add(self, raw, record_id: str, stage: str, reason: str, rtype: str, when: float,
            pipe=None) -> None:
        """Add a dead letter unless that record id is already in (``pipe``: queue it there)."""
        fcall(self.client, pipe or self.client, DLQ_ADD,
              [self.keys.dlq, self.keys.dlq_ids, self.keys.dlq_stages],
              self._fields(raw, record_id, stage, reason, rtype, when))

    def length(self) -> int:
        return int(self.client.xlen(self.keys.dlq))

    def counts(self) -> dict[str, int]:
        return {_text(stage): int(n) for stage, n in self.client.hgetall(self.keys.dlq_stages).items()}

    def range(self, start: str, end: str, count: int | None = None) -> list:
        """Stream entries (entry id, fields) from ``start`` to ``end``, oldest first."""
        return self.client.xrange(self.keys.dlq, start, end, count=count)

    def _queue_delete(self, pipe, entries: list[tuple[str, str, str]]) -> None:
        pipe.xdel(self.keys.dlq, *[entry for entry, _, _ in entries])
        pipe.hdel(self.keys.dlq_ids, *[rid for _, rid, _ in entries])
        by_stage: dict[str, int] = {}
        for _, _, stage in entries:
            by_stage[stage] = by_stage.get(stage, 0) + 1
        for stage, n in by_stage.items():
            pipe.hincrby(self.keys.dlq_stages, stage, -n)

    def delete(self, entries: list[tuple[str, str, str]]) -> int:
        """Remove the (entry id, record id, stage) entries, together (MULTI); how many went."""
        if not entries:
            return 0
        pipe = self.client.pipeline(transaction=True)
        self._queue_delete(pipe, entries)
        return int(pipe.execute()[0])

    def replace(self, entry: tuple[str, str, str], raw, reason: str, rtype: str,
                when: float) -> None:
        """Replace one entry by a new one with another reason (a stream cannot update an
        entry), together (MULTI): the record is never out of the queue."""
        pipe = self.client.pipeline(transaction=True)
        self._queue_delete(pipe, [entry])
        _, record_id, stage = entry
        self.add(raw, record_id, stage, reason, rtype, when, pipe=pipe)
        pipe.execute()


class ShipperStatus:
    """The shippers' status hash: name -> JSON figures, written by each shipper agent."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()

    def publish(self, name: str, figures: bytes) -> None:
        """A shipper's own entry (the one command its broker user may run on the hash)."""
        self.client.hset(self.keys.shippers, name, figures)

    def names(self) -> list[bytes]:
        return self.client.hkeys(self.keys.shippers)

    def sizes(self, names: list[bytes]) -> list[int]:
        """Each entry's size in bytes, read without fetching it."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hstrlen(self.keys.shippers, name)
        return [int(size) for size in pipe.execute()]

    def values(self, names: list[bytes]) -> dict[bytes, bytes | None]:
        return dict(zip(names, self.client.hmget(self.keys.shippers, names))) if names else {}

    def remove(self, names: list[bytes]) -> int:
        return int(self.client.hdel(self.keys.shippers, *names)) if names else 0


class Counters:
    """The pipeline's figures: totals (claimed, indexed, duplicate, dead-lettered), per-second
    and per-minute counts of records in and out, and the raw list's depth sampled per minute."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()

    def add(self, direction: str, n: int, totals: dict[str, int], now: int) -> None:
        """``n`` records in or out at second ``now``, and these additions to the totals."""
        pipe = self.client.pipeline(transaction=False)
        second = self.keys.rate(direction, now)
        pipe.incrby(second, n)
        pipe.expire(second, RATE_TTL)
        minute = self.keys.minute(direction, now // 60)
        pipe.incrby(minute, n)
        pipe.expire(minute, MINUTE_TTL)
        for name, value in totals.items():
            if value:
                pipe.hincrby(self.keys.counters, name, value)
        pipe.execute()

    def totals(self) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.client.hgetall(self.keys.counters).items()}

    def per_second(self, direction: str, seconds: range) -> list[int]:
        return [int(v) if v else 0 for v in
                self.client.mget([self.keys.rate(direction, t) for t in seconds])]

    def per_minute(self, minutes: range) -> tuple[list[int], list[int], list[int | None]]:
        """(in, out, sampled depth or None) of each of ``minutes`` (epoch minutes)."""
        names = ([self.keys.minute("in", m) for m in minutes]
                 + [self.keys.minute("out", m) for m in minutes]
                 + [self.keys.depth(m) for m in minutes])
        values = self.client.mget(names)
        n = len(minutes)
        return ([int(v) if v else 0 for v in values[:n]],
                [int(v) if v else 0 for v in values[n:2 * n]],
                [int(v) if v is not None else None for v in values[2 * n:]])

    def sample_depth(self, minute: int) -> int:
        """The raw list's depth now, kept as the minute's sample unless it has one."""
        depth = RawList(self.client, self.keys).length()
        self.client.set(self.keys.depth(minute), depth, ex=MINUTE_TTL, nx=True)
        return depth
