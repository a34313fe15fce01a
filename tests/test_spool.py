"""The syslog spool on its own: order across segments, confirmed position kept across reopen,
a torn tail cut off, private files, and the size the cap is checked against."""

from __future__ import annotations

import os
import stat

from logpipe.shipper.spool import Spool


def _recs(a: int, b: int) -> list[bytes]:
    return [b'{"n":%d}' % i for i in range(a, b)]


def test_records_come_back_in_order_across_segments_and_acks_free_them(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=1000).open()
    for i in range(0, 300, 10):
        spool.append(_recs(i, i + 10), durable=True)
    got: list[bytes] = []
    while True:
        values, pos = spool.read(7)
        if not values:
            break
        got += values
        spool.ack(pos)
    assert got == _recs(0, 300)
    assert spool.size == 0
    assert len([p for p in os.listdir(tmp_path / "s") if p.startswith("seg-")]) == 1
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    for p in (tmp_path / "s").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_unconfirmed_records_survive_a_reopen_and_a_torn_tail_is_cut(tmp_path):
    spool = Spool(tmp_path / "s", segment_bytes=500).open()
    spool.append(_recs(0, 100))
    values, pos = spool.read(40)
    spool.ack(pos)              # 0..39 confirmed
    spool.read(30)              # read, never confirmed (the agent was killed)
    spool.close()
    last = max(p for p in (tmp_path / "s").iterdir() if p.name.startswith("seg-"))
    with open(last, "ab") as f:
        f.write(b"\x00\x00\x00\x20\x01\x02")   # a record cut by a crash mid-write
    again = Spool(tmp_path / "s", segment_bytes=500).open()
    assert again.recovered == 60 and again.cut == 6
    got: list[bytes] = []
    while values := again.read(1000)[0]:
        got += values
    assert got == _recs(40, 100)
    again.append(_recs(100, 101))
    assert again.read(10)[0] == _recs(100, 101)


def test_size_counts_what_is_not_confirmed(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=4096).open()
    rec = b"x" * 1000
    for _ in range(4):
        spool.append([rec])
    assert not spool.full()
    spool.append([rec])
    assert spool.full()
    _, pos = spool.read(3)
    spool.ack(pos)
    assert not spool.full() and spool.size == 2 * 1008
