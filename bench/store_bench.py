"""Embedded store (SQLite) ingest and search speed, next to Elasticsearch.

    .venv/bin/python bench/store_bench.py [--events 1000000] [--es URL | --with-es] [--runs 20]

Generates a maillog (``services.loggen.generate('mail', n)``, or a built-in synthesiser when that
module is missing), parses a few fields with one regex (the point is the store, not grok), then:

* writes the events to a fresh SQLite store in batches (``--batch``), printing docs/s
  (target: at least 50,000/s), then times the catch-up of the full-text index (``refresh()``:
  the store indexes message text behind the writes) and prints load + catch-up docs/s too;
* runs a term, a phrase, a range, a wildcard query and a histogram ``--runs`` times each and
  prints p50/p95 latency in ms (target: p50 under 100 ms; the ``/target`` column is p50 / 100 ms),
  with the hit counts; two words and a non-indexed JSON field are shown too, without a target;
* with ``--es URL`` (or ``--with-es``: start a node with services.elasticsearch), loads
  the same events into Elasticsearch (``--es-events`` of them, default all) and runs the same
  queries there, printing the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.base import Event, SearchRequest, Status  # noqa: E402
from store.sqlite import SqliteSink  # noqa: E402

_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_LINE = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: "
                   r"(?:([0-9A-Za-z]{14}): )?(.*)$")
_KV = re.compile(r"(?:^|, )(from|to|relay|stat|size|nrcpts|delay|msgid)=([^,]*)")


def lines(n: int, seed: int = 1):
    try:
        from services.loggen import generate
    except ImportError:
        return _synth(n, seed)
    return generate("mail", n, seed=seed)


def _synth(n: int, seed: int):  # only when services/loggen.py is absent
    rng = random.Random(seed)
    t = datetime(2013, 5, 15, 2, tzinfo=timezone.utc).timestamp()
    for i in range(n):
        t += rng.random() * 2
        stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%b %d %H:%M:%S")
        qid = f"r4F{i:05d}{rng.randrange(10**6):06d}"
        if i % 3 == 0:
            yield (f"{stamp} mail{i % 3} sendmail[{rng.randrange(99999)}]: {qid}: from=<u{i % 97}"
                   f"@example.com>, size={rng.randrange(600, 400000)}, class=0, nrcpts=1")
        else:
            yield (f"{stamp} mail{i % 3} sendmail[{rng.randrange(99999)}]: {qid}: to=<v{i % 89}"
                   f"@example.org>, delay=00:00:0{i % 10}, relay=mx{i % 5}.example.net. "
                   f"[10.0.0.{i % 250}], stat=Sent (ok)")


def parse(line: str, year: int = 2013) -> dict:
    m = _LINE.match(line)
    if not m:
        return {"message": line, "type": "mail"}
    mon, day, hh, mi, ss, host, program, pid, qid, rest = m.groups()
    doc = {"@timestamp": f"{year}-{_MONTHS[mon]:02d}-{int(day):02d}T{hh}:{mi}:{ss}.000Z",
           "message": line, "host": host, "type": "mail", "path": "/var/log/maillog",
           "program": program}
    if pid:
        doc["pid"] = int(pid)
    if qid:
        doc["qid"] = qid
        for key, value in _KV.findall(rest):
            doc[key] = int(value) if key in ("size", "nrcpts") and value.isdigit() else value
    return doc


def make_events(n: int) -> list[Event]:
    return [Event(f"bench-{i}", parse(line)) for i, line in enumerate(lines(n))]


def timed(fn, runs: int) -> tuple[float, float, object]:
    result = fn()  # warm-up (page cache, query plans)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95, result


def queries(events: list[Event]) -> list[tuple[str, str, str | None]]:
    """(label, query, histogram interval) chosen from the data so that each one hits."""
    qid = next(e.doc["qid"] for e in events[len(events) // 2:] if "qid" in e.doc)
    return [
        ("term", "program:MailScanner", None),
        ("term (qid)", f"qid:{qid}", None),
        ("phrase", '"User unknown"', None),
        ("range", "size:[100000 TO 200000]", None),
        ("wildcard", f"qid:{qid[:5]}*", None),
        ("words", "deferred refused", None),
        ("histogram", "program:sendmail", "1h"),
        ("histogram *", "*", "1d"),
        ("json field", "stat:Sent*", None),
    ]


# the labels issue 6 sets a latency target for (p50 under TARGET_MS); the others are shown only
TARGETED = ("term", "term (qid)", "phrase", "range", "wildcard", "histogram", "histogram *")
TARGET_MS = 100.0
TARGET_DOCS = 50_000


def run_queries(sink, qs, runs: int) -> dict[str, tuple[float, float, int]]:
    out = {}
    for label, query, interval in qs:
        request = SearchRequest(query=query, limit=20)
        if interval:
            p50, p95, res = timed(lambda: sink.histogram(request, interval), runs)
            hits = sum(n for _, n in res)
        else:
            p50, p95, res = timed(lambda: sink.search(request), runs)
            hits = res.total
        out[label] = (p50, p95, hits)
    return out


def ingest(sink, events: list[Event], batch: int) -> float:
    sink.prepare()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for start in range(0, len(events), batch):
        outcomes = sink.write(events[start:start + batch])
        bad = [o for o in outcomes if o.status is not Status.INDEXED]
        if bad:
            raise SystemExit(f"write failed: {bad[0].status.value} {bad[0].reason}")
    ingest.cpu = time.process_time() - c0
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events to load (1,000,000)")
    ap.add_argument("--batch", type=int, default=5000, help="events per write() call")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per query")
    ap.add_argument("--db", default=None, help="SQLite file (default: a temporary one)")
    ap.add_argument("--synchronous", default="normal", choices=["full", "normal"],
                    help="the store's default, normal: WAL commits survive a process crash "
                    "(full: also a power cut)")
    ap.add_argument("--es", default=None, help="Elasticsearch URL to compare with")
    ap.add_argument("--with-es", action="store_true", help="start a node for the comparison")
    ap.add_argument("--es-events", type=int, default=None,
                    help="events to load into Elasticsearch (default: all)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    events = make_events(args.events)
    gen_s = time.perf_counter() - t0
    print(f"generated and parsed {len(events):,} events in {gen_s:.1f}s")

    tmp = tempfile.mkdtemp(prefix="logpipe-bench-")
    db = args.db or os.path.join(tmp, "events.db")
    sink = SqliteSink("sqlite:///" + os.path.abspath(db), synchronous=args.synchronous)
    node = None
    try:
        secs = ingest(sink, events, args.batch)
        rate = len(events) / secs
        size_mb = sum(os.path.getsize(p) for p in Path(db).parent.glob(Path(db).name + "*")) / 1e6
        print(f"embedded ingest: {len(events):,} events in {secs:.1f}s = {rate:,.0f} docs/s "
              f"(target >= 50,000; batch {args.batch}, synchronous={args.synchronous}); "
              f"{len(events) / ingest.cpu:,.0f} docs per CPU-second of this process; "
              f"store {size_mb:,.0f} MB")
        # the full text is indexed behind the writes (near-real-time, like Elasticsearch's
        # refresh): the first full-text search would pay for the backlog; time it on its own
        t0 = time.perf_counter()
        caught = sink.refresh()
        fts_s = time.perf_counter() - t0
        print(f"full-text catch-up after the load: {caught:,} rows in {fts_s:.1f}s (the rest was "
              f"indexed during the load); load + catch-up = "
              f"{len(events) / (secs + fts_s):,.0f} docs/s")
        qs = queries(events)
        lite = run_queries(sink, qs, args.runs)

        es = None
        url = args.es
        if args.with_es and not url:
            from services.elasticsearch import ElasticsearchNode

            node = ElasticsearchNode(data_dir=Path(tmp) / "es", heap="1g")
            url = node.start()
        if url:
            from store.elasticsearch import ElasticsearchSink

            es_sink = ElasticsearchSink(url, index="logpipe-bench-%Y.%m.%d")
            subset = events[:args.es_events] if args.es_events else events
            secs = ingest(es_sink, subset, args.batch)
            es_sink.refresh()
            print(f"elasticsearch ingest: {len(subset):,} events in {secs:.1f}s = "
                  f"{len(subset) / secs:,.0f} docs/s")
            es = run_queries(es_sink, qs, args.runs)

        print()
        head = f"{'query':<12} {'embedded p50':>12} {'p95':>8} {'hits':>9} {'/target':>7}"
        if es:
            head += f" {'ES p50':>9} {'p95':>8} {'hits':>9} {'ES/emb':>7}"
        print(head)
        for label, query, interval in qs:
            p50, p95, hits = lite[label]
            ratio = f"{p50 / TARGET_MS:.2f}x" if label in TARGETED else "-"
            row = f"{label:<12} {p50:>10.1f}ms {p95:>6.1f}ms {hits:>9,} {ratio:>7}"
            if es:
                e50, e95, ehits = es[label]
                row += f" {e50:>7.1f}ms {e95:>6.1f}ms {ehits:>9,} {e50 / max(p50, 1e-6):>6.2f}x"
            print(row + f"   {query}{' / ' + interval if interval else ''}")
        worst_label = max(TARGETED, key=lambda k: lite[k][0])
        worst = lite[worst_label][0]
        untargeted = [k for k in lite if k not in TARGETED]
        print(f"\nembedded: ingest {rate:,.0f} docs/s ({rate / TARGET_DOCS:.2f}x the "
              f"{TARGET_DOCS:,} target: {'met' if rate >= TARGET_DOCS else 'NOT met'}); "
              f"slowest targeted p50 {worst:.1f} ms ({worst_label}; {worst / TARGET_MS:.2f}x the "
              f"{TARGET_MS:.0f} ms target: {'met' if worst < TARGET_MS else 'NOT met'})"
              + ("; not targeted: " + ", ".join(f"{k} {lite[k][0]:.1f} ms" for k in untargeted)
                 if untargeted else ""))
        if es and args.es_events and args.es_events < len(events):
            print(f"note: Elasticsearch holds {args.es_events:,} events, the embedded store "
                  f"{len(events):,}; the hit counts differ accordingly")
    finally:
        sink.close()
        if node is not None:
            node.stop()
        if not args.db:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
