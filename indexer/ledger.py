"""The loss ledger: per source, which records were stored, so loss is seen by the running system.

Every logpipe shipper stamps its records with a sequence (``seq``: 0, 1, 2, ... per file identity or
syslog listener run, kept with the offset in its registry so a restart repeats the same numbers);
the source is the record's ``src`` or its id's prefix (:attr:`common.record.Record.ledger_source`).
After a job stored a batch (every record indexed, already present, dropped or dead-lettered) and
before it forgets the batch, :func:`note` merges the batch's sequences into ``<prefix>:ledger``
(one hash field per source) with one function call on the broker (``logpipe_ledger_merge``). The
merge is idempotent and order-free: a batch repeated after a crash, or records arriving twice or
out of order, change nothing; the ledger cannot drift from what was stored, because nothing is
noted before the store confirmed it, and a crash between the two repeats the batch.

What a source's entry says (:func:`report`): **stored up to N** (every record 0..N is stored),
**gaps G** (records above N not stored yet, in holes between the runs stored beyond N), **lag L s**
(the newest record's time from its reading by the shipper to its storing). A hole closes when the
late records arrive (a batch retried by the janitor, a shipper resending after an outage); a hole
open for longer than ``loss_after`` seconds is reported as **lost** with its range. Records
without a sequence (other shippers', older logpipe's) are not in the ledger.

What it cannot see: records lost after the last one stored of a source (a tail, nothing after it
arrives to show the hole). The shipper's own figures say how far it had the broker confirm each
source; ``logpipe stats`` shows both.
"""

from __future__ import annotations

import time
from typing import Iterable

import orjson

from logpipe.common.broker import Keys
from logpipe.common.broker.functions import LEDGER_MERGE, fcall

DEFAULT_LOSS_AFTER = 300.0  # seconds a hole may stay open before it is called a loss


def runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted unique ``seqs`` as inclusive runs: [0, 1, 2, 5, 6] -> [(0, 2), (5, 6)]."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def note(client, keys: Keys, records, now: float | None = None, target=None) -> None:
    """Merge the sequences of ``records`` (decoded :class:`Record` s a job finished with) into the
    ledger. Records without a ``seq`` are skipped. ``target``: a pipeline of ``client`` to queue the
    call on (so it travels with the batch's deletion), else it is sent at once."""
    by_source: dict[str, tuple[list[int], dict]] = {}
    for rec in records:
        if rec.seq is None:
            continue
        src = rec.ledger_source
        entry = by_source.get(src)
        if entry is None:
            entry = by_source[src] = ([], {"host": rec.host, "path": rec.path, "newest": 0.0})
        entry[0].append(rec.seq)
        if rec.received_at > entry[1]["newest"]:
            entry[1]["newest"] = rec.received_at
    if not by_source:
        return
    args: list = [time.time() if now is None else now]
    for src, (seqs, meta) in by_source.items():
        args += [src, orjson.dumps(meta), ",".join(f"{a}-{b}" for a, b in runs(seqs))]
    fcall(client, client if target is None else target, LEDGER_MERGE, [keys.ledger], args)


def report(client, keys: Keys, loss_after: float = DEFAULT_LOSS_AFTER,
           now: float | None = None) -> list[dict]:
    """One entry per source, by host and path: ``stored_upto``, ``gaps`` (records missing above
    it), ``holes`` ([first, last, open for seconds]), ``lost`` (the holes open longer than
    ``loss_after``, as [first, last]), ``lost_records``, ``lag``, ``records``, ``updated``."""
    now = time.time() if now is None else now
    out = []
    for name, blob in client.hgetall(keys.ledger).items():
        try:
            st = orjson.loads(blob)
        except orjson.JSONDecodeError:
            continue
        holes = [(int(a), int(b), float(t)) for a, b, t in (st.get("holes") or [])]
        lost = [[a, b] for a, b, t in holes if now - t >= loss_after]
        out.append({
            "source": name.decode() if isinstance(name, bytes) else str(name),
            "host": st.get("host", ""), "path": st.get("path", ""),
            "stored_upto": int(st.get("upto", -1)),
            "gaps": sum(b - a + 1 for a, b, _ in holes),
            "holes": [[a, b, round(now - t, 1)] for a, b, t in holes],
            "lost": lost, "lost_records": sum(b - a + 1 for a, b in lost),
            "lag": round(float(st["lag"]), 3) if st.get("lag") is not None else None,
            "records": int(st.get("records", 0)), "updated": st.get("updated"),
        })
    out.sort(key=lambda e: (e["host"], e["path"], e["source"]))
    return out


def summary_line(entry: dict) -> str:
    """``host path: stored up to N, gaps G, lag L s`` (+ the lost ranges)."""
    lag = "-" if entry["lag"] is None else f"{entry['lag']:.1f}"
    text = (f"{entry['host'] or '?'} {entry['path'] or entry['source']}: stored up to "
            f"{entry['stored_upto']}, gaps {entry['gaps']}, lag {lag} s")
    if entry["lost"]:
        text += " LOST " + ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in entry["lost"])
    return text


def forget(client, keys: Keys, source: str) -> int:
    """Remove one source from the ledger (a retired host)."""
    return int(client.hdel(keys.ledger, source))
