"""ECS mode: `ecs_compatibility = "v1"` on a type gives the ECS field names, stored nested; the
classic names stay the default; import-logstash carries the option over."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from indexer.pipeline_config import parse_pipeline
from common.errors import ConfigError
from common.record import Record
from indexer.grok.compiler import compile_grok
from indexer.grok.ecs import ecs_builtin_definitions
from indexer.grok.library import Library
from indexer.grok.matcher import Matcher
from indexer.logstash_import import convert, parse_logstash, toml_dumps
from indexer.pipeline import Pipeline

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc).timestamp()
ACCESS = ('192.0.2.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
          '"http://www.example.com/start.html" "Mozilla/4.08"')


def test_every_definition_compiles_in_ecs_mode():
    lib = Library(ecs=True)
    for name in ecs_builtin_definitions():
        assert compile_grok("%{" + name + "}", lib).regex is not None, name


@pytest.mark.parametrize("pattern,line,expected", [
    ("%{HTTPD_COMBINEDLOG}", ACCESS,
     {"[source][address]": "192.0.2.7", "[user][name]": "frank",
      "[http][request][method]": "GET", "[url][original]": "/apache_pb.gif",
      "[http][version]": "1.0", "[http][response][status_code]": 200,
      "[http][response][body][bytes]": 2326, "[user_agent][original]": '"Mozilla/4.08"',
      "timestamp": "10/Oct/2000:13:55:36 -0700"}),
    ("%{SYSLOGBASE}", "Jan  6 02:37:32 Jupiter sshd[809]: x",
     {"timestamp": "Jan  6 02:37:32", "[host][hostname]": "Jupiter", "[process][name]": "sshd",
      "[process][pid]": 809}),
    ("%{SYSLOG5424LINE}", "<165>1 2003-10-11T22:14:15.003Z host1 evntslog 42 ID47 - An event",
     {"[log][syslog][priority]": 165, "timestamp": "2003-10-11T22:14:15.003Z",
      "[host][hostname]": "host1", "[process][name]": "evntslog", "[process][pid]": 42,
      "[event][code]": "ID47", "message": "An event"}),
    ("%{BIND9}", "02-Jan-2024 10:00:00.123 queries: info: client 192.0.2.1#53001 (example.org): "
     "query: example.org IN A + (192.0.2.53)",
     {"[client][ip]": "192.0.2.1", "[client][port]": 53001, "[dns][question][name]": "example.org",
      "[dns][question][type]": "A", "[server][ip]": "192.0.2.53", "[log][level]": "info"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] SERVICE ALERT: web1;HTTP;CRITICAL;HARD;3;refused",
     {"timestamp": "1427925600", "[host][hostname]": "web1", "[service][name]": "HTTP",
      "[nagios][log][status]": "CRITICAL", "[nagios][log][type]": "SERVICE ALERT",
      "message": "refused"}),
    ("%{RT_FLOW3}", "RT_FLOW_SESSION_DENY: session denied 10.0.0.1/52000->192.0.2.7/23 junos-telnet "
     "6(0) deny-all trust untrust UNKNOWN",
     {"[juniper][srx][tag]": "RT_FLOW_SESSION_DENY", "[source][ip]": "10.0.0.1",
      "[destination][port]": 23, "[rule][name]": "deny-all", "[observer][ingress][zone]": "trust"}),
])
def test_ecs_field_names(pattern, line, expected):
    caps, tags = Matcher([pattern], ecs=True).match(line)
    assert tags == [] and {k: caps.get(k) for k in expected} == expected


def test_classic_names_stay_the_default():
    caps, _ = Matcher(["%{HTTPD_COMBINEDLOG}"]).match(ACCESS)
    assert caps["clientip"] == "192.0.2.7" and caps["response"] == "200"


def test_a_type_in_ecs_mode_stores_nested_fields():
    cfg = parse_pipeline("[types.web]\npatterns = ['%{HTTPD_COMBINEDLOG}']\n"
                         "ecs_compatibility = 'v1'\n"
                         "[types.web.date]\nfield = 'timestamp'\nformats = ['HTTPDATE']\n")
    assert cfg.types["web"].ecs_compatibility == "v1"
    doc = Pipeline(cfg).process(Record(id="r", line=ACCESS, host="web1", path="/a.log",
                                       type="web", received_at=RECEIVED)).doc
    assert doc["source"] == {"address": "192.0.2.7"}
    assert doc["http"]["response"] == {"status_code": 200, "body": {"bytes": 2326}}
    assert doc["http"]["request"]["method"] == "GET" and doc["url"]["original"] == "/apache_pb.gif"
    assert doc["@timestamp"] == "2000-10-10T20:55:36.000Z"
    assert doc["host"] == "web1" and doc["message"] == ACCESS and doc["tags"] == []


def test_ecs_host_capture_does_not_replace_the_record_host():
    cfg = parse_pipeline("[types.s]\npatterns = ['%{SYSLOGBASE} %{GREEDYDATA:rest}']\n"
                         "ecs_compatibility = 'v8'\n")
    doc = Pipeline(cfg).process(Record(id="r", line="Jan  6 02:37:32 Jupiter sshd[809]: x",
                                       host="collector", type="s",
                                       received_at=RECEIVED)).doc
    assert doc["host"] == "collector" and doc["grok_host"] == {"hostname": "Jupiter"}
    assert doc["process"] == {"name": "sshd", "pid": 809}


def test_unknown_ecs_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="ecs_compatibility"):
        parse_pipeline("[types.web]\npatterns = ['%{WORD}']\necs_compatibility = 'v2'\n", "p.toml")


def test_import_logstash_carries_ecs_compatibility():
    text = ('filter {\n  grok {\n    match => { "message" => "%{HTTPD_COMBINEDLOG}" }\n'
            '    ecs_compatibility => "v1"\n  }\n}\n')
    plugins, _ = parse_logstash(text, "ls.conf")
    doc, notes = convert(plugins, "ls.conf")
    (name, body), = doc["types"].items()
    assert body["ecs_compatibility"] == "v1"
    assert not [n for n in notes if "ecs_compatibility" in n]
    cfg = parse_pipeline(toml_dumps(doc))
    assert cfg.types[name].ecs_compatibility == "v1"
