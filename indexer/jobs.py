"""The RQ job: process one batch key from decode to store, then forget the batch.

A batch key is deleted only after the sink confirmed every record in it (indexed, already present,
or dead-lettered). If the worker dies half-way, the key is still there and the dispatcher's janitor
enqueues it again; the sink writes with the record id, so the repeat is a no-op for what was
already stored.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from dataclasses import dataclass

from logpipe.common.broker import Keys, connect
from logpipe.common.broker.ledgers import PendingBatches
from logpipe.common.errors import LogpipeError, StoreError, StoreUnreachable
from logpipe.common.record import decode
from logpipe.common.wire import is_packed, unpack
from logpipe.common.loop import SYSTEM_CLOCK, Clock
from logpipe.common.retry import store_write_policy
from logpipe.indexer import ledger, stats
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.limits import bound_event, bound_line, check_item
from logpipe.indexer.results import FAILURE_META, BatchResult, FailureKind
from logpipe.indexer.store_write import write_isolated
from logpipe.store.base import OutcomeMismatch, Status, Store

log = logging.getLogger("logpipe.indexer")


class StoreUnavailable(StoreUnreachable):
    """The store kept refusing or failing for longer than the job waits; the batch is retried
    (transient: the janitor retries it without spending its attempts)."""


@dataclass(frozen=True)
class JobSettings:
    """What every job needs to know; passed as a plain dict so RQ can serialise it."""

    redis_url: str
    store_url: str
    config_path: str | None = None
    prefix: str = "logpipe"
    raw: str = "logpipe:raw"
    store_wait: float = 30.0   # how long one job waits for a store that is down
    # keep the mail message records (indexer/messages.py); LOGPIPE_MESSAGES=0 where the
    # indexer starts turns them off (bench/messages_bench.py measures their cost so)
    messages: bool = dataclasses.field(
        default_factory=lambda: os.environ.get("LOGPIPE_MESSAGES", "1") != "0")

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.prefix, raw=self.raw)


# Per-process caches: a worker runs many jobs with the same settings.
@functools.lru_cache(maxsize=None)
def _store(url: str) -> Store:
    from logpipe.store import open_store
    return open_store(url)


@functools.lru_cache(maxsize=None)
def _pipeline(config_path: str | None):
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline
    return Pipeline(load_pipeline(config_path))


@functools.lru_cache(maxsize=None)
def _client(url: str):
    return connect(url)


def prepare(settings: JobSettings) -> None:
    """Import and compile what a job with these settings needs, in this process: the daemon
    does it once before it forks its workers (:class:`indexer.daemon.WorkerPool`), which then
    start with it (RQ's worker, the message records, the pipeline with every type's patterns
    compiled) instead of each paying for it again. No connection is opened here: a forked
    worker opens its own."""
    import rq.worker  # noqa: F401 -- the worker's RQ, imported for the fork
    from logpipe.indexer import messages  # noqa: F401 -- imported by the first batch otherwise

    compiled_pipeline(settings.config_path)


def compiled_pipeline(config_path: str | None):
    """This process's pipeline for ``config_path`` (the one its jobs use), every type's
    patterns compiled: a broken pattern or a route to an unknown type raises here."""
    pipeline = _pipeline(config_path)
    pipeline.compile_all()
    return pipeline


def process_batch(batch_key: str, settings: dict) -> BatchResult:
    """RQ entry point. Returns what happened to the batch's records; on failure the job's meta
    says what kind of failure it was (:class:`FailureKind`) before RQ records the error."""
    s = JobSettings(**settings)
    if s.redis_url:
        client = _client(s.redis_url)
    else:  # enqueued without a URL (no secret in the job): the worker's own connection
        from rq import get_current_job
        job = get_current_job()
        if job is None:
            raise LogpipeError("a job without a broker URL runs only inside an RQ worker")
        client = job.connection
    try:
        return BatchProcessor(client, s).run(batch_key)
    except StoreError as exc:
        _mark_failure(FailureKind.of_error(exc))
        raise
    except OutcomeMismatch:
        log.error("%s: the store broke its contract; the batch is kept", batch_key)
        raise


def _mark_failure(kind: FailureKind) -> None:
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.meta[FAILURE_META] = kind.value
        job.save_meta()


class BatchProcessor:
    def __init__(self, client, settings: JobSettings, sink: Store | None = None, pipeline=None,
                 clock: Clock = SYSTEM_CLOCK):
        self.client = client
        self.clock = clock  # what the store-write retries wait on (tests inject a fake one)
        self.settings = settings
        self.keys = settings.keys
        self.pending = PendingBatches(client, self.keys)
        self.dlq = DeadLetterQueue(client, self.keys)
        self.sink: Store = sink or _store(settings.store_url)
        self.pipeline = pipeline or _pipeline(settings.config_path)

    def run(self, batch_key: str) -> BatchResult:
        started = time.perf_counter()
        items = self.pending.items(batch_key)
        result = BatchResult(records=len(items))
        if not items:
            # Already finished by another attempt; make sure it is not tracked any more.
            self.pending.finish(batch_key)
            return result
        batch_id = Keys.batch_id(batch_key)
        items = self._expand(items, batch_id, result)  # compressed items -> their records
        events, sources = [], []
        done = []  # decoded records the batch accounts for: the ledger's sequences
        limits = self.pipeline.config.bounds
        for position, raw in enumerate(items):
            # Every record is judged alone: whatever one raises dead-letters that one only.
            fallback_id = f"{batch_id}:{position}"
            record = None
            try:
                check_item(raw, limits)
                record = decode(raw, fallback_id)
                bound_line(record, limits)
            except Exception as exc:
                rid = fallback_id if record is None else _text_id(record.id, fallback_id)
                self.dlq.add(raw, rid, "decode", _reason(exc),
                             "" if record is None else str(record.type))
                result.dead_lettered += 1
                continue
            done.append(record)
            try:
                event = self.pipeline.process(record)
                if event is not None:
                    bound_event(event, limits, len(raw))
            except Exception as exc:  # a bug or a bad config must not lose the record
                self.dlq.add(raw, _text_id(record.id, fallback_id), "parse", _reason(exc),
                             str(record.type))
                result.dead_lettered += 1
                continue
            if event is None:  # dropped by a drop filter of its type: done with, not stored
                continue
            events.append(event)
            sources.append((raw, record.type))
        stored = self._store(events, sources, result)
        if self.settings.messages:
            self._keep_messages(stored)
        stats.record_out(self.client, self.keys, result.counts())
        # every record is accounted for (stored, present, dropped or dead-lettered): into the
        # ledger, then forget the batch (a crash between the two repeats it: the merge is idempotent)
        self.pending.finish(batch_key, also=lambda pipe: ledger.note(self.client, self.keys, done,
                                                                      target=pipe))
        result.seconds = round(time.perf_counter() - started, 6)
        return result

    def _keep_messages(self, stored: list) -> None:
        """The message records of the stored events, before the batch is forgotten: a worker
        that dies here leaves the batch to be repeated, and the merge ignores repeats."""
        from logpipe.indexer.messages import keep

        backoff = store_write_policy(self.settings.store_wait).start(self.clock.now)
        while True:
            try:
                keep(self.sink, stored)
                return
            except StoreError as exc:
                if not backoff.policy.retries(exc) or backoff.exhausted():
                    raise StoreUnavailable(f"message records not written after "
                                           f"{self.settings.store_wait:.0f}s: {exc}") from None
                backoff.wait(self.clock.sleep)

    def _expand(self, items: list, batch_id: str, result: BatchResult) -> list:
        """Each compressed item (``common/wire.py``) replaced by its records, in place and in order
        (so a batch processed again gives every record the same position); one that cannot be
        expanded is dead-lettered whole (stage decode, with the reason)."""
        if not any(map(is_packed, items)):
            return items
        out, bad = [], 0
        for position, raw in enumerate(items):
            if not is_packed(raw):
                out.append(raw)
                continue
            try:
                out.extend(unpack(raw))
            except Exception as exc:
                self.dlq.add(raw, f"{batch_id}:z{position}", "decode", _reason(exc), "")
                result.dead_lettered += 1
                bad += 1
        result.records += len(out) + bad - len(items)
        return out

    def _store(self, events, sources, result: BatchResult) -> list:
        """Write the events, each judged by its own outcome: rejected ones are dead-lettered at
        once, the rest stored in the same pass; only RETRY outcomes (the store pushing back or
        away) are written again, with backoff, for at most ``store_wait`` seconds."""
        pending = list(range(len(events)))
        stored: list = []
        backoff = store_write_policy(self.settings.store_wait).start(self.clock.now)
        reason = ""
        while pending:
            try:
                outcomes = write_isolated(self.sink, [events[i] for i in pending])
            except StoreError as exc:
                if not backoff.policy.retries(exc):
                    raise
                outcomes = None
                reason = str(exc)
            retry = []
            if outcomes is not None:
                for i, outcome in zip(pending, outcomes, strict=True):
                    if outcome.status is Status.RETRY:
                        retry.append(i)
                        reason = outcome.reason
                        continue
                    if outcome.status is Status.REJECTED:
                        raw, rtype = sources[i]
                        self.dlq.add(raw, events[i].id, "index", outcome.reason, rtype)
                    else:
                        stored.append(events[i])
                    result.count(outcome.status)
            else:
                retry = pending
            pending = retry
            if pending:
                if backoff.exhausted():
                    raise StoreUnavailable(f"{len(pending)} records not stored after "
                                           f"{self.settings.store_wait:.0f}s: {reason}")
                backoff.wait(self.clock.sleep)
        return stored


def _reason(exc: Exception) -> str:
    """A decode error's own message; anything else also says what kind of error it was."""
    if isinstance(exc, LogpipeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _text_id(value, fallback: str) -> str:
    return value if isinstance(value, str) and value else fallback
