"""An indexer that is never idle still gives the embedded store its short maintenance steps (the
per-hour counts histograms read), instead of leaving them for an idle moment that never comes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record, encode, record_id

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _rollup_mark(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT CAST(value AS INTEGER) FROM meta "
                         "WHERE key = 'rollup_mark'").fetchone()
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0
    finally:
        db.close()
    return row[0] if row else 0


def test_a_never_idle_indexer_still_counts_events_per_hour(redis_url, tmp_path):
    now = time.time()
    items = [encode(Record(id=record_id("h", "/var/log/app", i), host="h", path="/var/log/app",
                           offset=i, type="syslog", received_at=now,
                           line=f"Nov 29 10:{i // 60 % 60:02d}:{i % 60:02d} h app[1]: line {i}"))
             for i in range(100_000)]
    client = connect(redis_url)
    for start in range(0, len(items), 5000):
        client.rpush(Keys().raw, *items[start:start + 5000])
    db = tmp_path / "events.db"
    # the step's period made short for the test (10 s in production); one small worker keeps
    # the raw list from ever being empty while the backlog lasts: the pipeline is never idle
    code = ("import sys, indexer.daemon as daemon; daemon.BUSY_MAINTAIN_EVERY_S = 0.3; "
            "from common.cli import main; sys.exit(main(sys.argv[1:]))")
    log = open(tmp_path / "index.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, "index", "--workers", "1",
                             "--batch-size", "100", "--store", f"sqlite:///{db}"],
                            cwd=ROOT, env={**os.environ, "LOGPIPE_REDIS_URL": redis_url},
                            stdout=log, stderr=log)
    counted_while_busy = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            mark = _rollup_mark(db)       # first the mark, then the list: the list only
            waiting = client.llen(Keys().raw)  # shrinks, so it was not empty when the mark moved
            if mark and waiting:
                counted_while_busy = mark
                break
            if not waiting:
                break
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    output = (tmp_path / "index.log").read_text()
    assert proc.returncode == 0, output
    assert counted_while_busy > 0, f"the counts did not move while the backlog lasted\n{output}"
