"""The broker protocol: every key name (one :class:`Keys`, built from the prefix), in one place. logpipe's
Lua is a function library, with its loading and version check, in :mod:`common.broker.functions`; the
connection factory is :mod:`common.broker.connection`.

Keys (``prefix`` defaults to ``logpipe``)::

    <raw>                     list   records pushed by shippers (default ``logpipe:raw``; Filebeat,
                                     rsyslog or Logstash can point at it too)
    <prefix>:batch:<uuid>     list   a batch claimed from the raw list, deleted only after every
                                     record in it was indexed or dead-lettered
    <prefix>:batches          zset   batch keys by claim time, so a janitor finds orphans
    <prefix>:batch-attempts   hash   batch key -> how many times its job failed
    <prefix>:batch-attempts:due  hash  batch key -> when its retry may be enqueued
    <prefix>:dlq              stream dead letters: record, stage, reason, type, time
    <prefix>:dlq:ids          hash   record id -> DLQ entry id (adding is idempotent)
    <prefix>:dlq:stages       hash   stage -> number of dead letters (O(1) stats)
    <prefix>:stats:counters   hash   totals for ``logpipe stats``
    <prefix>:stats:rate:<in|out>:<epoch second>  string  per-second rate buckets
    <prefix>:stats:minute:<in|out>:<epoch minute>  string  per-minute counts (the last hour)
    <prefix>:stats:depth:<epoch minute>  string  the raw list's depth sampled in that minute
    <prefix>:stats:shippers   hash   "host: inputs" -> JSON figures of each shipper agent
    <prefix>:ledger           hash   source -> JSON: the loss ledger (stored up to, runs, holes)
    rq:queue:<prefix>         RQ's own keys for the job queue named ``<prefix>``

A claim is atomic (one Lua function, ``logpipe_claim_batch``, moves items from the raw list into a
batch key and registers the batch), so no crash point loses a record: before the call the items are
on the raw list, after it they are in a registered batch key. Giving up on a batch is one function
too (``logpipe_dead_letter_batch``: its records into the dead-letter stream and the batch
forgotten). The commands on these keys belong to the ledger types of :mod:`common.broker.ledgers`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from logpipe.common.broker.connection import replica_wait
from logpipe.common.broker.functions import CLAIM_BATCH, FINISH_BATCH, fcall

DEFAULT_PREFIX = "logpipe"


@dataclass(frozen=True)
class Keys:
    """Every broker key name, derived from one prefix and the raw list name."""

    prefix: str = DEFAULT_PREFIX
    raw: str = f"{DEFAULT_PREFIX}:raw"

    @property
    def batches(self) -> str:
        return f"{self.prefix}:batches"

    @property
    def batch_attempts(self) -> str:
        """batch key -> failed attempts of its job."""
        return f"{self.prefix}:batch-attempts"

    @property
    def batch_due(self) -> str:
        """batch key -> epoch seconds before which its retry is not enqueued."""
        return f"{self.prefix}:batch-attempts:due"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def dlq_ids(self) -> str:
        return f"{self.prefix}:dlq:ids"

    @property
    def dlq_stages(self) -> str:
        return f"{self.prefix}:dlq:stages"

    @property
    def counters(self) -> str:
        return self.stats("counters")

    @property
    def shippers(self) -> str:
        """Each shipper agent's figures (host:status-file -> JSON), read by ``logpipe stats``."""
        return self.stats("shippers")

    @property
    def ledger(self) -> str:
        """The loss ledger: per source, the sequences stored (``indexer/ledger.py``)."""
        return f"{self.prefix}:ledger"

    def rate(self, direction: str, second: int) -> str:
        """The per-second rate bucket of records in or out."""
        return self.stats(f"rate:{direction}:{second}")

    def minute(self, direction: str, minute: int) -> str:
        """The per-minute count of records in or out (``minute``: epoch seconds // 60)."""
        return self.stats(f"minute:{direction}:{minute}")

    def depth(self, minute: int) -> str:
        """The raw list's depth sampled in that minute."""
        return self.stats(f"depth:{minute}")

    @property
    def queue(self) -> str:
        """The RQ queue name."""
        return self.prefix

    def batch(self, batch_id: str | None = None) -> str:
        return f"{self.prefix}:batch:{batch_id or uuid.uuid4().hex}"

    def stats(self, name: str) -> str:
        return f"{self.prefix}:stats:{name}"

    @staticmethod
    def batch_id(batch_key: str) -> str:
        return batch_key.rsplit(":", 1)[-1]


class Broker:
    """Thin wrapper that binds a client to the key names and calls logpipe's functions (the library is
    checked on first use: :func:`common.broker.functions.ensure_library`). Claims and deletions return only
    once the replicas the client's :class:`ReplicaWait` asks for hold them (``WAIT``)."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()
        self._wait = replica_wait(client)

    def claim_batch(self, max_items: int) -> tuple[str, int] | None:
        """Atomically move up to ``max_items`` raw records into a new batch key."""
        key = self.keys.batch()
        pipe = self.client.pipeline(transaction=False)
        fcall(self.client, pipe, CLAIM_BATCH, [self.keys.raw, key, self.keys.batches], [max_items, time.time()])
        n, = self._wait.confirm(self.client, pipe)
        return (key, int(n)) if n else None

    def finish_batch(self, batch_key: str, also=None) -> None:
        """Forget a batch once every record in it is indexed or dead-lettered. ``also(pipe)`` queues
        writes to send first on the same connection (the loss ledger's merge), so the same ``WAIT``
        confirms them."""
        pipe = self.client.pipeline(transaction=False)
        if also is not None:
            also(pipe)
        fcall(self.client, pipe, FINISH_BATCH, [batch_key, self.keys.batches], [])
        self._wait.confirm(self.client, pipe)
