"""Helpers for the shipper's integration and fault tests (no tests here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson

from logpipe.shipper.agent import IN_FLIGHT

ROOT = Path(__file__).resolve().parents[2]
LOGPIPE = str(ROOT / ".venv" / "bin" / "logpipe")
if not os.path.exists(LOGPIPE):
    LOGPIPE = None


def ship_cmd(*args: str) -> list[str]:
    if LOGPIPE:
        return [LOGPIPE, "ship", *args]
    return [sys.executable, "-m", "logpipe.shipper.cli", *args]


class Agent:
    """``logpipe ship`` as a subprocess with its own LOGPIPE_HOME and registry."""

    def __init__(self, tmp: Path, url: str, *args: str, registry: Path | None = None):
        self.registry = registry or tmp / "registry.json"
        self.args = ["--redis", url, "--registry", str(self.registry), *args]
        self.env = {**os.environ, "LOGPIPE_HOME": str(tmp / "home"), "PYTHONUNBUFFERED": "1"}
        self.env.pop("LOGPIPE_REDIS_URL", None)
        self.log = tmp / "agent.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Agent":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(ship_cmd(*self.args), env=self.env, cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        return self

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def wait_for(predicate, timeout: float = 60, what: str = "condition", agent: Agent | None = None):
    """Poll until ``predicate()`` is true (a guard against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" +
                         (f"\n--- agent output ---\n{agent.output()[-4000:]}" if agent else ""))


def records(client, key: str = "logpipe:raw") -> list[dict]:
    return [orjson.loads(v) for v in client.lrange(key, 0, -1)]


def assert_delivered(recs: list[dict], written: list[str], batch: int) -> None:
    """Every written line is there; repeats only with identical ids, at most the batches that were
    in flight (written, replies not read yet: ``shipper.agent.IN_FLIGHT``) when something failed."""
    lines = [r["line"] for r in recs]
    assert set(lines) == set(written), (
        f"missing {len(set(written) - set(lines))}: {sorted(set(written) - set(lines))[:5]}; "
        f"unexpected {sorted(set(lines) - set(written))[:5]}")
    counts = Counter(lines)
    dups = {line: n for line, n in counts.items() if n > 1}
    ids = defaultdict(set)
    for r in recs:
        if r["line"] in dups:
            ids[r["line"]].add(r["id"])
    assert all(len(v) == 1 for v in ids.values()), "a repeated line came with different ids"
    assert all(n == 2 for n in dups.values()), f"lines repeated more than twice: {dups}"
    assert len(dups) <= IN_FLIGHT * batch, (
        f"{len(dups)} repeated lines, more than the {IN_FLIGHT} batches of {batch} in flight")


class Writer:
    """Appends unique numbered lines to a file."""

    def __init__(self, path: Path, tag: str):
        self.path = path
        self.tag = tag
        self.n = 0
        self.written: list[str] = []

    def write(self, count: int, path: Path | None = None) -> None:
        lines = []
        for _ in range(count):
            self.n += 1
            lines.append(f"{self.tag} seq={self.n:07d} user=u{self.n % 13} msg=\"hello there\"")
        with open(path or self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.written.extend(lines)
