"""Syslog as forwarders send it: each frame goes through the agent's syslog input (the code that
builds records) and the indexer's pipeline, and the event has the sender's host, program, pid,
@timestamp from the header, the bare text as `message` and the frame as received in
`syslog.frame`. Frames are written from each sender's documented format: rsyslog's
RSYSLOG_ForwardFormat, RSYSLOG_TraditionalForwardFormat and RSYSLOG_SyslogProtocol23Format,
syslog-ng's network() (BSD) and syslog() (RFC 5424) destinations."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from logpipe.common.record import decode
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline
from logpipe.shipper.inputs.syslog import SyslogInput


def events_for(frames: list[bytes]) -> list[dict]:
    spec = SimpleNamespace(queue_size=100, max_bytes=65536, listen=[], type=None, fields={},
                           where="test")
    ctx = SimpleNamespace(host="collector", log=None)
    syslog_input = SyslogInput(spec, ctx)
    now = time.time()
    values = [syslog_input.encode("udp", "127.0.0.1", frame, now) for frame in frames]  # no TLS peer
    pipeline = Pipeline(load_pipeline(None))
    return [pipeline.process(decode(value, "x")).doc for value in values]


FRAMES = [
    # rsyslog RSYSLOG_ForwardFormat: "<%PRI%>%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag:1:32%%msg%"
    (b"<13>2026-11-29T16:14:20.334383+00:00 web7 myapp[4242]: disk almost full",
     {"host": "web7", "program": "myapp", "pid": 4242, "@timestamp": "2026-11-29T16:14:20.334Z",
      "message": "disk almost full"}),
    # rsyslog relaying an RFC 5424 message in that frame writes its tag as APP-NAME[PROCID], no ':'
    (b"<13>2026-11-29T16:14:20.5+00:00 web8 app-x[1000] fwd message 0",
     {"host": "web8", "program": "app-x", "pid": 1000, "message": "fwd message 0"}),
    # RSYSLOG_TraditionalForwardFormat: "<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg%"
    (b"<86>Nov 29 16:14:21 db2 sshd[811]: Accepted publickey for alice from 192.0.2.4 port 50022",
     {"type": "sshd", "host": "db2", "program": "sshd", "pid": 811, "user": "alice", "message":
      "Accepted publickey for alice from 192.0.2.4 port 50022"}),
    # RSYSLOG_SyslogProtocol23Format: "<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME%
    # %PROCID% %MSGID% %STRUCTURED-DATA% %msg%"
    (b"<14>1 2026-11-29T16:14:22.5+01:00 app3 billing 77 - - invoice 12 sent",
     {"host": "app3", "program": "billing", "pid": 77, "@timestamp": "2026-11-29T15:14:22.500Z",
      "message": "invoice 12 sent"}),
    (b'<165>1 2026-11-29T16:14:23Z app4 evntslog - ID47 [exampleSDID@32473 iut="3"] \xef\xbb\xbfAn event',
     {"host": "app4", "program": "evntslog", "msgid": "ID47", "message": "An event",
      "syslog5424_sd": '[exampleSDID@32473 iut="3"]'}),
    # syslog-ng network() destination (legacy BSD, "<PRI>$BSDDATE $HOST $MSGHDR$MSG")
    (b"<30>Nov 29 16:14:24 gw1 dnsmasq[312]: query[A] example.org from 10.0.0.7",
     {"host": "gw1", "program": "dnsmasq", "pid": 312, "message": "query[A] example.org from 10.0.0.7"}),
    # a central stream: mail and sshd lines are routed to their types and keep the bare text
    (b"<22>Nov 29 16:14:26 mx1 sendmail[812]: j061bXn5000812: from=<a@b.org>, size=2262, class=0, "
     b"nrcpts=1, msgid=<x@b.org>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]",
     {"type": "mail", "host": "mx1", "program": "sendmail", "pid": 812, "qid": "j061bXn5000812",
      "message": "j061bXn5000812: from=<a@b.org>, size=2262, class=0, nrcpts=1, msgid=<x@b.org>, "
                 "proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]"}),
    # syslog-ng syslog() destination (RFC 5424, "$ISODATE $HOST $PROGRAM $PID $MSGID $SDATA $MSG")
    (b"<30>1 2026-11-29T16:14:25+00:00 gw1 dnsmasq 312 - - reply example.org is 93.184.216.34",
     {"host": "gw1", "program": "dnsmasq", "pid": 312, "@timestamp": "2026-11-29T16:14:25.000Z",
      "message": "reply example.org is 93.184.216.34"}),
]


@pytest.mark.parametrize("frame,expected", FRAMES, ids=[f[0][:24].decode() for f in FRAMES])
def test_forwarded_frame_becomes_an_event_with_the_header_fields(frame, expected):
    doc, = events_for([frame])
    assert {k: doc.get(k) for k in expected} == expected
    assert doc["syslog"]["frame"] == frame.decode("utf-8")
    assert "_grokparsefailure" not in doc["tags"]
    assert doc["path"] == "syslog+udp://127.0.0.1"


def test_a_frame_without_a_header_keeps_its_text_and_the_peer_as_host():
    doc, = events_for([b"<13>just some words"])
    assert doc["message"] == "just some words" and doc["host"] == "127.0.0.1"
    assert doc["syslog"]["frame"] == "<13>just some words"


MAIL_TEXT = ("j061bXn5000812: from=<a@b.org>, size=2262, class=0, nrcpts=1, msgid=<x@b.org>, "
             "proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]")


@pytest.mark.parametrize("frame", [
    # RSYSLOG_SyslogProtocol23Format (RFC 5424) from a central rsyslog
    b"<22>1 2026-11-29T16:14:26.5+00:00 mx1 sendmail 812 - - " + MAIL_TEXT.encode(),
    # RSYSLOG_TraditionalForwardFormat (BSD)
    b"<22>Nov 29 16:14:26 mx1 sendmail[812]: " + MAIL_TEXT.encode(),
    # RSYSLOG_ForwardFormat (RFC 3339 stamp in a BSD frame)
    b"<22>2026-11-29T16:14:26.5+00:00 mx1 sendmail[812]: " + MAIL_TEXT.encode(),
], ids=["rfc5424", "bsd", "rfc3339"])
def test_a_routed_mail_line_is_parsed_as_mail_whatever_the_frame(frame):
    doc, = events_for([frame])
    assert doc["type"] == "mail" and doc["tags"] == []
    expected = {"host": "mx1", "program": "sendmail", "pid": 812, "qid": "j061bXn5000812",
                "from": "<a@b.org>", "size": 2262, "nrcpts": 1, "relay": "localhost",
                "relayip": "127.0.0.1", "message": MAIL_TEXT}
    assert {k: doc.get(k) for k in expected} == expected
    assert doc["@timestamp"].startswith("2026-11-29T16:14:26")


def test_a_routed_rfc5424_sshd_line_is_parsed_as_sshd():
    doc, = events_for([b"<38>1 2026-11-29T16:14:27Z db2 sshd 811 - - Failed password for root "
                       b"from 198.51.100.9 port 40022 ssh2"])
    assert doc["type"] == "sshd" and doc["tags"] == []
    assert {k: doc.get(k) for k in ("event", "user", "src_ip", "src_port", "pid", "host")} == {
        "event": "Failed", "user": "root", "src_ip": "198.51.100.9", "src_port": 40022,
        "pid": 811, "host": "db2"}


def test_an_rfc5424_mail_line_read_from_a_file_is_routed_and_parsed():
    from logpipe.common.record import Record
    line = "<22>1 2026-11-29T16:14:26.5+00:00 mx1 sendmail 812 - - " + MAIL_TEXT
    doc = Pipeline(load_pipeline(None)).process(Record(
        id="r", line=line, host="collector", path="/var/log/central.log", type="syslog",
        received_at=time.time())).doc
    assert doc["type"] == "mail" and doc["tags"] == []
    assert doc["qid"] == "j061bXn5000812" and doc["relay"] == "localhost"
    assert doc["message"] == line and doc["host"] == "collector"
