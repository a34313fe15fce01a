"""A hostile load on a running ``logpipe ui`` (issue 21): one very expensive query, many
expensive requests whose clients give up early, and probes of ``/health`` and a term search
meanwhile. Used by tests/integration/test_query_budget.py and bench/hostile_query_bench.py."""

from __future__ import annotations

import socket
import statistics
import string
import threading
import time
from urllib.parse import quote, urlsplit

# an AND of 80 message wildcards, 363 characters (the query ran 35 s)
HOSTILE_QUERY = " AND ".join(f"*{c}*" for c in (string.ascii_lowercase * 4)[:80])[:363]
ABANDONED_QUERY = "*a* *e*"      # ~1 s on 20,000 mail lines
TERM_QUERY = "program:sendmail"


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(samples: list[float]) -> str:
    return (f"p50 {pct(samples, 50):6.1f} ms  p95 {pct(samples, 95):6.1f} ms  "
            f"max {max(samples):6.1f} ms  n={len(samples)}")


class Target:
    def __init__(self, address: str):
        """``address``: what ``logpipe ui`` printed, http://host:port/?token=..."""
        parts = urlsplit(address)
        self.host, self.port = parts.hostname, parts.port
        self.token = parts.query.split("token=", 1)[1]
        self.base = f"http://{self.host}:{self.port}"

    def client(self, timeout: float = 60):
        import httpx
        return httpx.Client(base_url=self.base, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token}"})

    def abandon(self, path: str, after: float) -> None:
        """Send a GET and hang up after ``after`` seconds, without reading the answer."""
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Authorization: Bearer {self.token}\r\n\r\n").encode())
            time.sleep(after)


def probe(client, path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.get(path)
    return (time.perf_counter() - t0) * 1000, r.status_code


def search_path(q: str) -> str:
    return f"/api/search?size=20&q={quote(q)}"


def run(address: str, abandoned: int = 50, abandon_after: float = 1.0, spread: float = 2.5,
        idle_probes: int = 20, pause: float = 0.05) -> dict:
    """The figures: idle and loaded latencies of /health and a term search (ms), and what
    the hostile query answered (status, seconds, body)."""
    target = Target(address)
    out: dict = {"idle": {"health": [], "term": []}, "load": {"health": [], "term": []},
                 "statuses": {"health": set(), "term": set()}}
    with target.client() as client:
        for _ in range(idle_probes):
            for name, path in (("health", "/health"), ("term", search_path(TERM_QUERY))):
                ms, status = probe(client, path)
                out["idle"][name].append(ms)
                time.sleep(pause)

        hostile: dict = {}

        def hostile_query():
            with target.client(timeout=120) as c:
                t0 = time.perf_counter()
                r = c.get(search_path(HOSTILE_QUERY))
                hostile.update(status=r.status_code, seconds=time.perf_counter() - t0,
                               body=r.text[:500])

        def abandoners():
            threads = []
            for i in range(abandoned):
                t = threading.Thread(target=target.abandon,
                                     args=(search_path(ABANDONED_QUERY), abandon_after),
                                     daemon=True)
                t.start()
                threads.append(t)
                time.sleep(spread / max(1, abandoned))
            for t in threads:
                t.join()

        h = threading.Thread(target=hostile_query, daemon=True)
        a = threading.Thread(target=abandoners, daemon=True)
        h.start()
        a.start()
        time.sleep(0.2)  # the hostile query and the first abandoned ones are in
        started = time.monotonic()
        while a.is_alive() or (h.is_alive() and time.monotonic() - started < 30):
            for name, path in (("health", "/health"), ("term", search_path(TERM_QUERY))):
                ms, status = probe(client, path)
                out["load"][name].append(ms)
                out["statuses"][name].add(status)
                time.sleep(pause)
        h.join(timeout=120)
        out["hostile"] = hostile
    return out


def report(figures: dict) -> str:
    lines = []
    for name in ("health", "term"):
        idle, load = figures["idle"][name], figures["load"][name]
        label = "/health" if name == "health" else f"search {TERM_QUERY}"
        lines.append(f"{label:<24} idle: {summary(idle)}")
        lines.append(f"{'':<24} load: {summary(load)}  (p95 load/idle "
                     f"{pct(load, 95) / max(pct(idle, 95), 0.001):.1f}x)")
    hostile = figures.get("hostile") or {}
    if hostile:
        lines.append(f"hostile query ({len(HOSTILE_QUERY)} chars): HTTP {hostile['status']} "
                     f"after {hostile['seconds']:.1f} s")
    return "\n".join(lines)


def stats(samples: list[float]) -> dict:
    return {"p50": pct(samples, 50), "p95": pct(samples, 95), "mean": statistics.fmean(samples)}
