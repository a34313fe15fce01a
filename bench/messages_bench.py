"""What message records cost and how fast they answer (issue 23).

    python bench/messages_bench.py [--lines 100000,200000] [--runs 3] [--messages 1000000]

1. Indexing: ``logpipe index --burst --workers 2`` into a fresh embedded store over the same
   generated maillog, with the records kept and without (``LOGPIPE_MESSAGES=0``), alternated
   ``--runs`` times in this run; prints the median throughputs and their ratio (target: with /
   without >= 0.70, i.e. at most 30% slower).
2. Searching: an embedded store holding ``--messages`` records (built through the store's own
   ``write_messages``), then message searches as ``logpipe messages`` runs them (the first page
   of 20, newest first) repeated; prints each query's p50 against the 100 ms target and against
   a reference measured in the same run: reading the 20 newest records with no condition.
   ``recipients.to:dave@example.org`` is a common address (1 record in 40), ``postmaster@`` a
   rare one (20 in 1M): the embedded store plans each by how many records share the address.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.index_bench import make_records  # noqa: E402
from logpipe.common.broker import Keys, connect  # noqa: E402
from logpipe.services.valkey import ValkeyServer  # noqa: E402

QUERIES = ["status:bounced AND from:*@example.com",
           "status:bounced AND from:*@example.com AND delay_s:>3600",
           "recipients.to:dave@example.org",
           "recipients.to:postmaster@example.org",
           "status:deferred",
           "domain:example.net AND NOT status:delivered"]


def index_once(redis_url: str, items: list[bytes], keep: bool, workdir: Path, n: int) -> float:
    client = connect(redis_url)
    client.flushall()
    client.rpush(Keys().raw, *items)
    store = workdir / f"events-{keep}-{time.monotonic_ns()}.db"
    env = {**os.environ, "LOGPIPE_MESSAGES": "1" if keep else "0"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "logpipe.common.cli", "index", "--redis", redis_url,
                    "--store", f"sqlite:///{store}", "--workers", "2", "--burst"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    return n / seconds


def bench_indexing(sizes: list[int], runs: int) -> None:
    """Each size with and without records, the arms and sizes interleaved run after run so a
    change of the machine's load falls on both."""
    items = {n: make_records(n) for n in sizes}
    with_: dict[int, list[float]] = {n: [] for n in sizes}
    without: dict[int, list[float]] = {n: [] for n in sizes}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        server = ValkeyServer(data_dir=Path(tmp) / "valkey")
        server.start()
        try:
            for run in range(runs):
                for n in sizes:
                    arms = (False, True) if run % 2 == 0 else (True, False)
                    for keep in arms:
                        rate = index_once(server.url, items[n], keep, Path(tmp), n)
                        (with_ if keep else without)[n].append(rate)
                        loads.append(os.getloadavg()[0])
        finally:
            server.cleanup()
    print(f"load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f} "
          f"on {os.cpu_count()} cores")
    for n in sizes:
        a, b = statistics.median(with_[n]), statistics.median(without[n])
        print(f"indexing {n:,} mail lines, 2 workers, median of {runs}:")
        print(f"  without message records  {b:10,.0f} lines/s")
        print(f"  with message records     {a:10,.0f} lines/s")
        print(f"  ratio with/without       {a / b:10.2f}  (target >= 0.70)  "
              f"runs: {' '.join(f'{x / y:.2f}' for x, y in zip(with_[n], without[n]))}")


def synthetic(i: int, rng: random.Random) -> tuple[str, tuple[str, str, dict]]:
    users = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
    domains = ("example.com", "example.org", "example.net", "gmail.com", "yahoo.co.uk")
    qid = f"Q{i:011d}"
    host = f"mx{i % 4}"
    t = 1_764_000_000_000 + i * 700
    roll = rng.random()
    status = "sent" if roll < 0.85 else "deferred" if roll < 0.93 else "bounced"
    to = f"{rng.choice(users)}@{rng.choice(domains)}"
    if i % 50_000 == 0:  # a rare address: 20 records in 1M (the random draws stay the same)
        to = "postmaster@example.org"
    parts = {f"{qid}-1": {"t": t, "o": 1, "from": f"<{rng.choice(users)}@{rng.choice(domains)}>",
                          "size": rng.randint(500, 500_000), "msgid": f"{qid}@bench"},
             f"{qid}-2": {"t": t + 1000, "o": 2, "rcpt": [{
                 "to": f"<{to}>", "status": status, "dsn": {"sent": "2.0.0", "deferred": "4.4.1",
                                                            "bounced": "5.1.1"}[status],
                 "relay": "mx.example.org", "delay": rng.random() * 8000,
                 "reason": "User unknown" if status == "bounced" else None}]}}
    return f"{host}/{qid}", (host, qid, parts)


def bench_search(messages: int, repeats: int = 25) -> None:
    from logpipe.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/messages.db"
        sink = SqliteStore(url)
        sink.prepare()
        rng = random.Random(23)
        started = time.perf_counter()
        batch: dict = {}
        for i in range(messages):
            key, value = synthetic(i, rng)
            batch[key] = value
            if len(batch) == 5000:
                sink.write_messages(batch)
                batch = {}
        if batch:
            sink.write_messages(batch)
        built = time.perf_counter() - started
        sink.close()
        reader = SqliteStore(url)

        def p50(query: str) -> float:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(reader.stream_messages(query, limit=20))
                times.append(time.perf_counter() - t0)
            return statistics.median(times) * 1000

        reference = p50("*")
        print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"message search on the embedded store, {messages:,} records "
              f"(built in {built:.0f}s), first page of 20, p50 of {repeats}:")
        print(f"  reference (no condition)  {reference:8.2f} ms")
        for query in QUERIES:
            ms = p50(query)
            print(f"  {query:<58} {ms:8.2f} ms  x{ms / reference:6.1f} of the reference  "
                  f"({'under' if ms < 100 else 'OVER'} the 100 ms target)")
        reader.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", default="100000,200000",
                    help="comma-separated sizes, run interleaved")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    args = ap.parse_args()
    if not args.skip_index:
        bench_indexing([int(x) for x in args.lines.split(",")], args.runs)
    if not args.skip_search:
        bench_search(args.messages)


if __name__ == "__main__":
    main()
