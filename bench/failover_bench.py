"""What replication safety costs: shipper throughput and claim rate with and without ``WAIT``.

Three brokers, started fresh in this run, the same generated mail log each time:

* ``lone``: one Valkey, no replica (``WAIT`` is never sent; the reference);
* ``replicated, no WAIT``: a primary + one replica + three sentinels, reached through a
  ``redis+sentinel://`` URL with ``?wait_replicas=0`` (asynchronous replication only);
* ``replicated, WAIT 1``: the same group with the default policy: every push (shipper), claim and batch
  deletion (dispatcher) returns only once the replica holds it.

For each: ``logpipe ship --once FILE`` timed from start to exit (process start-up included), then the
dispatcher's claim (raw list -> batch key, ``Broker.claim_batch``) of every record in batches of 2,000 and their
deletion (``finish_batch``). Ratios are against ``lone`` and, for WAIT, against ``replicated, no WAIT``.

    .venv/bin/python bench/failover_bench.py [--lines 300000] [--batch-lines 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logpipe.services import loggen  # noqa: E402
from logpipe.common.broker import Broker, Keys, connect  # noqa: E402
from logpipe.services.valkey import SentinelGroup, ValkeyServer  # noqa: E402

LOGPIPE = str(ROOT / ".venv" / "bin" / "logpipe")


def ship(url: str, log: Path, tmp: Path, batch_lines: int) -> float:
    registry = tmp / f"registry-{time.monotonic_ns()}.json"
    began = time.perf_counter()
    subprocess.run([LOGPIPE, "ship", "--once", "--redis", url, "--registry", str(registry),
                    "--batch-lines", str(batch_lines), str(log)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL,
                   env={"LOGPIPE_HOME": str(tmp / "home"), "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - began


def claim_all(url: str, batch: int = 2000) -> tuple[float, int]:
    client = connect(url)
    broker = Broker(client, Keys())
    began = time.perf_counter()
    claimed = 0
    while True:
        got = broker.claim_batch(batch)
        if got is None:
            break
        key, n = got
        broker.finish_batch(key)
        claimed += n
    seconds = time.perf_counter() - began
    client.flushall()
    client.close()
    return seconds, claimed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--batch-lines", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, interleaved; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logpipe-failover-bench-") as name:
        tmp = Path(name)
        log = tmp / "mail.log"
        with open(log, "w", encoding="utf-8") as out:
            loggen.write_lines(loggen.generate("mail", args.lines, 1), out)
        results = {}
        lone = ValkeyServer(data_dir=tmp / "lone")
        group = SentinelGroup(data_dir=tmp / "group")
        try:
            lone.start()
            group.start()
            runs = [("lone", lone.url), ("replicated, no WAIT", group.url(query="wait_replicas=0")),
                    ("replicated, WAIT 1", group.url())]
            for _ in range(args.rounds):  # interleaved, best of: a busy machine slows one run, not one setup
                for label, url in runs:
                    ship_s = ship(url, log, tmp, args.batch_lines)
                    stored = connect(url).llen(Keys().raw)
                    assert stored == args.lines, (label, stored)
                    claim_s, claimed = claim_all(url)
                    assert claimed == args.lines
                    best = results.get(label, (0.0, 0.0))
                    results[label] = (max(best[0], args.lines / ship_s), max(best[1], claimed / claim_s))
                    group.wait_ready()
        finally:
            group.cleanup()
            lone.cleanup()
    ref_ship, ref_claim = results["lone"]
    async_ship, async_claim = results["replicated, no WAIT"]
    print(f"lines={args.lines} batch_lines={args.batch_lines} rounds={args.rounds} (best of; claim batches of "
          f"2,000, each deleted after)")
    print(f"{'broker':<22}{'ship lines/s':>14}{'vs lone':>9}{'claim+delete rec/s':>20}{'vs lone':>9}")
    for label, (ship_rate, claim_rate) in results.items():
        print(f"{label:<22}{ship_rate:>14,.0f}{ship_rate / ref_ship:>9.2f}{claim_rate:>20,.0f}"
              f"{claim_rate / ref_claim:>9.2f}")
    wait_ship, wait_claim = results["replicated, WAIT 1"]
    print(f"WAIT costs: shipping x{wait_ship / async_ship:.2f}, claim+delete x{wait_claim / async_claim:.2f} "
          f"(against the same replicated group without WAIT)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
