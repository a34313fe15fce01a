"""``logpipe ui`` under a hostile load: /health and a term search, idle and while the store is
flooded with expensive queries (issue 21).

    .venv/bin/python bench/hostile_query_bench.py [--lines 20000] [--abandoned 50]
        [--abandon-after 1.0] [--query-timeout 10] [--store sqlite:///x.db]

Loads ``--lines`` generated mail lines (parsed by the pipeline) into a fresh embedded store
(``--store`` reuses one), starts ``logpipe ui`` in a process on a free loopback port, times
``/health`` and ``/api/search?q=program:sendmail`` while idle, then again while one client
runs the 363-character AND of 80 message wildcards and ``--abandoned`` clients each send
``*a* *e*`` (about a second of work on 20,000 lines) and hang up after ``--abandon-after``
seconds. Prints p50/p95/max of each, the ratio loaded/idle, and what the hostile query
answered. Target: p95 under 500 ms for both under the load. ``/health`` answers 503 without a
broker; it is timed all the same (it never touches the store).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 500.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--abandoned", type=int, default=50)
    ap.add_argument("--abandon-after", type=float, default=1.0)
    ap.add_argument("--query-timeout", type=float, default=10.0)
    ap.add_argument("--store", help="an existing embedded store URL (skips the load)")
    ap.add_argument("--redis", help="a broker URL, so /health has its figures")
    args = ap.parse_args()

    from logpipe.store.sqlite import SqliteStore
    from tests.support import hostile
    from tests.support.web import mail_events, start_ui, stop_ui

    tmp = None
    url = args.store
    if not url:
        tmp = tempfile.mkdtemp(prefix="logpipe-hostile-bench-")
        url = "sqlite:///" + str(Path(tmp) / "events.db")
        print(f"loading {args.lines:,} generated mail lines ...", flush=True)
        sink = SqliteStore(url)
        sink.prepare()
        sink.write(mail_events(args.lines))
        sink.refresh()
        sink.close()
    ui_args = ["--store", url, "--query-timeout", str(args.query_timeout)]
    if args.redis:
        ui_args += ["--redis", args.redis]
    proc, address = start_ui(*ui_args)
    try:
        figures = hostile.run(address, abandoned=args.abandoned,
                              abandon_after=args.abandon_after)
    finally:
        stop_ui(proc)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load: 1 hostile query + {args.abandoned} abandoned '{hostile.ABANDONED_QUERY}' "
          f"(each after {args.abandon_after:g} s), budget {args.query_timeout:g} s")
    print(hostile.report(figures))
    worst = max(hostile.pct(figures["load"][n], 95) for n in ("health", "term"))
    print(f"target: /health and term search p95 < {TARGET_MS:.0f} ms under load: "
          f"{'met' if worst < TARGET_MS else 'NOT met'} (worst p95 {worst:.0f} ms, "
          f"{worst / TARGET_MS:.2f} of the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
