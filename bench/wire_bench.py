"""Compression on the wire: bytes on the wire and CPU per line, plain records vs zlib runs.

Generated mail lines (``services.loggen``) are encoded as a shipper's records once (not timed:
the same in both modes), then per mode, ``--rounds`` times (the median is printed):

* **ship side**: what the agent does after encoding: frame the batch for RPUSH and (compressed)
  cut it into runs of ``common.wire.DEFAULT_RECORDS_PER_ITEM`` records and zlib each run
  (``shipper.agent.Batch.packed``). Bytes on the wire = the RPUSH commands' bytes as
  ``shipper.sender.Sender.pack`` writes them (RESP headers included).
* **decode side**: what the indexer does before the pipeline: plain, ``common.record.decode`` per
  item; compressed, ``common.wire.unpack`` per item, then ``decode`` per record.

CPU is process time (user + system) of this process per line, in microseconds. No broker is
involved: the network's speed is yours to divide the bytes by.

    .venv/bin/python bench/wire_bench.py [--lines 200000] [--batch 5000] [--rounds 3] [--level 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logpipe.common.record import Record, decode, encode, record_id  # noqa: E402
from logpipe.common.wire import DEFAULT_RECORDS_PER_ITEM, is_packed, pack, split_frames, unpack  # noqa: E402
from logpipe.services import loggen  # noqa: E402
from logpipe.shipper.framing import Framed, Outgoing  # noqa: E402

HEAD = b"$5\r\nRPUSH\r\n$11\r\nlogpipe:raw\r\n"
PER_COMMAND = 10_000  # shipper.sender.Sender.per_command


def records(n: int) -> list[bytes]:
    now = time.time()
    out, offset = [], 0
    for i, line in enumerate(loggen.generate("mail", n, seed=1)):
        out.append(encode(Record(id=record_id("mx1", "dev:ino:fp", offset), line=line, host="mx1",
                                 path="/var/log/maillog", offset=offset, type="mail",
                                 received_at=now, seq=i)))
        offset += len(line) + 1
    return out


def wire_bytes(out: Outgoing) -> int:
    """The RPUSH commands' bytes for ``out`` (as Sender._pack_framed writes them)."""
    total, n = 0, 0
    for part in out.parts:
        if n and n + part.count > PER_COMMAND:
            total += len(b"*%d\r\n" % (n + 2)) + len(HEAD)
            n = 0
        total += len(part.blob)
        n += part.count
    return total + len(b"*%d\r\n" % (n + 2)) + len(HEAD)


def ship(recs: list[bytes], batch: int, compress: bool, level: int) -> tuple[float, int, list[bytes]]:
    """(CPU seconds, wire bytes, the list items) for shipping ``recs`` in batches of ``batch``."""
    outs: list[Outgoing] = []
    nbytes = 0
    t0 = time.process_time()
    for i in range(0, len(recs), batch):
        out = Outgoing()
        out.add(Framed.of(recs[i:i + batch]))
        if compress:
            packed = [pack(blob, n, level) for part in out.parts
                      for blob, n in split_frames(part.blob, part.count, DEFAULT_RECORDS_PER_ITEM)]
            out = Outgoing()
            out.add(packed)
        nbytes += wire_bytes(out)
        outs.append(out)
    cpu = time.process_time() - t0
    return cpu, nbytes, [item for out in outs for item in out]  # (a real agent only writes them)


def index_decode(items: list[bytes]) -> float:
    t0 = time.process_time()
    n = 0
    for position, item in enumerate(items):
        for raw in unpack(item) if is_packed(item) else (item,):
            decode(raw, f"b:{position}")
            n += 1
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000, help="records per batch (batch_lines)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--level", type=int, default=1, help="zlib level (the shipper uses 1)")
    args = ap.parse_args()
    recs = records(args.lines)
    raw_line_bytes = sum(len(r) for r in recs)
    print(f"{args.lines:,} mail records, {raw_line_bytes / args.lines:.0f} bytes each as JSON; "
          f"batches of {args.batch}, runs of {DEFAULT_RECORDS_PER_ITEM} per compressed item, "
          f"zlib level {args.level}, median of {args.rounds} rounds")
    rows = []
    for name, compress in (("plain", False), ("zlib", True)):
        ship_cpu, decode_cpu = [], []
        for _ in range(args.rounds):
            cpu, nbytes, items = ship(recs, args.batch, compress, args.level)
            ship_cpu.append(cpu)
            decode_cpu.append(index_decode(items))
        rows.append((name, nbytes, len(items), statistics.median(ship_cpu), statistics.median(decode_cpu)))
    print(f"{'mode':6} {'wire bytes':>14} {'bytes/line':>10} {'items':>9} "
          f"{'ship CPU us/line':>17} {'decode CPU us/line':>19}")
    for name, nbytes, nitems, s, d in rows:
        print(f"{name:6} {nbytes:>14,} {nbytes / args.lines:>10.1f} {nitems:>9,} "
              f"{s / args.lines * 1e6:>17.2f} {d / args.lines * 1e6:>19.2f}")
    plain, z = rows
    print(f"zlib: {plain[1] / z[1]:.1f}x fewer bytes on the wire; ship side +"
          f"{(z[3] - plain[3]) / args.lines * 1e6:.2f} us/line, decode side +"
          f"{(z[4] - plain[4]) / args.lines * 1e6:.2f} us/line")


if __name__ == "__main__":
    main()
