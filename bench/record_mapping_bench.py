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
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.node_cost_bench import Form, bulk_bodies, burst_documents, load_rounds  # noqa: E402


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

    from logpipe.store.elasticsearch.messages import MAPPING
    from logpipe.store.elasticsearch.template import ID_FIELD, index_template

    with burst_documents(args.lines, "logpipe-record-mapping-") as (es, pid, records, events):
        if not isinstance(records[0]["parts"], str):
            raise SystemExit("records not written with their parts as text")
        as_object = [{**r, "parts": orjson.loads(r["parts"])} for r in records]
        keys = [r["key"] for r in records]
        earlier = earlier_mapping(MAPPING)
        forms = {
            "earlier": Form(earlier, bulk_bodies(as_object, keys), len(records)),
            "parts as text": Form(earlier, bulk_bodies(records, keys), len(records)),
            "now": Form(MAPPING, bulk_bodies(records, keys), len(records)),
            "events (for scale)": Form(index_template("x")["template"]["mappings"],
                                       bulk_bodies(events, [e[ID_FIELD] for e in events]),
                                       len(events), {"index.mapping.ignore_malformed": True}),
        }
        print(f"lines {args.lines:,}: {len(records):,} records, {len(events):,} events; "
              f"{args.rounds} rounds, alternating", flush=True)
        cpu = load_rounds(es, pid, forms, args.rounds)
        median = {name: statistics.median(v[1:] or v) for name, v in cpu.items()}
        for name, us in median.items():
            ratio = f", {us / median['earlier']:.2f}x earlier" \
                if name in ("parts as text", "now") else ""
            print(f"median {name}: {us:.1f} node CPU us per document{ratio}")
        per_line = len(records) / len(events)
        saved = (median["earlier"] - median["now"]) * per_line
        print(f"records per line {per_line:.3f}: the node saves {saved:.1f} CPU us per line "
              f"of records; events cost it {median['events (for scale)']:.1f} per line")


if __name__ == "__main__":
    main()
