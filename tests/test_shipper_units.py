"""Shipper parts in isolation: record encoding, multiline, registry, config, syslog parsing."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from logpipe.common.errors import ConfigError
from logpipe.common.record import decode, record_id
from logpipe.shipper.encode import RecordEncoder
from logpipe.shipper.lines import LineStream
from logpipe.shipper.log import Log
from logpipe.shipper.multiline import Multiline, MultilineSpec
from logpipe.shipper.registry import Registry, RegistryLocked


def _encode(region: bytes, **kw) -> list[dict]:
    enc = RecordEncoder("mail1", "/var/log/maillog", "mail", {"env": "prod"}, "7:42:abcd", **kw)
    lines = region.split(b"\n")
    lines.pop()
    return [orjson.loads(v) for v in enc.encode_lines(lines, region, 1000)]


def test_records_follow_the_wire_format_and_stable_ids():
    recs = _encode(b'plain line\nwith "quotes" and \\ and \ttab\r\n')
    assert [r["line"] for r in recs] == ["plain line", 'with "quotes" and \\ and \ttab']
    assert [r["offset"] for r in recs] == [1000, 1011]
    assert list(recs[0]) == ["id", "host", "path", "offset", "seq", "type", "fields", "received_at", "line"]
    assert [r["seq"] for r in recs] == [0, 1]  # the ledger sequence, contiguous per source
    assert recs[0]["id"] == record_id("mail1", "7:42:abcd", 1000)
    assert recs[1]["id"] == record_id("mail1", "7:42:abcd", 1011)
    assert recs[0]["host"] == "mail1" and recs[0]["type"] == "mail"
    assert recs[0]["fields"] == {"env": "prod"}
    back = decode(orjson.dumps(recs[1]), "fallback")
    assert back.id == recs[1]["id"] and back.line == recs[1]["line"] and back.offset == 1011


def test_invalid_utf8_control_chars_and_long_lines_are_tagged():
    recs = _encode(b"ok\nbad \xff byte\nctl \x01 char\n" + b"x" * 40 + "é".encode() + b"\n",
                   max_bytes=41)
    assert recs[0] == {**recs[0], "line": "ok"} and "tags" not in recs[0]
    assert recs[1]["line"] == "bad \ufffd byte" and recs[1]["tags"] == ["invalid_utf8"]
    assert recs[2]["line"] == "ctl \x01 char" and "tags" not in recs[2]
    assert recs[3]["line"] == "x" * 40 and recs[3]["tags"] == ["truncated"]  # cut before é


def test_empty_lines_skipped_unless_asked():
    assert [r["line"] for r in _encode(b"a\n\n\r\nb\n")] == ["a", "b"]
    assert [r["line"] for r in _encode(b"a\n\nb\n", keep_empty=True)] == ["a", "", "b"]
    assert [r["offset"] for r in _encode(b"a\n\nb\n")] == [1000, 1003]


def test_line_stream_waits_for_newline_and_cuts_overlong_lines():
    enc = RecordEncoder("h", "p", "t", {}, "s", max_bytes=16)
    st = LineStream(enc, 0)
    st.feed(b"first\nsecond wi")
    assert [orjson.loads(v)["line"] for v in st.take(100, 0)] == ["first"]
    assert st.resume_offset == 6  # the unterminated line is read again after a restart
    st.feed(b"thout")
    assert st.take(100, 0) == []  # 14 bytes, no newline yet: wait
    st.feed(b" end")               # 18 bytes: over max_bytes, cut at 16, the rest is skipped
    (rec,) = [orjson.loads(v) for v in st.take(100, 0)]
    assert rec["line"] == "second without e" and rec["tags"] == ["truncated"]
    assert rec["offset"] == 6 and st.resume_offset == 6
    st.feed(b"y" * 100)
    assert st.take(100, 0) == []
    st.feed(b"zz\nnext\n")
    assert [orjson.loads(v)["line"] for v in st.take(100, 0)] == ["next"]
    st.feed(b"tail")
    assert [orjson.loads(v)["line"] for v in st.flush(0)] == ["tail"]


@pytest.mark.parametrize("spec,lines,expected", [
    # Java stack trace: indented lines belong to the line before
    (MultilineSpec(r"^\s", match="after"),
     ["Exception in x", "  at a.b", "  at c.d", "next event", "  at e"],
     ["Exception in x\n  at a.b\n  at c.d", "next event\n  at e"]),
    # every event starts with a date; other lines are appended
    (MultilineSpec(r"^\d{4}-", negate=True, match="after"),
     ["2024-01-01 start", "more", "more2", "2024-01-02 next"],
     ["2024-01-01 start\nmore\nmore2", "2024-01-02 next"]),
    # trailing backslash continues onto the next line
    (MultilineSpec(r"\\$", match="before"),
     ["a \\", "b \\", "c", "d"], ["a \\\nb \\\nc", "d"]),
    # lines not starting with "end" are prepended to the next "end" line
    (MultilineSpec(r"^end", negate=True, match="before"),
     ["x", "y", "end1", "end2"], ["x\ny\nend1", "end2"]),
])
def test_multiline_models(spec, lines, expected):
    ml = Multiline(spec)
    out = []
    for i, line in enumerate(lines):
        out += ml.feed(i * 100, line.encode(), now=0)
    out += ml.expire(0, force=True)
    assert [e[1].decode() for e in out] == expected
    assert out[0][0] == 0


def test_multiline_bounds_and_timeout():
    ml = Multiline(MultilineSpec(r"^\s", max_lines=3, timeout=5))
    out = []
    for i, line in enumerate(["head", " 1", " 2", " 3", " 4"]):
        out += ml.feed(i, line.encode(), now=0)
    assert out == [(0, b"head\n 1\n 2", ("multiline_split",))]  # nothing dropped
    assert ml.expire(now=4.9) == []
    assert ml.expire(now=5.0) == [(3, b" 3\n 4", ())]


def test_registry_atomic_save_load_and_lock(tmp_path):
    path = tmp_path / "reg.json"
    reg = Registry(path)
    reg.lock()
    key = reg.add(1, 2, b"first line\n", "/var/log/x", 0)
    reg.set_offset(key, 11)
    reg.save()
    assert not (tmp_path / "reg.json.tmp").exists()
    other = Registry(path)
    with pytest.raises(RegistryLocked, match="another shipper"):
        other.lock()
    reg.unlock()
    loaded = Registry(path).load()
    assert loaded.files[key]["offset"] == 11 and loaded.files[key]["fp_len"] == 11


def test_corrupt_registry_moved_aside_with_warning(tmp_path):
    import io
    path = tmp_path / "reg.json"
    path.write_text("{not json")
    buf = io.StringIO()
    reg = Registry(path, log=Log(buf, rich=False)).load()
    assert reg.files == {}
    assert "event=registry_corrupt" in buf.getvalue()
    assert len(list(tmp_path.glob("reg.json.corrupt-*"))) == 1 and not path.exists()


def test_config_file_inputs_and_errors(tmp_path):
    from logpipe.shipper.config import load_config
    cfg = tmp_path / "s.toml"
    cfg.write_text("""
