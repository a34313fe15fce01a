"""End-to-end indexing speed against the parser alone, and where each record's time goes.

    python bench/index_bench.py [--lines 200000] [--store embedded|es|both] [--es URL]

Embedded store (issue 14):

1. Generates N maillog lines (loggen) and the records a shipper would push for them.
2. Reference: one ``logpipe grok parse --type mail`` process over the same lines (to /dev/null).
3. ``logpipe index --burst --workers 2`` into a fresh embedded store, the records already on the
   raw list, timed until it exits (everything stored and searchable). The reference and this run
   alternate ``--runs`` times; the ratio is of the medians (target >= 0.7, goal 1.0), and the
   CPU seconds per record of both (getrusage of the child processes) show the work apart from
   the machine's load.
4. Stage breakdown: CPU microseconds per record of each stage measured in this process on the
   same records (decode, grok, enrich, serialize + promoted columns, full-text body, SQLite rows
   insert, SQLite full-text insert, broker round trips of a batch) and RQ's share of each job.

Elasticsearch (``--store es``): as before, list -> searchable documents with the workers up and
idle, against the same records sent with the client's ``helpers.bulk`` (target >= 0.7; RQ
overhead < 5%).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logpipe.common.broker import Keys, connect  # noqa: E402
from logpipe.common.record import Record, encode, record_id  # noqa: E402
from logpipe.services.loggen import generate  # noqa: E402
from logpipe.services.valkey import ValkeyServer  # noqa: E402


def make_records(n: int, lines: list[str] | None = None) -> list[bytes]:
    now = time.time()
    lines = lines if lines is not None else list(generate("mail", n, seed=7))
    return [encode(Record(id=record_id("bench", "maillog", i), line=line, host="bench",
                          path="/var/log/maillog", offset=i, type="mail", received_at=now))
            for i, line in enumerate(lines)]


# -- embedded store --------------------------------------------------------------------------

def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(argv: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and the children it waited for)."""
    cpu0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(argv, stdout=stdout, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0, _child_cpu() - cpu0


def grok_parse(path: str) -> tuple[float, float]:
    return run_child([sys.executable, "-m", "logpipe.common.cli", "grok", "parse", "--type", "mail",
                      path])


def index_burst(redis_url: str, items: list[bytes], store_dir: str, workers: int,
                batch: int) -> tuple[float, float, int, tuple[float, int]]:
    """``logpipe index --burst`` over records already on the raw list, into a fresh store:
    (wall s, CPU s, events stored and found by a full-text search, RQ overhead)."""
    from logpipe.store.base import SearchRequest
    from logpipe.store.sqlite import SqliteStore

    client = connect(redis_url)
    client.flushall()
    for start in range(0, len(items), 10_000):
        client.rpush(Keys().raw, *items[start:start + 10_000])
    shutil.rmtree(store_dir, ignore_errors=True)
    url = "sqlite:///" + os.path.join(store_dir, "events.db")
    wall, cpu = run_child([sys.executable, "-m", "logpipe.common.cli", "index", "--burst", "--workers",
                           str(workers), "--batch-size", str(batch), "--redis", redis_url,
                           "--store", url])
    sink = SqliteStore(url)
    try:
        found = sink.count(SearchRequest(query="message:*"))
        # a burst ends fully searchable: nothing left for a search's catch-up
        assert sink.refresh() == 0, "index --burst left full text behind"
    finally:
        sink.close()
    return wall, cpu, found, rq_overhead(client)


class _TimedConnection:
    """A store connection that adds up the CPU time of its statements (SQLite's own work:
    the rows, the id and column indexes, FTS5), apart from the writer's Python around them."""

    def __init__(self, conn):
        self.conn, self.cpu = conn, 0.0

    def execute(self, *args):
        c0 = time.process_time()
        try:
            return self.conn.execute(*args)
        finally:
            self.cpu += time.process_time() - c0

    def __getattr__(self, name):
        return getattr(self.conn, name)


def stage_breakdown(items: list[bytes], redis_url: str, batch: int) -> dict[str, float]:
    """CPU microseconds per record of each stage, measured here on the same records."""
    import orjson

    from logpipe.common.broker import Broker
    from logpipe.common.record import decode
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline
    from logpipe.query.analyzer import fts_text
    from logpipe.store.sqlite import SqliteStore

    from logpipe.indexer.worker import tune_gc

    tune_gc()  # as in a worker: no collector while a batch runs, start-up objects frozen
    n = len(items)
    pipeline = Pipeline(load_pipeline(None))
    matcher = pipeline._matcher(pipeline.config.for_type("mail"))
    out: dict[str, float] = {}

    def timed(label, fn):
        c0 = time.process_time()
        result = fn()
        out[label] = (time.process_time() - c0) / n * 1e6
        return result

    records = timed("decode", lambda: [decode(raw, str(i)) for i, raw in enumerate(items)])
    for r in records[:2000]:  # compile and warm up
        pipeline.process(r)
    timed("grok", lambda: [matcher.match(r.line) for r in records])
    events = timed("parse + enrich", lambda: [pipeline.process(r) for r in records])
    out["enrich"] = out.pop("parse + enrich") - out["grok"]
    timed("serialize (JSON)", lambda: [orjson.dumps(e.doc) for e in events])
    timed("full-text body", lambda: [fts_text(e.doc["message"]) for e in events])
    tmp = tempfile.mkdtemp(prefix="logpipe-stages-")
    try:
        for mode in ("deferred", "inline"):
            sink = SqliteStore(f"sqlite:///{tmp}/{mode}.db?fts={mode}")
            sink.prepare()
            timed_conn = sink.db.conn = _TimedConnection(sink.db.conn)
            c0 = time.process_time()
            t0 = time.perf_counter()
            for start in range(0, n, batch):
                sink.write(events[start:start + batch])
            out[f"store write ({mode})"] = (time.process_time() - c0) / n * 1e6
            out[f"store write wall ({mode})"] = (time.perf_counter() - t0) / n * 1e6
            out[f"  of which SQLite statements ({mode})"] = timed_conn.cpu / n * 1e6
            if mode == "deferred":
                c0 = time.process_time()
                sink.refresh()
                out["full-text catch-up (deferred)"] = (time.process_time() - c0) / n * 1e6
            sink.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    client = connect(redis_url)
    client.flushall()
    broker = Broker(client, Keys())
    client.rpush(Keys().raw, *items[:batch])
    c0 = time.perf_counter()
    key, _ = broker.claim_batch(batch)
    client.lrange(key, 0, -1)
    broker.finish_batch(key)
    out["broker round trips (wall)"] = (time.perf_counter() - c0) / batch * 1e6
    return out


def embedded(args) -> None:
    lines = list(generate("mail", args.lines, seed=7))
    items = make_records(args.lines, lines)
    tmp = tempfile.mkdtemp(prefix="logpipe-index-bench-")
    try:
        path = os.path.join(tmp, "mail.log")
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        parse_runs, index_runs = [], []
        with ValkeyServer() as broker:
            stages = stage_breakdown(items[:min(len(items), 100_000)], broker.url,
                                     args.batch_size)
            for _ in range(args.runs):
                parse_runs.append(grok_parse(path))
                index_runs.append(index_burst(broker.url, items, os.path.join(tmp, "store"),
                                              args.workers, args.batch_size))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.lines
    parse_wall = statistics.median(w for w, _ in parse_runs)
    index_wall = statistics.median(r[0] for r in index_runs)
    parse_cpu = statistics.median(c for _, c in parse_runs)
    index_cpu = statistics.median(r[1] for r in index_runs)
    found = index_runs[-1][2]
    overhead, jobs = index_runs[-1][3]
    print(f"stage breakdown, CPU us per record (measured in this process, "
          f"{min(n, 100_000):,} records):")
    for label, us in stages.items():
        print(f"  {label:40s} {us:7.1f}")
    print(f"  {'RQ overhead per job':40s} {overhead * 100:6.1f} %  over {jobs} jobs")
    print(f"lines                      {n:,}   ({args.runs} runs each, alternating; medians)")
    print(f"grok parse --type mail     {n / parse_wall:10,.0f} lines/s  ({parse_wall:.1f} s wall, "
          f"{parse_cpu / n * 1e6:.1f} CPU us/line)")
    print(f"index --burst -w {args.workers}        {n / index_wall:10,.0f} lines/s  "
          f"({index_wall:.1f} s wall, {index_cpu / n * 1e6:.1f} CPU us/line in all processes; "
          f"{found:,} searchable)")
    cores = os.cpu_count() or 1
    print(f"ratio index / parse        {parse_wall / index_wall:10.2f}  (target >= 0.70, goal 1.0; "
          f"CPU per line {index_cpu / max(parse_cpu, 1e-9):.2f}x the parser's; "
          f"{cores} cores)")
    print(f"ceiling at this CPU per line: {min(args.workers, cores)} busy cores x the parser's "
          f"CPU / the pipeline's = {min(args.workers, cores) * parse_cpu / index_cpu:.2f}; "
          f"SQLite's statements alone take "
          f"{stages['  of which SQLite statements (inline)'] / (parse_cpu / n * 1e6):.2f}x "
          f"the parser's whole line")
    if found != n:
        print(f"WARNING: {found:,} of {n:,} lines searchable")


def end_to_end(redis_url: str, es_url: str, items: list[bytes], workers: int, batch: int):
    """A running indexer (workers up and idle, as in production), then the records arrive:
    timed from the first push until every record is a searchable document."""
    from elasticsearch import Elasticsearch
    from rq import Worker

    client = connect(redis_url)
    client.flushall()
    indexer = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "index", "--redis",
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

    from logpipe.common.record import decode
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline
    from logpipe.store.elasticsearch.template import index_template

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
    parser.add_argument("--store", choices=["embedded", "es", "both"], default="embedded")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (embedded)")
    parser.add_argument("--es", help="an Elasticsearch URL (else a node is started)")
    args = parser.parse_args()
    from bench.bytecode import compile_tree

    # the indexer's processes start from compiled modules, as from an installed wheel
    compile_tree(Path(__file__).resolve().parent.parent)
    if args.store in ("embedded", "both"):
        embedded(args)
    if args.store in ("es", "both"):
        elasticsearch(args)


def elasticsearch(args) -> None:
    node = None
    if not args.es:
        from logpipe.services.elasticsearch import ElasticsearchNode
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
