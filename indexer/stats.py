"""Pipeline figures: counters and per-second rates kept in the broker, read by ``logpipe stats``.

Rates are per-second buckets (``<prefix>:stats:rate:<in|out>:<epoch second>``, expiring after two
minutes), so any number of workers and dispatchers add to the same figures without coordination.
The keys and the commands on them belong to the broker's ledgers (:mod:`common.broker.ledgers`);
this module computes the figures from them, for ``logpipe stats``, the page, the exporter and the
indexer's progress line alike.
"""

from __future__ import annotations

import math
import time

import orjson

from logpipe.common.broker import Keys
from logpipe.common.broker.ledgers import HISTORY_MINUTES as HISTORY_MINUTES
from logpipe.common.broker.ledgers import MINUTE_TTL as MINUTE_TTL
from logpipe.common.broker.ledgers import RATE_TTL as RATE_TTL
from logpipe.common.broker.ledgers import Counters, PendingBatches, RawList, ShipperStatus

WINDOW = 10


def _bump(client, keys: Keys, direction: str, n: int, counters: dict | None = None,
          now: float | None = None) -> None:
    Counters(client, keys).add(direction, n, counters or {}, int(time.time() if now is None else now))


def record_in(client, keys: Keys, n: int, now: float | None = None) -> None:
    """Records claimed from the raw list by a dispatcher."""
    _bump(client, keys, "in", n, {"claimed": n}, now)


def record_out(client, keys: Keys, counts: dict, now: float | None = None) -> None:
    """Records a job finished with (indexed, already present or dead-lettered)."""
    done = counts["indexed"] + counts["duplicate"] + counts["dead_lettered"]
    _bump(client, keys, "out", done, {k: counts[k] for k in ("indexed", "duplicate",
                                                            "dead_lettered")}, now)


