"""``logpipe index`` over several brokers: one indexer (dispatcher + workers) per broker, supervised here.

Each broker keeps its own raw list, batch keys and job queue, so each is drained by an indexer of its own; this
process starts them (the broker URL passed in the environment, never in argv), forwards SIGTERM/SIGINT, and exits
when all have (``--burst``: once every broker is drained), with the worst exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from logpipe.common.broker import redact
from logpipe.common.config import ENV_REDIS
from logpipe.common.console import emit


def per_broker_args(args: list[str], count: int, metrics_port: int | None) -> list[list[str]]:
    """The arguments of each broker's indexer: the same, but each serves metrics on a port of
    its own (``metrics_port`` for the first broker, +1 for the next, ...)."""
    if not metrics_port:
        return [list(args) for _ in range(count)]
    return [[*args, "--metrics-port", str(metrics_port + i)] for i in range(count)]


def run_per_broker(urls: list[str], args: list[str], metrics_port: int | None = None) -> int:
    """Run ``logpipe index ARGS`` once per broker URL until all exit; returns the worst exit status."""
    procs = []
    for url, own_args in zip(urls, per_broker_args(args, len(urls), metrics_port)):
        env = dict(os.environ, **{ENV_REDIS: url})
        procs.append(subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "index", *own_args],
                                      env=env, stdin=subprocess.DEVNULL))
        emit("broker_indexer_started", broker=redact(url), pid=procs[-1].pid,
             **({"metrics_port": int(own_args[-1])} if metrics_port else {}))
    stopping = {"now": False}

    def _forward(signum, frame):
        stopping["now"] = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    old = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while any(proc.poll() is None for proc in procs):
            time.sleep(0.2)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return max(proc.returncode for proc in procs)
