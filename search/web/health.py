"""The health page's figures beyond ``logpipe stats``: the broker's memory against its limit,
the last hour as sparklines (server-side SVG: no script, nothing from a log line in it), the
store's size on disk and its events. Each part fails on its own: a broker that is away still
leaves the store's figures, and the other way round."""

from __future__ import annotations

from typing import Any

SPARK_W, SPARK_H = 240, 36


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def sparkline(values: list, width: int = SPARK_W, height: int = SPARK_H) -> dict:
    """Points of an SVG polyline over ``values`` (None: no sample, left out), scaled to the
    peak; with the peak and the last value for the labels."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    peak = max((v for _, v in known), default=0) or 1
    step = width / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / peak:.1f}"
                      for i, v in known)
    return {"points": points, "peak": max((v for _, v in known), default=0),
            "last": known[-1][1] if known else None, "width": width, "height": height,
            "samples": len(known)}


def figures_of(data) -> tuple[dict | None, dict | None, str | None, str | None]:
    """(broker figures, store figures, broker error, store error) for the page."""
    from logpipe.common.errors import LogpipeError

    figures: dict[str, Any] | None
    store: dict[str, Any] | None
    error = store_error = None
    try:
        figures = data.health()
    except LogpipeError as exc:
        figures, error = None, str(exc)
    except Exception as exc:  # rq or the broker client failing in an unforeseen way
        figures, error = None, f"{type(exc).__name__}: {exc}"
    if figures is not None:
        history = figures.get("history") or {}
        figures["spark"] = {name: sparkline(history.get(name) or [])
                            for name in ("in_per_s", "out_per_s", "depth")}
        memory = figures.get("memory") or {}
        used, limit = memory.get("used"), memory.get("max")
        memory["used_text"] = human_bytes(used)
        memory["max_text"] = human_bytes(limit) if limit else "no limit (maxmemory 0)"
        memory["share"] = round(100 * used / limit, 1) if used is not None and limit else None
    try:
        store = data.store_size()
        store["bytes_text"] = human_bytes(store["bytes"])
        store["parts"] = [(name, human_bytes(n)) for name, n in store["parts"]]
    except LogpipeError as exc:
        store, store_error = None, str(exc)
    except Exception as exc:  # the store's client failing in an unforeseen way
        store, store_error = None, f"{type(exc).__name__}: {exc}"
    return figures, store, error, store_error
