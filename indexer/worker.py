"""One RQ worker process: ``python -m indexer.worker REDIS_URL QUEUE``.

A :class:`rq.SimpleWorker` runs jobs in its own process instead of forking a work horse per job:
a batch takes tens of milliseconds, a fork would be a large share of that, and the sink's
connection and the compiled patterns stay warm across jobs. A worker killed mid-batch loses
nothing: the batch key stays until the dispatcher's janitor enqueues it again.
"""

from __future__ import annotations

import logging
import sys

WORKER_TTL = 30  # seconds without a heartbeat before other hosts consider this worker dead


def run(redis_url: str, queue_name: str, burst: bool = False) -> None:
    from rq import Queue, SimpleWorker

    from common.broker import connect

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    connection = connect(redis_url)
    worker = SimpleWorker([Queue(queue_name, connection=connection)], connection=connection,
                          worker_ttl=WORKER_TTL, log_job_description=False,
                          job_monitoring_interval=10)
    worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], burst="--burst" in sys.argv[3:])