def sample_depth(client, keys: Keys, now: float | None = None) -> int:
    """Note the raw list's depth for this minute (the first sample of a minute stays: the
    dispatcher samples at each new minute, and whoever reads the figures fills a minute no
    dispatcher saw, e.g. while the indexer is down). Returns the depth."""
    return Counters(client, keys).sample_depth(int(time.time() if now is None else now) // 60)


def history(client, keys: Keys, now: float | None = None,
            minutes: int = HISTORY_MINUTES) -> dict:
    """The last ``minutes`` minutes, oldest first: ``minutes`` (each minute's start, epoch
    seconds), ``in_per_s`` and ``out_per_s`` (records per second over that minute; the current
    one over its elapsed seconds) and ``depth`` (the raw list's sampled depth, None where no
    sample was taken)."""
    now = time.time() if now is None else now
    current = int(now) // 60
    span = range(current - minutes + 1, current + 1)
    ins, outs, depths = Counters(client, keys).per_minute(span)
    elapsed = max(1.0, now - current * 60)

    def per_s(count, m):
        return round(count / (elapsed if m == current else 60.0), 2)

    return {"minutes": [m * 60 for m in span],
            "in_per_s": [per_s(v, m) for v, m in zip(ins, span)],
            "out_per_s": [per_s(v, m) for v, m in zip(outs, span)],
            "depth": depths}


def broker_memory(client) -> dict:
    """The broker's memory (INFO memory): ``used`` and ``peak`` bytes, ``max`` (maxmemory, 0:
    no limit set), ``policy`` (what the broker does at the limit: noeviction refuses writes),
    ``system`` (the machine's memory, when the server tells)."""
    info = client.info("memory")
    return {"used": int(info.get("used_memory", 0)),
            "peak": int(info.get("used_memory_peak", 0)),
            "max": int(info.get("maxmemory", 0)),
            "policy": str(info.get("maxmemory_policy", "")),
            "system": int(info.get("total_system_memory", 0))}


def totals(client, keys: Keys) -> dict[str, int]:
    """Records claimed, indexed, duplicate and dead-lettered since the counters began."""
    return Counters(client, keys).totals()


def rate(client, keys: Keys, direction: str, window: int = WINDOW) -> float:
    now = int(time.time())
    return sum(Counters(client, keys).per_second(direction, range(now - window, now))) / window


def oldest_waiting(client, keys: Keys) -> float | None:
    """Receive time of the oldest record not yet stored (raw list head or oldest batch)."""
    candidates = []
    head = RawList(client, keys).head()
    pending = PendingBatches(client, keys)
    oldest_batch = pending.oldest()
    if oldest_batch:
        first = pending.first_item(oldest_batch)
        if first is not None:
            candidates.append(first)
    if head is not None:
        candidates.append(head)
    times = []
    for raw in candidates:
        try:
            obj = orjson.loads(raw)
            if isinstance(obj, dict) and obj.get("received_at"):
                times.append(float(obj["received_at"]))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue
    return min(times) if times else None


SHIPPER_SILENT = 30        # a shipper publishes every ~2 s: this long without a report is flagged
SHIPPER_FORGOTTEN = 86_400  # after a day of silence it is no longer listed (a host retired for good)
SHIPPER_STATES = ("running", "finished", "stopped")  # finished: a `ship --once` that ended
MAX_ENTRY_BYTES = 4096      # a shipper's figures are ~250 bytes; anything far bigger is not one
MAX_NAME_BYTES = 256        # shippers cap their names below this (shipper.status.shipper_name)
# What a shipper writes (shipper/agent.py); anything else in an entry is dropped, a wrong type
# makes the whole entry invalid. The hash is written by every shipper host (the least-trusted
# user of the broker), so nothing in it is taken on trust by stats, the exporter or the page.
# dropped: syslog UDP datagrams dropped with the spool full; spool_bytes: spooled, not confirmed
_COUNTS = ("lines", "bytes", "lag_bytes", "sources", "dropped", "spool_bytes")
_RATES = ("lines_per_s",)


def _shown_name(name: bytes) -> str:
    """The name as written, cut when it is too long to be a shipper's; control characters stay
    (``--json`` is exact): each output escapes them its own way (terminal, HTML, exposition)."""
    text = name.decode("utf-8", "replace")
    if len(name) > MAX_NAME_BYTES:
        text = text[:80] + f"... ({len(name)} bytes)"
    return text


def _checked(name: bytes, blob: bytes, now: float) -> tuple[dict | None, str | None]:
    """(figures, None) for a well-formed entry, (None, reason) for anything else."""
    if len(name) > MAX_NAME_BYTES:
        return None, f"name longer than {MAX_NAME_BYTES} bytes"
    try:
        data = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, f"a JSON {type(data).__name__}, not an object"
    updated = data.get("updated")
    if isinstance(updated, bool) or not isinstance(updated, (int, float)) \
            or not math.isfinite(updated) or updated <= 0:
        return None, "'updated' must be seconds since the epoch"
    if updated > now + SHIPPER_FORGOTTEN:
        return None, "'updated' is in the future"
    figures: dict = {"updated": float(updated)}
    for key in _COUNTS:
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None, f"'{key}' must be a count (a non-negative integer)"
        figures[key] = value
    for key in _RATES:
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            return None, f"'{key}' must be a non-negative number"
        figures[key] = value
    paused = data.get("paused", False)
    if not isinstance(paused, bool):
        return None, "'paused' must be true or false"
    figures["paused"] = paused
    state = data.get("state", "running")  # shippers before 'state' only reported while running
    if state not in SHIPPER_STATES:
        return None, f"'state' must be one of {', '.join(SHIPPER_STATES)}"
    figures["state"] = state
    host = data.get("host", "")
    if not isinstance(host, str) or len(host) > MAX_NAME_BYTES:
        return None, "'host' must be a short string"
    figures["host"] = _shown_name(host.encode())
    return figures, None


def shipper_entries(client, keys: Keys) -> tuple[list[dict], list[dict]]:
    """(shippers, invalid entries) as ``logpipe stats`` shows them.

    Each shipper has ``name``, ``age_s``, ``state`` (running, finished: a ``ship --once`` that
    ended, stopped: an agent stopped by a signal) and ``silent``: a *running* shipper that has
    not reported for ``SHIPPER_SILENT`` seconds, so a dead agent is visible rather than just
    gone. An entry that is not a shipper's figures (not JSON, wrong types, too big) is listed
    apart as ``{"name", "reason"}``, never passed on. Values are sized before they are read, so
    a huge one is never fetched."""
    now = time.time()
    status = ShipperStatus(client, keys)
    names = status.names()
    if not names:
        return [], []
    sizes = status.sizes(names)
    blobs = status.values([n for n, size in zip(names, sizes) if size <= MAX_ENTRY_BYTES])
    found: list[dict] = []
    invalid: list[dict] = []
    for name, size in zip(names, sizes):
        reason: str | None
        blob = blobs.get(name)
        if name not in blobs:
            reason = f"{size} bytes, more than {MAX_ENTRY_BYTES}"
        elif blob is None:
            continue  # removed between the two reads
        else:
            figures, reason = _checked(name, blob, now)
            if figures is not None:
                age = max(0.0, now - figures["updated"])
                if age <= SHIPPER_FORGOTTEN:
                    figures["name"] = _shown_name(name)
                    figures["age_s"] = round(age, 1)
                    figures["silent"] = figures["state"] == "running" and age > SHIPPER_SILENT
                    found.append(figures)
                continue
        invalid.append({"name": _shown_name(name), "reason": reason})
    found.sort(key=lambda s: s["name"])
    invalid.sort(key=lambda s: s["name"])
    return found, invalid


def shippers(client, keys: Keys) -> list[dict]:
    """The valid shippers' figures (see :func:`shipper_entries`)."""
    return shipper_entries(client, keys)[0]


def forget_shipper(client, keys: Keys, name: str) -> int:
    """Remove the entry named ``name`` (as given, or as ``logpipe stats`` shows a long or
    unprintable name); the number of entries removed."""
    status = ShipperStatus(client, keys)
    return status.remove([n for n in status.names()
                          if n == name.encode("utf-8", "surrogateescape") or _shown_name(n) == name])


def progress(client, keys: Keys) -> dict:
    """The indexer's progress line: the raw list, the batches pending and the totals."""
    counters = totals(client, keys)
    return dict(raw=RawList(client, keys).length(), batches=PendingBatches(client, keys).count(),
                **{name: counters.get(name, 0)
                   for name in ("claimed", "indexed", "duplicate", "dead_lettered")})


def live_workers(queue) -> tuple[int, int]:
    """(live, stale) RQ workers of ``queue``: ``logpipe stats`` counts only the live ones.

    RQ keeps a worker's registration for its TTL plus a minute after its last heartbeat, so a
    killed worker would be counted for up to 90 s more. Live: busy (a SimpleWorker beats again
    when its job ends; RQ expires the registration of one killed mid-job) or with a heartbeat
    within the workers' TTL (an idle one beats every 15 s); and on this host, its process
    exists (as the janitor checks)."""
    import os
    import socket
    from datetime import datetime, timezone

    from rq import Worker

    from logpipe.indexer.worker import WORKER_TTL

    here = socket.gethostname()
    now = datetime.now(timezone.utc)
    live = stale = 0
    for worker in Worker.all(queue=queue):
        ok = worker.get_state() == "busy" or (
            worker.last_heartbeat is not None
            and (now - worker.last_heartbeat.replace(tzinfo=timezone.utc)).total_seconds()
            <= WORKER_TTL)
        if ok and worker.hostname == here and worker.pid:
            try:
                os.kill(worker.pid, 0)
            except ProcessLookupError:
                ok = False
            except PermissionError:
                pass
        live, stale = (live + 1, stale) if ok else (live, stale + 1)
    return live, stale


def collect(client, keys: Keys, loss_after: float | None = None) -> dict:
    """Everything ``logpipe stats`` shows, as one dict (``ledger``: per source, stored up to,
    gaps, lag, and the holes open past ``loss_after`` seconds as ``lost``: :mod:`indexer.ledger`)."""
    from logpipe.indexer import ledger
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from logpipe.indexer.dlq import DeadLetterQueue

    queue = Queue(keys.queue, connection=client)
    workers, stale_workers = live_workers(queue)
    found, invalid = shipper_entries(client, keys)
    oldest = oldest_waiting(client, keys)
    counters = totals(client, keys)
    depth = sample_depth(client, keys)
    return {
        "raw_list": depth,
        "batches_pending": PendingBatches(client, keys).count(),
        "jobs_queued": queue.count,
        "jobs_running": StartedJobRegistry(queue=queue).count,
        "workers": workers,
        "workers_stale": stale_workers,
        "lines_in_per_s": round(rate(client, keys, "in"), 1),
        "lines_out_per_s": round(rate(client, keys, "out"), 1),
        "dead_letters": DeadLetterQueue(client, keys).counts_by_stage(),
        "lag_seconds": round(time.time() - oldest, 3) if oldest else 0.0,
        "totals": counters,
        "shippers": found,
        "shippers_invalid": invalid,
        "ledger": ledger.report(client, keys, ledger.DEFAULT_LOSS_AFTER if loss_after is None
                                else loss_after),
    }
