"""The dispatcher: raw list -> batch keys -> RQ jobs, and the janitor that keeps that loss-free.

Claiming is one Lua function (see :mod:`common.broker.functions`): items leave the raw list and enter a
registered batch key atomically. The job only names the key. The janitor walks the registered
batches and re-enqueues those whose job is gone, failed, or was running on a worker that died
(kill -9 included), with exponential backoff; after ``max_attempts`` the batch's records go to the
dead-letter queue (stage ``index``) with the last error, and the batch is forgotten.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from dataclasses import asdict

from logpipe.common.broker import Keys
from logpipe.common.broker.ledgers import PendingBatches, RawList
from logpipe.common.errors import DecodeError
from logpipe.common.record import decode
from logpipe.common.retry import BATCH_RETRY, STORE_DOWN_RETRY
from logpipe.indexer import stats
from logpipe.indexer.jobs import JobSettings
from logpipe.indexer.results import FailureKind

log = logging.getLogger("logpipe.dispatch")

JOB_FUNC = "logpipe.indexer.jobs.process_batch"


def job_id_for(batch_key: str) -> str:
    return "batch-" + Keys.batch_id(batch_key)


class Dispatcher:
    def __init__(self, client, settings: JobSettings, batch_size: int = 2000,
                 max_queued_jobs: int = 8, max_attempts: int = 6, grace: float = 5.0,
                 job_timeout: int = 600, janitor_batch: int = 500):
        from rq import Queue

        self.client = client
        self.settings = settings
        self.keys = settings.keys
        self.pending = PendingBatches(client, self.keys)
        self.raw = RawList(client, self.keys)
        self.queue = Queue(self.keys.queue, connection=client)
        self.batch_size = batch_size
        self.max_queued_jobs = max_queued_jobs
        self.max_attempts = max_attempts
        self.retry_policy = dataclasses.replace(BATCH_RETRY, max_attempts=max_attempts)
        self.grace = grace
        self.job_timeout = job_timeout
        self.janitor_batch = janitor_batch
        self._hostname = socket.gethostname()
        self._depth_minute = -1

    # -- moving work -------------------------------------------------------------------------
    def enqueue(self, batch_key: str) -> None:
        # The job travels through the broker: it carries no broker URL (no password); the worker
        # uses its own connection.
        settings = {**asdict(self.settings), "redis_url": ""}
        self.queue.enqueue_call(JOB_FUNC, args=(batch_key, settings),
                                job_id=job_id_for(batch_key), timeout=self.job_timeout,
                                result_ttl=60, failure_ttl=24 * 3600,
                                description=f"index {batch_key}")

    def dispatch_once(self) -> int:
        """Claim batches while the queue has room. Returns how many records were claimed."""
        moved = 0
        minute = int(time.time()) // 60
        if minute != self._depth_minute:   # the health page's depth history, once a minute
            stats.sample_depth(self.client, self.keys)
            self._depth_minute = minute
        # While batches pile up (the store is down and jobs keep failing), records stay on the
        # raw list, where the shippers' high-water mark sees them and pauses reading.
        if self.pending.count() >= 2 * self.max_queued_jobs:
            return 0
        while self.queue.count < self.max_queued_jobs:
            claimed = self.pending.claim(self.batch_size)
            if claimed is None:
                break
            key, n = claimed
            self.enqueue(key)
            stats.record_in(self.client, self.keys, n)
            moved += n
        return moved

    # -- keeping it loss-free ----------------------------------------------------------------
    def janitor(self) -> dict:
        """Re-enqueue orphaned batches; dead-letter those that failed too often."""
        from rq.job import Job, JobStatus
        from rq.exceptions import NoSuchJobError

        result = {"requeued": 0, "dead_lettered_batches": 0}
        now = time.time()
        # The oldest batches past the grace period, a bounded number per pass: during a long
        # store outage thousands may wait, and each look costs a job fetch.
        for batch_key, claimed_at in self.pending.claimed_before(now - self.grace,
                                                                 self.janitor_batch):
            try:
                job = Job.fetch(job_id_for(batch_key), connection=self.client)
                status = job.get_status(refresh=False)
            except NoSuchJobError:
                job, status = None, None
            if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                if job is None or self._in_queue(job.id) or now - claimed_at < 120:
                    continue  # waiting for a worker (or just popped by one)
            elif status == JobStatus.STARTED and self._worker_alive(job):
                continue
            if not self.pending.is_due(batch_key, now):
                continue
            error = _last_error(job) if job else "job missing (dispatcher or worker died)"
            # Waiting for a store that is down is not the batch's fault: retry it for as long as
            # the outage lasts without using up its attempts.
            store_down = job is not None and \
                FailureKind.of_job(job) is FailureKind.STORE_UNAVAILABLE
            attempts = self.pending.attempts(batch_key) + (0 if store_down else 1)
            if self.retry_policy.gives_up(attempts, 0.0):
                self.dead_letter_batch(batch_key, f"gave up after {self.max_attempts} attempts: "
                                                  f"{error}")
                result["dead_lettered_batches"] += 1
                continue
            if not store_down:
                log.warning("retrying batch=%s attempt=%d reason=%s", batch_key, attempts, error)
            if job is not None:
                job.delete()
            wait = STORE_DOWN_RETRY.delay(1) if store_down else self.retry_policy.delay(attempts)
            # attempts and due time together, then the job: a crash before the enqueue leaves
            # the batch registered and its job missing, which the next pass retries when due
            self.pending.schedule_retry(batch_key, attempts, now + wait)
            self.enqueue(batch_key)
            result["requeued"] += 1
        return result

    def _in_queue(self, job_id: str) -> bool:
        return self.client.lpos(self.queue.key, job_id) is not None

    def _worker_alive(self, job) -> bool:
        from rq import Worker

        if not job.worker_name:
            return True  # just started; the worker will write its name
        worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name,
                                    connection=self.client)
        if worker is None:
            return False
        if worker.hostname == self._hostname and worker.pid:
            try:
                os.kill(worker.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def dead_letter_batch(self, batch_key: str, reason: str) -> int:
        """Every record of the batch into the dead-letter queue (stage index) and the batch
        forgotten, in one step on the broker."""
        batch_id = Keys.batch_id(batch_key)

        def identify(raw: bytes, position: int) -> tuple[str, str]:
            try:
                record = decode(raw, f"{batch_id}:{position}")
                return str(record.id), str(record.type)
            except DecodeError:
                return f"{batch_id}:{position}", ""

        n = self.pending.dead_letter(batch_key, reason, time.time(), identify)
        log.error("dead-lettered batch=%s records=%d reason=%s", batch_key, n, reason)
        return n

    def idle(self) -> bool:
        """Nothing waiting anywhere: raw list empty and no batch in flight."""
        return self.raw.length() == 0 and self.pending.count() == 0


def _last_error(job) -> str:
    try:
        result = job.latest_result()
        text = (result.exc_string or "") if result else ""
    except Exception:
        text = ""
    text = text or (job.exc_info or "")
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else f"job {job.get_status(refresh=False)}"
