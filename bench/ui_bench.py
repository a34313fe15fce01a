"""The web page's search page render time with a million events in the embedded store.

    .venv/bin/python bench/ui_bench.py [--events 1000000] [--runs 20] [--store sqlite:///x.db]

Loads ``--events`` parsed maillog events into a fresh embedded store (store_bench's events;
``--store`` reuses an existing one), serves ``logpipe ui``'s app with uvicorn on a free loopback
port and times full ``GET /`` page renders over HTTP (100 hits, the ~100-bar histogram, the
field list: everything the page shows before any click) for a few queries. Target: p50 under
300 ms. The reference in the same run is the store work alone (the same search page and
histogram calls, no HTTP or templates): the ratio shows what the page adds.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_MS = 300.0
TOKEN = "bench-token-0123456789abcdef"


def p50(fn, runs: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--store", help="an existing embedded store URL (skips the load)")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from logpipe.store.sqlite import SqliteStore
    from logpipe.search.web.app import create_app
    from logpipe.search.web.data import Data

    tmp = None
    url = args.store
    if not url:
        from store_bench import make_events
        tmp = tempfile.mkdtemp(prefix="logpipe-ui-bench-")
        url = "sqlite:///" + str(Path(tmp) / "events.db")
        print(f"generating {args.events:,} events ...", flush=True)
        events = make_events(args.events)
        sink = SqliteStore(url)
        sink.prepare()
        t0 = time.perf_counter()
        for i in range(0, len(events), 10000):
            sink.write(events[i:i + 10000])
        sink.refresh()
        sink.close()
        print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        del events
    try:
        data = Data(url)
        app = create_app(data, TOKEN)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        cases = [("all data", {}), ("term", {"q": "program:MailScanner"}),
                 ("full text", {"q": "deferred"}),
                 ("window 1h", {"q": "program:sendmail", "from": "2013-05-15T02:00:00Z",
                                "to": "2013-05-15T03:00:00Z"})]
        print(f"{'page':<12} {'p50 ms':>8} {'store only':>11} {'ratio':>6} {'/target':>8}")
        worst = 0.0
        for label, params in cases:
            def page():
                r = client.get("/", params=params)
                assert r.status_code == 200, r.text[:300]

            def store_only():
                window = data.window(params.get("from"), params.get("to"))
                page = data.search(params.get("q", ""), window)
                data.histogram(params.get("q", ""), window, page=page)

            page_ms = p50(page, args.runs)
            store_ms = p50(store_only, args.runs)
            worst = max(worst, page_ms)
            print(f"{label:<12} {page_ms:>8.1f} {store_ms:>11.1f} {page_ms / store_ms:>6.2f} "
                  f"{page_ms / TARGET_MS:>8.2f}", flush=True)
        server.should_exit = True
        thread.join(timeout=10)
        print(f"target: search page p50 < {TARGET_MS:.0f} ms: "
              f"{'met' if worst < TARGET_MS else 'NOT met'} (worst p50 {worst:.0f} ms)")
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
