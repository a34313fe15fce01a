"""Pipeline figures: counters and per-second rates kept in the broker, read by ``logpipe stats``.

Rates are per-second buckets (``<prefix>:stats:rate:<in|out>:<epoch second>``, expiring after two
minutes), so any number of workers and dispatchers add to the same figures without coordination.
"""

from __future__ import annotations

import math
import time

import orjson

from logpipe.common.broker import Keys

RATE_TTL = 120
WINDOW = 10
HISTORY_MINUTES = 60                       # the health page's sparklines: the last hour
MINUTE_TTL = (HISTORY_MINUTES + 2) * 60    # so at most 62 per-minute keys of each kind live


def _bump(client, keys: Keys, direction: str, n: int, counters: dict | None = None,
          now: float | None = None) -> None:
    now = int(time.time() if now is None else now)
    pipe = client.pipeline(transaction=False)
    key = keys.rate(direction, now)
    pipe.incrby(key, n)
    pipe.expire(key, RATE_TTL)
    minute = keys.minute(direction, now // 60)
    pipe.incrby(minute, n)
    pipe.expire(minute, MINUTE_TTL)
    for name, value in (counters or {}).items():
        if value:
            pipe.hincrby(keys.counters, name, value)
    pipe.execute()


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
    minute = int(time.time() if now is None else now) // 60
    depth = int(client.llen(keys.raw))
    client.set(keys.depth(minute), depth, ex=MINUTE_TTL, nx=True)
    return depth


def history(client, keys: Keys, now: float | None = None,
            minutes: int = HISTORY_MINUTES) -> dict:
    """The last ``minutes`` minutes, oldest first: ``minutes`` (each minute's start, epoch
    seconds), ``in_per_s`` and ``out_per_s`` (records per second over that minute; the current
    one over its elapsed seconds) and ``depth`` (the raw list's sampled depth, None where no
    sample was taken)."""
    now = time.time() if now is None else now
    current = int(now) // 60
    span = range(current - minutes + 1, current + 1)
    names = ([keys.minute("in", m) for m in span] + [keys.minute("out", m) for m in span]
             + [keys.depth(m) for m in span])
    values = client.mget(names)
    n = len(span)
    elapsed = max(1.0, now - current * 60)

    def per_s(raw, m):
        count = int(raw) if raw else 0
        return round(count / (elapsed if m == current else 60.0), 2)

    return {"minutes": [m * 60 for m in span],
            "in_per_s": [per_s(v, m) for v, m in zip(values[:n], span)],
            "out_per_s": [per_s(v, m) for v, m in zip(values[n:2 * n], span)],
            "depth": [int(v) if v is not None else None for v in values[2 * n:]]}


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
    return {k.decode(): int(v) for k, v in client.hgetall(keys.counters).items()}


def rate(client, keys: Keys, direction: str, window: int = WINDOW) -> float:
    now = int(time.time())
    names = [keys.rate(direction, t) for t in range(now - window, now)]
    return sum(int(v) for v in client.mget(names) if v) / window


def oldest_waiting(client, keys: Keys) -> float | None:
    """Receive time of the oldest record not yet stored (raw list head or oldest batch)."""
    candidates = []
    head = client.lindex(keys.raw, 0)
    oldest_batch = client.zrange(keys.batches, 0, 0)
    if oldest_batch:
        first = client.lindex(oldest_batch[0], 0)
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
    names = client.hkeys(keys.shippers)
    if not names:
        return [], []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hstrlen(keys.shippers, name)
    sizes = pipe.execute()
    small = [n for n, size in zip(names, sizes) if size <= MAX_ENTRY_BYTES]
    blobs = dict(zip(small, client.hmget(keys.shippers, small))) if small else {}
    found: list[dict] = []
    invalid: list[dict] = []
    for name, size in zip(names, sizes):
        reason: str | None
        if name not in blobs:
            reason = f"{size} bytes, more than {MAX_ENTRY_BYTES}"
        elif blobs[name] is None:
            continue  # removed between the two reads
        else:
            figures, reason = _checked(name, blobs[name], now)
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
    fields = [n for n in client.hkeys(keys.shippers)
              if n == name.encode("utf-8", "surrogateescape") or _shown_name(n) == name]
    return int(client.hdel(keys.shippers, *fields)) if fields else 0


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
        "batches_pending": int(client.zcard(keys.batches)),
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