[shipper]
redis = "redis://:pw@broker:6379/0"
list = "custom:raw"
batch_lines = 500

[[input]]
input = "file"
paths = ["/var/log/maillog"]
type = "mail"
fields = { env = "prod" }

[input.multiline]
pattern = '^\\s'

[[input]]
input = "syslog"
listen = ["udp://127.0.0.1:5514"]
""")
    cfg.chmod(0o600)  # it holds a password (tests/test_private_files.py: refused otherwise)
    c = load_config(cfg)
    assert c.list_key == "custom:raw" and c.batch_lines == 500
    assert [i.input for i in c.inputs] == ["file", "syslog"]
    assert c.inputs[0].multiline.pattern == r"^\s" and c.inputs[0].fields == {"env": "prod"}

    cfg.write_text('[shipper]\nbatch_lines = 5\n\n[[input]]\ninput = "file"\npaths = ["/x"]\n'
                   '\n[[input]]\ninput = "file"\npahts = ["/y"]\n')
    with pytest.raises(ConfigError, match=r"s\.toml:10: \[\[input\]\] #2: unknown key 'pahts'"):
        load_config(cfg)
    cfg.write_text('[shipper]\nbatch_lines = "many"\n')
    with pytest.raises(ConfigError, match=r"s\.toml:2: .*'batch_lines' must be an integer"):
        load_config(cfg)
    cfg.write_text('[[input]]\ninput = "kafka"\n')
    with pytest.raises(ConfigError, match=r"s\.toml:2: .*unknown input 'kafka'"):
        load_config(cfg)
    cfg.write_text('[[input]]\ninput = "file"\npaths = ["/x"]\n[input.multiline]\n'
                   'pattern = "(unclosed"\n')
    with pytest.raises(ConfigError, match=r"s\.toml:5: .*not a valid regular expression"):
        load_config(cfg)


def test_syslog_parsing_rfc3164_and_rfc5424():
    from logpipe.shipper.inputs.syslog import parse
    p = parse("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick")
    assert p["format"] == "rfc3164" and p["facility"] == "auth" and p["severity"] == "crit"
    assert p["hostname"] == "mymachine" and p["appname"] == "su" and p["procid"] == "123"
    p = parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
              '[exampleSDID@32473 iut="3" eventSource="Application"] \ufeffAn application event')
    assert p["format"] == "rfc5424" and p["facility"] == "local4" and p["severity"] == "notice"
    assert p["hostname"] == "mymachine.example.com" and p["appname"] == "evntslog"
    assert p["msgid"] == "ID47" and "procid" not in p
    assert p["message"] == "An application event"


def test_ship_imports_nothing_from_indexer():
    code = ("import sys\n"
            "from common.cli import main\n"
            "assert main(['ship', '--status']) == 0\n"
            "import shipper.agent, shipper.inputs.file, shipper.inputs.stdin, "
            "shipper.inputs.syslog, shipper.status\n"
            "bad = sorted(m for m in sys.modules if m == 'indexer' or m.startswith('indexer.')"
            " or m.split('.')[0] in ('rq', 'elasticsearch', 'regex', 'luqum'))\n"
            "print('BAD', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "BAD []" in out.stdout, out.stdout + out.stderr


def test_the_shipped_sample_config_loads():
    from pathlib import Path

    from logpipe.shipper.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "deploy" / "shipper.toml")
    mail = next(i for i in cfg.inputs if i.type == "mail")
    assert mail.fields["timezone"] == "Europe/Paris"
    assert any(i.multiline for i in cfg.inputs)


def test_agent_waits_for_an_absent_broker_with_backoff_on_its_clock(tmp_path):
    """The agent's loops read time from one injected clock: an outage of a minute is waited out
    (with growing delays, one log line) in no real time, and a stop request ends the wait."""
    import socket

    from logpipe.common.loop import FakeClock
    from logpipe.shipper.agent import Agent
    from logpipe.shipper.config import ShipperConfig

    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Log:
        def __init__(self):
            self.events = []

        def info(self, event, **fields):
            self.events.append(event)

        warning = info

    class StopAfterAMinute(FakeClock):
        def sleep(self, seconds):
            super().sleep(seconds)
            if self.time - 1000.0 >= 60:
                agent.stopping = True

    log, clock = Log(), StopAfterAMinute()
    agent = Agent(ShipperConfig(registry=tmp_path / "registry", host="h").validate(),
                  f"redis://127.0.0.1:{port}/0", log, "logpipe:raw", clock=clock)
    try:
        assert agent._wait_for_broker() is False  # stopped while the broker was away
    finally:
        agent.sender.close()
    assert log.events == ["broker_down"]  # once, not at every retry
    assert 60 <= clock.time - 1000.0 < 61
    assert all(s <= 0.1 for s in clock.sleeps)  # a stop is heard within a tenth of a second
