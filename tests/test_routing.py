"""Routing: a type's events re-typed by a query on their fields, in the search syntax. The
built-in syslog type sends mail programs to `mail` and sshd to `sshd` with no config."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from logpipe.common.errors import ConfigError
from logpipe.common.record import Record
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline, parse_pipeline
from logpipe.query.evaluate import matches
from logpipe.query.lucene import compile_query

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc).timestamp()


def process(pipeline: Pipeline, line: str, rtype: str = "syslog") -> dict:
    return pipeline.process(Record(id="r", line=line, host="collector", path="/var/log/syslog",
                                   type=rtype, received_at=RECEIVED)).doc


MIXED = [
    ("Nov 28 11:59:58 mail1 sendmail[812]: j061bXn5000812: from=<a@b.org>, size=2262, class=0, "
     "nrcpts=1, msgid=<x@b.org>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]",
     "mail", {"qid": "j061bXn5000812", "from": "<a@b.org>", "size": 2262}),
    ("Nov 28 11:59:59 mx2 postfix/smtp[333]: 4BC1D2A0F3: to=<bob@example.net>, "
     "relay=mx.example.net[192.0.2.8]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
     "status=sent (250 ok)", "mail", {"qid": "4BC1D2A0F3", "to": "bob@example.net", "stat": "sent"}),
    ("Nov 28 12:00:00 mail1 dovecot: imap-login: Login: user=<carol>, method=PLAIN, rip=192.0.2.9, "
     "lip=192.0.2.1, mpid=1234, TLS, session=<abcd>", "mail", {"user": "carol", "rip": "192.0.2.9"}),
    ("Nov 28 12:00:00 web1 sshd[4242]: Accepted publickey for alice from 192.0.2.4 port 50022 ssh2",
     "sshd", {"event": "Accepted", "user": "alice", "src_ip": "192.0.2.4"}),
    ("Nov 28 12:00:01 web1 CRON[99]: (root) CMD (run-parts /etc/cron.hourly)",
     "syslog", {"program": "CRON", "pid": 99}),
]


@pytest.mark.parametrize("line,rtype,expected", MIXED, ids=[m[1] + str(i) for i, m in enumerate(MIXED)])
def test_builtin_syslog_routes_mixed_lines_with_no_config(line, rtype, expected):
    pipeline = Pipeline(load_pipeline(None))
    pipeline.compile_all()
    doc = process(pipeline, line)
    assert doc["type"] == rtype and doc["tags"] == []
    assert {k: doc.get(k) for k in expected} == expected
    assert doc["message"] == line and doc["@timestamp"].startswith("2026-11-28T")


def test_a_users_route_in_the_config(tmp_path):
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text("[types.app]\npatterns = ['%{WORD:level} %{GREEDYDATA:text}']\n"
                   "[[types.app.route]]\nwhen = 'level:ERROR AND text:*disk*'\ntype = 'alerts'\n"
                   "[types.alerts]\npatterns = ['%{WORD:level} %{GREEDYDATA:problem}']\n")
    pipeline = Pipeline(load_pipeline(str(cfg)))
    pipeline.compile_all()
    assert process(pipeline, "ERROR disk full", "app")["type"] == "alerts"
    assert process(pipeline, "ERROR disk full", "app")["problem"] == "disk full"
    assert process(pipeline, "INFO disk fine", "app")["type"] == "app"


def test_a_route_that_cannot_be_read_is_a_config_error_naming_the_file():
    with pytest.raises(ConfigError, match="route 1") as err:
        parse_pipeline("[types.a]\n[[types.a.route]]\nwhen = 'program:(a OR'\ntype = 'b'\n",
                       "p.toml")
    assert "p.toml" in str(err.value)


def test_a_route_to_an_unknown_type_stops_the_start():
    pipeline = Pipeline(parse_pipeline("[types.a]\n[[types.a.route]]\nwhen = '*'\n"
                                       "type = 'nowhere'\n", "p.toml"))
    with pytest.raises(ConfigError, match="nowhere"):
        pipeline.compile_all()


@pytest.mark.parametrize("query,doc,expected", [
    ("program:sendmail", {"program": "sendmail"}, True),
    ("program:Sendmail", {"program": "sendmail"}, False),          # exact, case-sensitive
    ("program:postfix*", {"program": "postfix/smtpd"}, True),
    ("size:[1000 TO *]", {"size": 2262}, True),
    ("size:[1000 TO *]", {"size": 999}, False),
    ("_exists_:relay AND NOT stat:Sent", {"relay": "x", "stat": "Deferred"}, True),
    ('"user unknown"', {"message": "<x@y>... User unknown"}, True),
    ("source.address:192.0.2.7", {"source": {"address": "192.0.2.7"}}, True),
    ("tags:_grokparsefailure", {"tags": ["a", "_grokparsefailure"]}, True),
])
def test_queries_read_the_same_as_in_search(query, doc, expected):
    assert matches(compile_query(query), doc) is expected


def test_a_route_keeps_the_source_types_captures_and_adds_its_own():
    pipeline = Pipeline(parse_pipeline(
        "[types.app]\npatterns = ['%{WORD:level} %{WORD:component}: %{GREEDYDATA:text}']\n"
        "[[types.app.route]]\nwhen = 'level:ERROR'\ntype = 'alerts'\n"
        "[types.alerts]\npatterns = ['%{WORD} %{WORD}: %{WORD:problem} %{GREEDYDATA:detail}']\n"))
    doc = process(pipeline, "ERROR disk: full on /var", "app")
    assert doc["type"] == "alerts" and doc["tags"] == []
    assert {k: doc.get(k) for k in ("level", "component", "text", "problem", "detail")} == {
        "level": "ERROR", "component": "disk", "text": "full on /var", "problem": "full",
        "detail": "on /var"}


def test_the_routed_types_capture_wins_over_the_source_types():
    pipeline = Pipeline(parse_pipeline(
        "[types.a]\npatterns = ['%{WORD:kind} %{GREEDYDATA:rest}']\n"
        "[[types.a.route]]\nwhen = 'kind:x'\ntype = 'b'\n"
        "[types.b]\npatterns = ['%{WORD} %{WORD:rest} %{GREEDYDATA:tail}']\n"))
    doc = process(pipeline, "x y z", "a")
    assert (doc["type"], doc["kind"], doc["rest"], doc["tail"]) == ("b", "x", "y", "z")


def test_a_routed_type_whose_patterns_want_the_line_as_received_still_matches():
    pipeline = Pipeline(parse_pipeline(
        "[types.s]\npatterns = ['%{SYSLOGBASE} %{GREEDYDATA:message}']\n"
        "[[types.s.route]]\nwhen = 'program:app'\ntype = 'app'\n"
        "[types.app]\npatterns = ['^%{SYSLOGTIMESTAMP} <%{INT}\\.%{INT:prio}> %{HOSTNAME:h} ']\n"))
    doc = process(pipeline, "Nov 28 11:59:58 <3.4> web1 app[7]: started", "s")
    assert doc["type"] == "app" and doc["tags"] == [] and doc["h"] == "web1"
    assert doc["program"] == "app"
