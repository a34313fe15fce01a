"""End-to-end indexing speed against the floor: the engine's own bulk rate.

    python bench/index_bench.py [--lines 200000] [--es URL]

1. Generates N maillog records (loggen).
2. Runs ``logpipe index --workers 2`` (workers up and idle first, as in production), pushes the
   records and times list -> searchable documents (until the list and batches are empty and the
   indices refreshed).
3. Floor: the same records, parsed beforehand (not timed), sent straight to the same node with
   the client's ``helpers.bulk`` into another index.
4. RQ overhead: per job, (job wall time in RQ - time inside the batch function) / job wall time.

Prints lines/s for both and their ratio (target >= 0.7) and the RQ overhead share (target < 5%).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.broker import Keys, connect  # noqa: E402
from common.record import Record, encode, record_id  # noqa: E402
from services.loggen import generate  # noqa: E402
from services.valkey import ValkeyServer  # noqa: E402


def make_records(n: int) -> list[bytes]:
    now = time.time()
    return [encode(Record(id=record_id("bench", "maillog", i), line=line, host="bench",
                          path="/var/log/maillog", offset=i, type="mail", received_at=now))
            for i, line in enumerate(generate("mail", n, seed=7))]


def end_to_end(redis_url: str, es_url: str, items: list[bytes], workers: int, batch: int):
    """A running indexer (workers up and idle, as in production), then the records arrive:
    timed from the first push until every record is a searchable document."""
    from elasticsearch import Elasticsearch
    from rq import Worker

    client = connect(redis_url)
    client.flushall()
    indexer = subprocess.Popen([sys.executable, "-m", "common.cli", "index", "--redis",
                                redis_url, "--store", es_url, "--workers", str(workers),
                                "--batch-size", str(batch)], stderr=subprocess.DEVNULL)
    try:
        while len(Worker.all(connection=client)) < workers:
            time.sleep(0.1)
        t0 = time.perf_counter()
        for start in range(0, len(items), 10_000):
            client.rpush(Keys().raw, *items[start:start + 10_000])
        while client.llen(Keys().raw) or client.zcard(Keys().batches):
            time.sleep(0.02)
        Elasticsearch(es_url).indices.refresh(index="logstash-*")
        elapsed = time.perf_counter() - t0
    finally:
        indexer.terminate()
        indexer.wait(60)
    return elapsed, rq_overhead(client)


def rq_overhead(client) -> tuple[float, int]:
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    queue = Queue("logpipe", connection=client)
    inner = outer = 0.0
    jobs = 0
    for job_id in FinishedJobRegistry(queue=queue).get_job_ids():
        job = queue.fetch_job(job_id)
        result = job.return_value() if job else None
        if not job or not result or not job.started_at or not job.ended_at:
            continue
        outer += (job.ended_at - job.started_at).total_seconds()
        inner += result.seconds
        jobs += 1
    return ((outer - inner) / outer if outer else 0.0), jobs


def floor(es_url: str, items: list[bytes], prefix: str = "floor", chunk: int = 2000) -> float:
    from elasticsearch import Elasticsearch, helpers

    from common.record import decode
    from indexer.pipeline import Pipeline
    from indexer.pipeline_config import load_pipeline
    from store.elasticsearch.template import index_template

    es = Elasticsearch(es_url, request_timeout=120)
    es.indices.put_index_template(name=prefix, **index_template(prefix + "-*"))
    pipeline = Pipeline(load_pipeline(None))
    events = [pipeline.process(decode(raw, f"f:{i}")) for i, raw in enumerate(items)]
    actions = ({"_op_type": "create", "_index": prefix + "-" + e.doc["@timestamp"][:10],
                "_id": e.id, "_source": e.doc} for e in events)
    t0 = time.perf_counter()
    helpers.bulk(es, actions, chunk_size=chunk, raise_on_error=False)
    es.indices.refresh(index=prefix + "-*")
    return time.perf_counter() - t0


def warm_up(es_url: str, items: list[bytes]) -> None:
    """A cold JVM indexes slower; warm it on the same kind of documents before measuring."""
    from elasticsearch import Elasticsearch

    floor(es_url, items, prefix="warmup")
    es = Elasticsearch(es_url)
    for name in es.indices.get(index="warmup-*"):
        es.indices.delete(index=name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--es", help="an Elasticsearch URL (else a node is started)")
    args = parser.parse_args()
    node = None
    if not args.es:
        from services.elasticsearch import ElasticsearchNode
        node = ElasticsearchNode(heap="1g")
        args.es = node.start()
    try:
        items = make_records(args.lines)
        warm_up(args.es, items[: max(20_000, args.lines // 5)])
        with ValkeyServer() as broker:
            e2e, (overhead, jobs) = end_to_end(broker.url, args.es, items, args.workers,
                                               args.batch_size)
        from elasticsearch import Elasticsearch
        es = Elasticsearch(args.es)
        es.indices.refresh(index="logstash-*")
        stored = es.count(index="logstash-*")["count"]
        base = floor(args.es, items, chunk=args.batch_size)
        print(f"lines                 {args.lines}")
        print(f"documents stored      {stored}")
        print(f"end-to-end            {args.lines / e2e:10.0f} lines/s  ({e2e:.1f} s, "
              f"{args.workers} workers already running, until searchable)")
        print(f"floor (helpers.bulk)  {args.lines / base:10.0f} docs/s   ({base:.1f} s)")
        print(f"ratio                 {base / e2e:10.2f}  (target >= 0.70)")
        print(f"RQ overhead per job   {overhead * 100:9.2f} %  over {jobs} jobs (target < 5%)")
    finally:
        if node:
            node.stop()


if __name__ == "__main__":
    main()
