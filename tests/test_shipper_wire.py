"""The shipper's way to the broker: records framed in one pass, batches pipelined on one connection,
offsets saved in place between registry rewrites."""

from __future__ import annotations

import io

import orjson
import pytest

import logpipe.shipper.encode
from logpipe.common.record import decode
from logpipe.shipper.encode import RecordEncoder
from logpipe.shipper.framing import Framed, Outgoing, frame
from logpipe.shipper.log import Log
from logpipe.shipper.registry import Registry, read_registry
from logpipe.shipper.sender import BrokerUnavailable, RepliesLost, Sender

KEY = "test:wire"


def _region(lines: list[bytes]) -> tuple[list[bytes], bytes]:
    region = b"\n".join(lines) + b"\n"
    parts = region.split(b"\n")
    parts.pop()
    return parts, region


@pytest.mark.parametrize("base", [0, 5, 4090, 9990, 65530, 99_995, 16**7 - 20, 10**9 - 30])
def test_framed_records_are_byte_for_byte_those_of_the_exact_path(monkeypatch, base):
    # short lines so that a chunk crosses powers of 10 (offset digits) and 16 (id digits)
    monkeypatch.setattr(logpipe.shipper.encode.time, "time", lambda: 1700000000.25)
    enc = RecordEncoder("mail1", "/var/log/ma%il.log", "mail", {"env": "p%d"}, "7:42:abcd")
    lines = [b"a", b'q"uote', b"back\\slash", b"tab\there", b"cr\r", b"", b"caf\xc3\xa9 \xe2\x82\xac",
             b"x" * 3] * 4
    parts, region = _region(lines)
    enc.seq = 95  # the ledger's sequence crosses a power of 10 as well
    framed = enc.encode_lines(parts, region, base)
    assert isinstance(framed, Framed)
    assert enc.seq == 95 + len(lines) - 4
    enc.seq = 95
    got = list(framed)  # iterating checks every RESP length against the record
    offs, off = [], base
    for line in parts:
        offs.append(off)
        off += len(line) + 1
    exact = [enc.encode_raw(o, raw) for o, raw in zip(offs, parts)]
    assert got == [r for r in exact if r is not None]
    assert len(framed) == len(got) == len(lines) - 4  # the empty lines are skipped
    rec = decode(got[3], "x")
    assert rec.line == "tab\there" and rec.offset == offs[3] and rec.fields == {"env": "p%d"}
    assert [decode(r, "x").seq for r in got] == list(range(95, 95 + len(got)))


def test_unusual_chunks_take_the_exact_path_and_are_framed_too():
    enc = RecordEncoder("h", "p", "t", {}, "s", max_bytes=8)
    parts, region = _region([b"ok", b"bad \xff", b"ctl \x01", b"far too long a line"])
    framed = enc.encode_lines(parts, region, 0)
    recs = [orjson.loads(v) for v in framed]
    assert [r.get("tags") for r in recs] == [None, ["invalid_utf8"], None, ["truncated"]]
    assert [r["offset"] for r in recs] == [0, 3, 9, 15]


def test_framing_round_trip_and_mistakes():
    values = [b"one", b"", b"three\r\n"]
    part = Framed.of(values)
    assert part.blob == b"$3\r\none\r\n$0\r\n\r\n$7\r\nthree\r\n\r\n" and list(part) == values
    with pytest.raises(ValueError, match="not 4 bytes long"):
        list(Framed(b"$4\r\none\r\n", 1))
    out = Outgoing()
    assert out.add([]) == 0 and not out
    assert out.add(values) == 3 and out.add(Framed.of([b"four"])) == 1
    assert len(out) == 4 and list(out) == values + [b"four"]
    assert frame([b"ab"]) == b"$2\r\nab\r\n"


