"""What each part of a document costs the Elasticsearch node: the events and the message records
logpipe writes, bulk-loaded as they are and in forms that each leave one part out, alternating.

    .venv/bin/python bench/node_cost_bench.py [--lines 100000] [--rounds 5]

The documents are real: generated mail lines indexed once by ``index --burst -w 2`` into a node
started here (records on), then read back. Each round loads every form into a fresh index
(``create`` bulks of 5,000, as the writer sends them; ``refresh_interval`` 30 s, as during a
burst), then refreshes and flushes it; the node's CPU seconds from the first bulk to the flush
count. Medians over the rounds after the first (the node's JIT warms up there), and each form's
ratio to the documents as written. Each form names the query it would cost, which is why logpipe
writes the part anyway (issue 27: "without losing a query the search CLI or page offers"):

* events, ``no id copy``: without ``_logpipe_id`` (doc values: the paging tiebreak after
  ``@timestamp``, since ``_id`` cannot be sorted on);
* events, ``no message.keyword``: without the keyword copy of the line (``top message``);
* events, ``node's ids``: ``create`` without ``_id``, so the node skips its id lookup (a retried
  batch would then store its events twice: exactly-once needs the event's own id);
* events, ``times and offsets unindexed``: ``received_at`` and ``offset`` kept as doc values
  only (a range query on them then reads every document's value: slower, not lost);
* events, ``the peer's fields``: for scale, the document the C peer of bench/peer_rsyslog_es.py
  writes: the line's parsed fields, ``message``, ``type`` and ``@timestamp``, the node's ids;
  none of the shipper's metadata (``host``, ``path``, ``offset``, ``received_at``), ``tags``,
  ``relay_raw`` nor the id copy;
* records, ``no parts``: without the parts (the next line's merge reads them);
* records, ``no summary``: without ``message``, the words free text matches on a record;
* records, ``no recipients``: without the ``recipients`` objects (``recipients.status:``...).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bytecode import compile_tree  # noqa: E402
from bench.peer_rsyslog_es import proc_cpu  # noqa: E402

BULK = 5000


def bodies(docs: list[dict], ids: list[str] | None) -> list[bytes]:
    import orjson

    out = []
    for start in range(0, len(docs), BULK):
        lines = []
        for n, doc in enumerate(docs[start:start + BULK], start):
            action = {"create": {"_id": ids[n]}} if ids is not None else {"create": {}}
            lines += [orjson.dumps(action), orjson.dumps(doc)]
        out.append(b"\n".join(lines) + b"\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from elasticsearch import Elasticsearch, helpers

    from logpipe.services.elasticsearch import ElasticsearchNode
    from logpipe.services.loggen import generate, write_lines
    from logpipe.services.valkey import ValkeyServer
    from logpipe.store.elasticsearch.messages import MAPPING, PATTERN
    from logpipe.store.elasticsearch.template import ID_FIELD, index_template

    root = Path(__file__).resolve().parent.parent
    compile_tree(root)
    tmp = tempfile.mkdtemp(prefix="logpipe-node-cost-")
    log = os.path.join(tmp, "maillog")
    with open(log, "w") as fh:
        write_lines(generate("mail", args.lines, seed=7), fh)
    node = ElasticsearchNode(heap="512m")
    url = node.start().rstrip("/")
    es = Elasticsearch(url, request_timeout=300)
    try:
        with ValkeyServer() as broker:
            env = {**os.environ, "LOGPIPE_HOME": tempfile.mkdtemp(dir=tmp),
                   "LOGPIPE_REDIS_URL": broker.url}  # a password: never in argv
            cli = [sys.executable, "-m", "logpipe.common.cli"]
            quiet = dict(env=env, check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
            subprocess.run([*cli, "ship", "--type", "mail", "--once", log], **quiet)
            subprocess.run([*cli, "index", "--store", f"{url}/?index=bench-events-%Y",
                            "--burst", "--workers", "2"], **quiet)
        es.indices.refresh(index=f"{PATTERN},bench-events-*")
        records = [h["_source"] for h in helpers.scan(es, index=PATTERN, size=2000)]
        events = [h["_source"] for h in helpers.scan(es, index="bench-events-*", size=2000)]
        if not records or not events:
            raise SystemExit("the burst stored no events or no records")
        event_ids = [e[ID_FIELD] for e in events]
        record_ids = [r["key"] for r in records]
        event_mapping = index_template("x")["template"]["mappings"]
        no_keyword = copy.deepcopy(event_mapping)
        no_keyword["properties"]["message"].pop("fields")
        unindexed = copy.deepcopy(event_mapping)
        for name in ("received_at", "offset"):
            unindexed["properties"][name]["index"] = False
        metadata = ("host", "path", "offset", "received_at", "tags", "relay_raw", ID_FIELD)
        peer_shape = [{k: v for k, v in e.items() if k not in metadata} for e in events]

        def without(docs: list[dict], name: str) -> list[dict]:
            return [{k: v for k, v in d.items() if k != name} for d in docs]

        forms = {  # name: (mappings, bulk bodies, documents)
            "events as written": (event_mapping, bodies(events, event_ids), len(events)),
            "events, no id copy": (event_mapping, bodies(without(events, ID_FIELD), event_ids),
                                   len(events)),
            "events, no message.keyword": (no_keyword, bodies(events, event_ids), len(events)),
            "events, node's ids": (event_mapping, bodies(events, None), len(events)),
            "events, times and offsets unindexed": (unindexed, bodies(events, event_ids),
                                                    len(events)),
            "events, the peer's fields": (event_mapping, bodies(peer_shape, None), len(events)),
            "records as written": (MAPPING, bodies(records, record_ids), len(records)),
            "records, no parts": (MAPPING, bodies(without(records, "parts"), record_ids),
                                  len(records)),
            "records, no summary": (MAPPING, bodies(without(records, "message"), record_ids),
                                    len(records)),
            "records, no recipients": (MAPPING, bodies(without(records, "recipients"),
                                                       record_ids), len(records)),
        }
        print(f"lines {args.lines:,}: {len(events):,} events, {len(records):,} records; "
              f"{args.rounds} rounds, alternating", flush=True)
        cpu: dict[str, list[float]] = {name: [] for name in forms}
        for round_ in range(args.rounds):
            order = list(forms) if round_ % 2 == 0 else list(forms)[::-1]
            for number, name in enumerate(order):
                mappings, chunks, count = forms[name]
                index = f"bench-node-cost-{number}"
                es.indices.create(index=index, mappings=mappings, settings={
                    "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "30s",
                    "index.mapping.ignore_malformed": True})
                before, t0 = proc_cpu(node.pid), time.perf_counter()
                for body in chunks:
                    resp = es.bulk(index=index, operations=body)
                    if resp["errors"]:
                        raise SystemExit(f"{name}: the node refused documents: "
                                         f"{str(resp['items'][:2])[:400]}")
                es.indices.refresh(index=index)
                es.indices.flush(index=index)
                used = proc_cpu(node.pid) - before
                cpu[name].append(used / count * 1e6)
                print(f"round {round_ + 1} {name}: node {used:.2f} CPU s "
                      f"({used / count * 1e6:.1f} us/doc), {time.perf_counter() - t0:.2f} s",
                      flush=True)
                es.indices.delete(index=index)
        median = {name: statistics.median(v[1:] or v) for name, v in cpu.items()}
        per_line = {"events": len(events) / args.lines, "records": len(records) / args.lines}
        for name, us in median.items():
            kind = name.split(",")[0].split()[0]
            base = median[f"{kind} as written"]
            print(f"median {name}: {us:.1f} node CPU us per document ({us / base:.2f}x; "
                  f"{(base - us) * per_line[kind]:+.1f} us per line saved)")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
