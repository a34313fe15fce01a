"""Every benchmark in one run, on one machine, into one results file: the figures the README's
table quotes come from such a run (issue 14: "updated from one run, with the machine named").

    .venv/bin/python bench/run_all.py [--quick] [--only grok,ship,...] [--out bench/results/X.txt]

Prints the machine first (CPU model, cores, memory, kernel, Python, SQLite, Valkey, load
average), then each benchmark's own output as it runs, each with its wall time and the load
average around it (these machines are shared: every bench prints ratios against a reference
measured in the same run, and the load says how busy the machine was meanwhile). ``--quick``
runs each at a small size (a smoke run, not figures to quote).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# name -> (full arguments, quick arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "grok": (["bench/grok_bench.py"], ["bench/grok_bench.py", "--seconds", "0.3", "--rounds", "1",
                                       "--lines", "2000"]),
    "ship": (["bench/ship_bench.py"], ["bench/ship_bench.py", "--lines", "50000",
                                       "--files", "5", "--lines-per-file", "200"]),
    "wire": (["bench/wire_bench.py"], ["bench/wire_bench.py", "--lines", "20000", "--rounds", "1"]),
    "index": (["bench/index_bench.py", "--runs", "3"],
              ["bench/index_bench.py", "--runs", "1", "--lines", "10000"]),
    "index-es": (["bench/index_bench.py", "--store", "es"],
                 ["bench/index_bench.py", "--store", "es", "--lines", "5000"]),
    "messages": (["bench/messages_bench.py"],
                 ["bench/messages_bench.py", "--lines", "10000", "--runs", "1",
                  "--messages", "20000"]),
    "peer-rsyslog": (["bench/peer_rsyslog_es.py"],
                     ["bench/peer_rsyslog_es.py", "--lines", "5000", "--runs", "1"]),
    "record-mapping": (["bench/record_mapping_bench.py"],
                       ["bench/record_mapping_bench.py", "--lines", "5000", "--rounds", "2"]),
    "node-cost": (["bench/node_cost_bench.py"],
                  ["bench/node_cost_bench.py", "--lines", "5000", "--rounds", "2"]),
    "store": (["bench/store_bench.py", "--sizes", "1000000,10000000", "--with-es",
               "--es-events", "1000000"],
              ["bench/store_bench.py", "--events", "20000", "--runs", "3"]),
    "ui": (["bench/ui_bench.py"], ["bench/ui_bench.py", "--events", "20000", "--runs", "3"]),
    "hostile": (["bench/hostile_query_bench.py"],
                ["bench/hostile_query_bench.py", "--lines", "5000", "--abandoned", "10"]),
    "failover": (["bench/failover_bench.py"],
                 ["bench/failover_bench.py", "--lines", "20000", "--rounds", "1"]),
}


def machine() -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    try:
        from logpipe.services.valkey import server_binary
        valkey = subprocess.run([server_binary(), "--version"], capture_output=True,
                                text=True, timeout=30).stdout.strip()
    except Exception as exc:  # the results say what could not be read
        valkey = f"unknown ({exc})"
    return [f"machine: {platform.node()}, {model}, {os.cpu_count()} cores, {mem}, "
            f"{platform.system()} {platform.release()}",
            f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {valkey}",
            f"started {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"load average {_load()}"]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHES))
    ap.add_argument("--out", help="results file (default bench/results/<UTC date>.txt)")
    ap.add_argument("--append", action="store_true",
                    help="add to the results file (the machine is named again) instead of "
                         "replacing it")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    out = Path(args.out) if args.out else \
        ROOT / "bench" / "results" / f"{datetime.now(timezone.utc):%Y-%m-%d}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    failed = []
    with open(out, "a" if args.append else "w") as results:
        def say(text: str) -> None:
            print(text, flush=True)
            results.write(text + "\n")
            results.flush()

        if args.append:
            say("")
        for line in machine():
            say(line)
        for name in names:
            argv = BENCHES[name][1 if args.quick else 0]
            say(f"\n=== {name}: {' '.join(argv)}  (load before {_load()})")
            t0 = time.perf_counter()
            proc = subprocess.Popen([PY, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                say(line.rstrip("\n"))
            code = proc.wait()
            say(f"=== {name}: exit {code}, {time.perf_counter() - t0:.0f} s "
                f"(load after {_load()})")
            if code:
                failed.append(name)
    print(f"\nresults in {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
