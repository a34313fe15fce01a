"""Pipeline figures: counters and per-second rates kept in the broker, read by ``logpipe stats``.

Rates are per-second buckets (``<prefix>:stats:rate:<in|out>:<epoch second>``, expiring after two
minutes), so any number of workers and dispatchers add to the same figures without coordination.
"""

from __future__ import annotations

import time

import orjson

from logpipe.common.broker import Keys

RATE_TTL = 120
WINDOW = 10


def _bump(client, keys: Keys, direction: str, n: int, counters: dict | None = None) -> None:
    now = int(time.time())
    pipe = client.pipeline(transaction=False)
    key = keys.rate(direction, now)
    pipe.incrby(key, n)
    pipe.expire(key, RATE_TTL)
    for name, value in (counters or {}).items():
        if value:
            pipe.hincrby(keys.counters, name, value)
    pipe.execute()


def record_in(client, keys: Keys, n: int) -> None:
    """Records claimed from the raw list by a dispatcher."""
    _bump(client, keys, "in", n, {"claimed": n})


def record_out(client, keys: Keys, counts: dict) -> None:
    """Records a job finished with (indexed, already present or dead-lettered)."""
    done = counts["indexed"] + counts["duplicate"] + counts["dead_lettered"]
    _bump(client, keys, "out", done, {k: counts[k] for k in ("indexed", "duplicate",
                                                            "dead_lettered")})


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


def shippers(client, keys: Keys) -> list[dict]:
    """Figures the shippers publish (every couple of seconds), each with ``age_s`` and ``silent``.

    A silent shipper stays listed, flagged, so a dead agent is visible rather than just gone.
    """
    now = time.time()
    found = []
    for name, blob in client.hgetall(keys.shippers).items():
        try:
            figures = orjson.loads(blob)
        except orjson.JSONDecodeError:
            continue
        age = now - float(figures.get("updated", 0) or 0)
        if age <= SHIPPER_FORGOTTEN:
            figures["name"] = name.decode("utf-8", "replace")
            figures["age_s"] = round(age, 1)
            figures["silent"] = age > SHIPPER_SILENT
            found.append(figures)
    return found


def collect(client, keys: Keys) -> dict:
    """Everything ``logpipe stats`` shows, as one dict."""
    from rq import Queue, Worker
    from rq.registry import StartedJobRegistry

    from logpipe.indexer.dlq import DeadLetterQueue

    queue = Queue(keys.queue, connection=client)
    workers = Worker.all(queue=queue)
    oldest = oldest_waiting(client, keys)
    counters = totals(client, keys)
    return {
        "raw_list": int(client.llen(keys.raw)),
        "batches_pending": int(client.zcard(keys.batches)),
        "jobs_queued": queue.count,
        "jobs_running": StartedJobRegistry(queue=queue).count,
        "workers": len(workers),
        "lines_in_per_s": round(rate(client, keys, "in"), 1),
        "lines_out_per_s": round(rate(client, keys, "out"), 1),
        "dead_letters": DeadLetterQueue(client, keys).counts_by_stage(),
        "lag_seconds": round(time.time() - oldest, 3) if oldest else 0.0,
        "totals": counters,
        "shippers": shippers(client, keys),
    }
