"""The RQ job: process one batch key from decode to store, then forget the batch.

A batch key is deleted only after the sink confirmed every record in it (indexed, already present,
or dead-lettered). If the worker dies half-way, the key is still there and the dispatcher's janitor
enqueues it again; the sink writes with the record id, so the repeat is a no-op for what was
already stored.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import weakref
from dataclasses import dataclass

from common.broker import Broker, Keys, connect
from common.errors import DecodeError, LogpipeError, SinkError
from common.record import decode
from indexer import stats
from indexer.dlq import DeadLetterQueue
from indexer.sinks.base import Status

log = logging.getLogger("logpipe.indexer")


class StoreUnavailable(LogpipeError):
    """The store kept refusing or failing for longer than the job waits; the batch is retried."""


@dataclass(frozen=True)
class JobSettings:
    """What every job needs to know; passed as a plain dict so RQ can serialise it."""

    redis_url: str
    store_url: str
    config_path: str | None = None
    prefix: str = "logpipe"
    raw: str = "logpipe:raw"
    store_wait: float = 30.0   # how long one job waits for a store that is down

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.prefix, raw=self.raw)


# Per-process caches: a worker runs many jobs with the same settings.
@functools.lru_cache(maxsize=None)
def _sink(url: str):
    from indexer.sinks import open_sink
    return open_sink(url)


@functools.lru_cache(maxsize=None)
def _pipeline(config_path: str | None):
    from indexer.pipeline import Pipeline, load_pipeline
    return Pipeline(load_pipeline(config_path))


@functools.lru_cache(maxsize=None)
def _client(url: str):
    return connect(url)


# Sinks prepared in this process. prepare() happens on the first write, not when the sink is
# opened, because the store may be down at first; a weak set, so a new sink is never mistaken
# for a dead one that had the same id().
_prepared: "weakref.WeakSet" = weakref.WeakSet()


def _write(sink, events):
    if sink not in _prepared:
        sink.prepare()
        _prepared.add(sink)
    return sink.write(events)


def process_batch(batch_key: str, settings: dict) -> dict:
    """RQ entry point. Returns the counts of what happened to the batch's records."""
    s = JobSettings(**settings)
    if s.redis_url:
        client = _client(s.redis_url)
    else:  # enqueued without a URL (no secret in the job): the worker's own connection
        from rq import get_current_job
        client = get_current_job().connection
    return BatchProcessor(client, s).run(batch_key)


class BatchProcessor:
    def __init__(self, client, settings: JobSettings, sink=None, pipeline=None):
        self.client = client
        self.settings = settings
        self.keys = settings.keys
        self.broker = Broker(client, self.keys)
        self.dlq = DeadLetterQueue(client, self.keys)
        self.sink = sink or _sink(settings.store_url)
        self.pipeline = pipeline or _pipeline(settings.config_path)

    def run(self, batch_key: str) -> dict:
        started = time.perf_counter()
        items = self.client.lrange(batch_key, 0, -1)
        counts = {"records": len(items), "indexed": 0, "duplicate": 0, "dead_lettered": 0}
        if not items:
            # Already finished by another attempt; make sure it is not tracked any more.
            self.broker.finish_batch(batch_key)
            return counts
        batch_id = Keys.batch_id(batch_key)
        events, sources = [], []
        for position, raw in enumerate(items):
            try:
                record = decode(raw, f"{batch_id}:{position}")
            except DecodeError as exc:
                self.dlq.add(raw, f"{batch_id}:{position}", "decode", str(exc))
                counts["dead_lettered"] += 1
                continue
            try:
                event = self.pipeline.process(record)
            except Exception as exc:  # a bug or a bad config must not lose the record
                self.dlq.add(raw, record.id, "parse", f"{type(exc).__name__}: {exc}", record.type)
                counts["dead_lettered"] += 1
                continue
            events.append(event)
            sources.append((raw, record.type))
        pending = list(range(len(events)))
        delay, deadline = 0.5, time.monotonic() + self.settings.store_wait
        while pending:
            try:
                outcomes = _write(self.sink, [events[i] for i in pending])
            except SinkError as exc:
                if exc.permanent:
                    raise
                outcomes = None
                reason = str(exc)
            retry = []
            if outcomes is not None:
                for i, outcome in zip(pending, outcomes):
                    if outcome.status is Status.INDEXED:
                        counts["indexed"] += 1
                    elif outcome.status is Status.DUPLICATE:
                        counts["duplicate"] += 1
                    elif outcome.status is Status.REJECTED:
                        raw, rtype = sources[i]
                        self.dlq.add(raw, events[i].id, "index", outcome.reason, rtype)
                        counts["dead_lettered"] += 1
                    else:
                        retry.append(i)
                        reason = outcome.reason
            else:
                retry = pending
            pending = retry
            if pending:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"{len(pending)} records not stored after "
                                           f"{self.settings.store_wait:.0f}s: {reason}")
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        stats.record_out(self.client, self.keys, counts)
        self.broker.finish_batch(batch_key)
        counts["seconds"] = round(time.perf_counter() - started, 6)
        return counts