def test_framed_runs_are_packed_into_commands_of_at_most_per_command_values(redis_url, redis_client):
    sender = Sender(redis_url, KEY, per_command=5)
    redis_client.delete(KEY)
    out = Outgoing()
    for run in ([b"a1", b"a2", b"a3"], [b"b1", b"b2"], [b"c1", b"c2", b"c3", b"c4"], [b"d1"] * 7):
        out.add(Framed.of(run))
    payload, ncmd = sender.pack(out)
    assert ncmd == 3  # a+b (5), c (4: c+d would be 11), d (7: a run is never split)
    assert sender.push(out) == 16
    assert redis_client.lrange(KEY, 0, -1) == list(out)
    redis_client.delete(KEY)
    sender.close()


def test_two_batches_in_flight_keep_their_order_and_replies(redis_url, redis_client):
    sender = Sender(redis_url, KEY)
    redis_client.delete(KEY)
    first = sender.start([b"1", b"2"])
    second = sender.start(Outgoing())
    second_values = Outgoing()
    second_values.add(Framed.of([b"3"]))
    third = sender.start(second_values)
    assert sender.in_flight == 3
    with pytest.raises(RuntimeError, match="out of order"):
        sender.finish(third)
    assert sender.finish(first) == 2
    assert sender.finish(second) == 0  # nothing was written for it: nothing to read
    assert sender.finish(third) == 3
    assert redis_client.lrange(KEY, 0, -1) == [b"1", b"2", b"3"]
    # a retry while a batch is in flight takes that batch's replies along: it is sent again
    lost = sender.start([b"4"])
    assert sender.push([b"5"]) == 5
    with pytest.raises(RepliesLost):
        sender.finish(lost)
    assert issubclass(RepliesLost, BrokerUnavailable)
    assert sender.in_flight == 0
    redis_client.delete(KEY)
    sender.close()


def test_offsets_are_saved_in_place_between_registry_rewrites(tmp_path):
    path = tmp_path / "reg.json"
    reg = Registry(path)
    reg.lock()
    key = reg.add(1, 2, b"first line\n", "/var/log/x", 0)
    reg.save()  # a new file: the registry file itself
    written = path.read_bytes()
    reg.set_offset(key, 11)
    reg.save()  # only offsets moved (within checkpoint_interval): the offsets file
    assert path.read_bytes() == written
    assert Registry(path).load().files[key]["offset"] == 11
    assert read_registry(path)[key]["offset"] == 11  # --status sees it too
    reg.set_offset(key, 1_000_000)
    reg.save()
    reg.set_offset(key, 12_345)  # a shorter text than the one before: padded, still valid JSON
    reg.save()
    assert orjson.loads(reg.offsets_path.read_bytes())["offsets"][key] == 12_345
    assert Registry(path).load().files[key]["offset"] == 12_345
    reg.save(full=True)  # at exit: the registry file holds everything
    assert orjson.loads(path.read_bytes())["files"][key]["offset"] == 12_345
    reg.unlock()


def test_torn_or_stale_offsets_files_are_not_trusted(tmp_path):
    path = tmp_path / "reg.json"
    reg = Registry(path)
    key = reg.add(1, 2, b"first line\n", "/var/log/x", 7)
    reg.save()
    reg.set_offset(key, 20)
    reg.save()
    good = reg.offsets_path.read_bytes()
    reg.offsets_path.write_bytes(good[:len(good) // 2])  # a power loss during the write
    buf = io.StringIO()
    loaded = Registry(path, log=Log(buf, rich=False)).load()
    assert loaded.files[key]["offset"] == 7 and "event=registry_offsets_ignored" in buf.getvalue()
    assert path.exists() and not list(tmp_path.glob("reg.json.corrupt-*"))
    reg.offsets_path.write_bytes(good)
    reg.set_offset(key, 30)
    reg.save(full=True)  # a new generation: the offsets file left behind belongs to the old one
    assert orjson.loads(reg.offsets_path.read_bytes())["offsets"][key] == 20
    assert Registry(path).load().files[key]["offset"] == 30
