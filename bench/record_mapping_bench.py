"""What a message record costs the Elasticsearch node: the same records bulk-loaded under the
record mapping and document form logpipe writes now, and under the earlier ones, alternating.

    .venv/bin/python bench/record_mapping_bench.py [--lines 100000] [--rounds 5]

The records are real: generated mail lines indexed once by ``index --burst -w 2`` into a node
started here, then read back. Each round loads them into a fresh index per form (``create``
bulks of 5,000, as the writer sends them; ``refresh_interval`` 30 s, as during a burst), then
refreshes and flushes it; the node's CPU seconds from the first bulk to the flush count. Forms:

* ``earlier``: every keyword with doc values, ``message`` with norms, the parts as an object in
  a disabled field (the mapping and documents before this bench);
* ``parts as text``: the earlier mapping, the parts written as one JSON text;
* ``now``: the module's mapping (``store/elasticsearch/messages.py: MAPPING``), parts as text.

Medians over the rounds after the first (the node's JIT warms up there), per record and as
ratios to ``earlier``; the events' cost per document under the events' template is printed
beside them for scale.
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
_KW = {"type": "keyword", "ignore_above": 1024}


def earlier_mapping(now: dict) -> dict:
    """The record mapping before doc values were dropped from fields only searched and norms
    from ``message``: every keyword, number and date with doc values (their defaults)."""
    mapping = copy.deepcopy(now)

    def restore(properties: dict) -> None:
        for name, field in properties.items():
            if "properties" in field:
                restore(field["properties"])
                continue
            field.pop("doc_values", None)
            if name == "message":
                field.pop("norms", None)

    restore(mapping["properties"])
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import orjson
    from elasticsearch import Elasticsearch, helpers

    from logpipe.services.elasticsearch import ElasticsearchNode
    from logpipe.services.loggen import generate, write_lines
    from logpipe.services.valkey import ValkeyServer
    from logpipe.store.elasticsearch.messages import MAPPING, PATTERN
    from logpipe.store.elasticsearch.template import index_template

    root = Path(__file__).resolve().parent.parent
    compile_tree(root)
    tmp = tempfile.mkdtemp(prefix="logpipe-record-mapping-")
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
            subprocess.run([*cli, "index", "--store",
                            f"{url}/?index=bench-events-%Y", "--burst", "--workers", "2"],
                           **quiet)
        es.indices.refresh(index=f"{PATTERN},bench-events-*")
        records = [h["_source"] for h in helpers.scan(es, index=PATTERN, size=2000)]
        events = [h["_source"] for h in helpers.scan(es, index="bench-events-*", size=2000)]
        if not records or not isinstance(records[0]["parts"], str):
            raise SystemExit("no records, or records not written with their parts as text")

        def bodies(docs: list[dict], ids: list[str]) -> list[bytes]:
            out = []
            for start in range(0, len(docs), BULK):
                lines = []
                for doc, doc_id in zip(docs[start:start + BULK], ids[start:start + BULK]):
                    lines += [orjson.dumps({"create": {"_id": doc_id}}), orjson.dumps(doc)]
                out.append(b"\n".join(lines) + b"\n")
            return out

        as_object = [{**r, "parts": orjson.loads(r["parts"])} for r in records]
        keys = [r["key"] for r in records]
        earlier = earlier_mapping(MAPPING)
        events_template = index_template("x")["template"]
        forms = {
            "earlier": (earlier, bodies(as_object, keys), len(records), {}),
            "parts as text": (earlier, bodies(records, keys), len(records), {}),
            "now": (MAPPING, bodies(records, keys), len(records), {}),
            "events (for scale)": (events_template["mappings"],
                                   bodies(events, [e["_logpipe_id"] for e in events]),
                                   len(events), {"index.mapping.ignore_malformed": True}),
        }
        print(f"lines {args.lines:,}: {len(records):,} records, {len(events):,} events; "
              f"{args.rounds} rounds, alternating", flush=True)
        cpu: dict[str, list[float]] = {name: [] for name in forms}
        for round_ in range(args.rounds):
            order = list(forms) if round_ % 2 == 0 else list(forms)[::-1]
            for name in order:
                mappings, chunks, count, settings = forms[name]
                index = "bench-form-" + name.split()[0]
                es.indices.create(index=index, mappings=mappings, settings={
                    "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "30s",
                    **settings})
                before, t0 = proc_cpu(node.pid), time.perf_counter()
                for body in chunks:
                    resp = es.bulk(index=index, operations=body)
                    if resp["errors"]:
                        raise SystemExit(f"{name}: the node refused documents: "
                                         f"{str(resp['items'][:2])[:400]}")
                es.indices.refresh(index=index)
                es.indices.flush(index=index)
                used = proc_cpu(node.pid) - before
                size = es.indices.stats(index=index)["indices"][index]["primaries"]["store"][
                    "size_in_bytes"]
                cpu[name].append(used / count * 1e6)
                print(f"round {round_ + 1} {name}: node {used:.2f} CPU s "
                      f"({used / count * 1e6:.1f} us/doc), {time.perf_counter() - t0:.2f} s, "
                      f"store {size / 1e6:.1f} MB", flush=True)
                es.indices.delete(index=index)
        median = {name: statistics.median(v[1:] or v) for name, v in cpu.items()}
        for name, us in median.items():
            ratio = f", {us / median['earlier']:.2f}x earlier" \
                if name in ("parts as text", "now") else ""
            print(f"median {name}: {us:.1f} node CPU us per document{ratio}")
        per_line = len(records) / len(events)
        saved = (median["earlier"] - median["now"]) * per_line
        print(f"records per line {per_line:.3f}: the node saves {saved:.1f} CPU us per line "
              f"of records; events cost it {median['events (for scale)']:.1f} per line")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
