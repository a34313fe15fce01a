"""Compression on the wire with a real Valkey: a `logpipe ship --compress` agent and a plain one
ship into the same list, a foreign plain line and a corrupt compressed item sit beside them; the
indexer stores every record once, the ledger shows no gaps, and the corrupt item is a dead letter
(stage decode) with its reason."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest

from logpipe.common.wire import MARKER, is_packed, pack, unpack
from logpipe.indexer.dlq import DeadLetterQueue
from tests.integration.test_ledger import _index, _stats
from tests.integration.test_shipper_helpers import ship_cmd

pytestmark = pytest.mark.integration


def _ship(tmp_path, redis_url, raw: str, name: str, lines: list[str], *flags: str) -> None:
    log = tmp_path / f"{name}.log"
    log.write_text("".join(line + "\n" for line in lines))
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / name), "LOGPIPE_REDIS_URL": redis_url}
    r = subprocess.run(ship_cmd("--once", "--list", raw, "--registry", str(tmp_path / f"{name}.reg"),
                                "--batch-lines", "1000", *flags, str(log)),
                       capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr


def test_compressed_and_plain_shippers_into_one_list(tmp_path, redis_url, redis_client):
    raw = "wire:raw"
    far = [f"far line {i:05d} postfix/smtp[1]: to=<u{i}@example.org>, status=sent" for i in range(2500)]
    near = [f"near line {i:05d} sshd[2]: Accepted publickey for u{i}" for i in range(700)]
    _ship(tmp_path, redis_url, raw, "far", far, "--compress")
    _ship(tmp_path, redis_url, raw, "near", near)
    items = redis_client.lrange(raw, 0, -1)
    packed = [x for x in items if is_packed(x)]
    assert sum(len(unpack(x)) for x in packed) == 2500 and len(packed) >= 2500 // 200  # runs of <= 200
    print(f"on the wire: far (compressed) {sum(map(len, packed)):,} bytes for 2500 lines; "
          f"near (plain) {sum(len(x) for x in items if not is_packed(x)):,} bytes for 700 lines")
    assert len(items) - len(packed) == 700
    redis_client.rpush(raw, b"a foreign plain line from rsyslog omhiredis")
    bad = pack(b"$3\r\nabc\r\n", 1)
    redis_client.rpush(raw, bad[:-4] + b"\xff\xff\xff\xff")  # a corrupt compressed item
    store = f"sqlite:///{tmp_path}/events.db"
    _index(redis_url, store, raw)

    with sqlite3.connect(tmp_path / "events.db") as db:
        stored = [json.loads(d)["message"] for (d,) in db.execute("SELECT doc FROM events")]
    assert sorted(stored) == sorted(far + near + ["a foreign plain line from rsyslog omhiredis"])
    ledger = _stats(redis_url, raw, tmp_path / "home")["ledger"]
    assert sorted(e["records"] for e in ledger) == [700, 2500]
    assert all(e["gaps"] == 0 and not e["lost"] for e in ledger), ledger
    (letter,) = list(DeadLetterQueue(redis_client).iter())
    assert letter.stage == "decode" and "compressed item" in letter.reason, letter.reason
    assert letter.record.startswith(MARKER)  # kept as it came, for replay once understood
    assert redis_client.llen(raw) == 0
