"""Stores filled with parsed sample mail logs, and a running ``logpipe ui``, for the web tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from logpipe.services.loggen import generate
from logpipe.common.record import Record, record_id
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline

HOSTILE = ('May 15 03:00:00 mail1 sendmail[4242]: h0st1leQ000001: from=<"<script>alert(1)'
           '</script>"@evil.example>, size=666, class=0, nrcpts=1, '
           'msgid=<<img src=x onerror=alert(2)>@evil>, proto=ESMTP, daemon=MTA, '
           'relay=evil.example [10.6.6.6]')


def mail_events(lines: int = 400, seed: int = 7, hostile: bool = False) -> list:
    """Parsed events of a generated maillog (the pipeline's own code), distinct timestamps."""
    pipeline = Pipeline(load_pipeline())
    texts = list(generate("mail", lines, seed=seed))
    if hostile:
        texts.append(HOSTILE)
    events = []
    for n, line in enumerate(texts):
        record = Record(id=record_id("mail1", "dev:ino:fp", n * 200), line=line,
                        host=_host(line), path="/var/log/maillog", offset=n * 200, type="mail",
                        received_at=1368583200.0 + n)
        events.append(pipeline.process(record))
    return events


def _host(line: str) -> str:
    parts = line.split()
    return parts[3] if len(parts) > 3 else "mail1"


def start_ui(*args: str, env: dict | None = None, timeout: float = 60):
    """``logpipe ui`` in a process on a free port; returns (process, the printed address)."""
    proc = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "ui", "--bind", "127.0.0.1:0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"(http://\S+/\?token=\S+)", line.strip())
        if m:
            _drain(proc)
            return proc, m.group(1)
    proc.kill()
    out, err = proc.communicate(timeout=10)
    raise RuntimeError(f"logpipe ui did not print its address: {err[-2000:]}")


def _drain(proc) -> None:
    """Read the process's output for as long as it runs (its last lines kept in ``proc.tail``):
    a pipe nobody reads fills up, and the server then blocks in its next write to it."""
    import collections
    import threading

    proc.tail = collections.deque(maxlen=200)

    def pump(stream):
        for line in stream:
            proc.tail.append(line)

    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=pump, args=(stream,), daemon=True).start()


def stop_ui(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
