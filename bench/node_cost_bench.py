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

Its loading (:func:`burst_documents`, :class:`Form`, :func:`load_rounds`) serves
record_mapping_bench.py too.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bytecode import compile_tree  # noqa: E402
from bench.peer_rsyslog_es import proc_cpu  # noqa: E402

BULK = 5000


@dataclass
class Form:
    """One way of writing the documents: the index's mappings, the bulk bodies, how many
    documents they hold, and index settings beyond the bench's own."""
    mappings: dict
    bodies: list[bytes]
    count: int
    settings: dict | None = None


def bulk_bodies(docs: list[dict], ids: list[str] | None) -> list[bytes]:
    """``create`` bulk bodies of :data:`BULK` documents; ``ids`` None: the node makes them."""
    import orjson

    out = []
    for start in range(0, len(docs), BULK):
        lines = []
        for n, doc in enumerate(docs[start:start + BULK], start):
            action = {"create": {"_id": ids[n]}} if ids is not None else {"create": {}}
            lines += [orjson.dumps(action), orjson.dumps(doc)]
        out.append(b"\n".join(lines) + b"\n")
    return out


@contextlib.contextmanager
def burst_documents(lines: int, prefix: str):
    """(client, node pid, records, events) of a ``lines``-line mail burst into a node started
    here (stopped on exit)."""
    from elasticsearch import Elasticsearch, helpers

    from logpipe.services.elasticsearch import ElasticsearchNode
    from logpipe.services.loggen import generate, write_lines
    from logpipe.services.valkey import ValkeyServer
    from logpipe.store.elasticsearch.messages import PATTERN

    compile_tree(Path(__file__).resolve().parent.parent)
    tmp = tempfile.mkdtemp(prefix=prefix)
    log = os.path.join(tmp, "maillog")
    with open(log, "w") as fh:
        write_lines(generate("mail", lines, seed=7), fh)
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
            raise SystemExit("the burst stored no events or no message records")
        yield es, node.pid, records, events
    finally:
        node.stop()


def load_rounds(es, pid: int, forms: dict[str, Form], rounds: int) -> dict[str, list[float]]:
    """{form: [node CPU us per document, one per round]}, each round printed as it ends."""
    cpu: dict[str, list[float]] = {name: [] for name in forms}
    for round_ in range(rounds):
        order = list(forms) if round_ % 2 == 0 else list(forms)[::-1]
        for number, name in enumerate(order):
            form = forms[name]
            index = f"bench-form-{number}"
            es.indices.create(index=index, mappings=form.mappings, settings={
                "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "30s",
                **(form.settings or {})})
            before, t0 = proc_cpu(pid), time.perf_counter()
            for body in form.bodies:
                resp = es.bulk(index=index, operations=body)
                if resp["errors"]:
                    raise SystemExit(f"{name}: the node refused documents: "
                                     f"{str(resp['items'][:2])[:400]}")
            es.indices.refresh(index=index)
            es.indices.flush(index=index)
            used = proc_cpu(pid) - before
            size = es.indices.stats(index=index)["indices"][index]["primaries"]["store"][
                "size_in_bytes"]
            cpu[name].append(used / form.count * 1e6)
            print(f"round {round_ + 1} {name}: node {used:.2f} CPU s "
                  f"({used / form.count * 1e6:.1f} us/doc), {time.perf_counter() - t0:.2f} s, "
                  f"store {size / 1e6:.1f} MB", flush=True)
            es.indices.delete(index=index)
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from logpipe.store.elasticsearch.messages import MAPPING
    from logpipe.store.elasticsearch.template import ID_FIELD, index_template

    with burst_documents(args.lines, "logpipe-node-cost-") as (es, pid, records, events):
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

        lenient = {"index.mapping.ignore_malformed": True}  # as the events' template has it

        def event_form(mappings: dict, docs: list[dict], ids: list[str] | None) -> Form:
            return Form(mappings, bulk_bodies(docs, ids), len(docs), lenient)

        def record_form(docs: list[dict]) -> Form:
            return Form(MAPPING, bulk_bodies(docs, record_ids), len(docs))

        forms = {
            "events as written": event_form(event_mapping, events, event_ids),
            "events, no id copy": event_form(event_mapping, without(events, ID_FIELD),
                                             event_ids),
            "events, no message.keyword": event_form(no_keyword, events, event_ids),
            "events, node's ids": event_form(event_mapping, events, None),
            "events, times and offsets unindexed": event_form(unindexed, events, event_ids),
            "events, the peer's fields": event_form(event_mapping, peer_shape, None),
            "records as written": record_form(records),
            "records, no parts": record_form(without(records, "parts")),
            "records, no summary": record_form(without(records, "message")),
            "records, no recipients": record_form(without(records, "recipients")),
        }
        print(f"lines {args.lines:,}: {len(events):,} events, {len(records):,} records; "
              f"{args.rounds} rounds, alternating", flush=True)
        cpu = load_rounds(es, pid, forms, args.rounds)
        median = {name: statistics.median(v[1:] or v) for name, v in cpu.items()}
        per_line = {"events": len(events) / args.lines, "records": len(records) / args.lines}
        for name, us in median.items():
            kind = name.split(",")[0].split()[0]
            base = median[f"{kind} as written"]
            print(f"median {name}: {us:.1f} node CPU us per document ({us / base:.2f}x; "
                  f"{(base - us) * per_line[kind]:+.1f} us per line saved)")


if __name__ == "__main__":
    main()
