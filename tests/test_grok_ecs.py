"""ECS mode: `ecs_compatibility = "v1"` on a type gives the ECS field names, stored nested; the
classic names stay the default; import-logstash carries the option over."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from logpipe.indexer.pipeline_config import load_pipeline, parse_pipeline
from logpipe.common.errors import ConfigError
from logpipe.common.record import Record
from logpipe.indexer.grok.compiler import compile_grok
from logpipe.indexer.grok.ecs import ecs_builtin_definitions
from logpipe.indexer.grok.library import Library
from logpipe.indexer.grok.matcher import Matcher
from logpipe.indexer.logstash_import import convert, parse_logstash, toml_dumps
from logpipe.indexer.pipeline import Pipeline

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
      "[bind][log][question][name]": "example.org",
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


# --- the families whose ECS names came later: each line is the classic test's line ---
S3 = ('79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 '
      '[06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be '
      '3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - '
      '"-" "S3Console/0.4" -')
ELB = ('2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 '
       '0.000057 200 200 0 29 "GET http://www.example.com:80/path?a=1 HTTP/1.1" "curl/7.38.0" - -')
BRO_CONN = ("1300475167.096535\tCRkUAc3shGS3WCyqkf\t141.142.220.202\t5353\t224.0.0.251\t5353\tudp"
            "\tdns\t-\t-\t-\tS0\t-\t-\t0\tD\t1\t73\t0\t0\t-")
BRO_FILES = ("1300475168.892913\tFZ9S2c2x4kV5RYFab\t208.80.152.3\t141.142.220.235\tCmWpSw1bQDCuBAUR63"
             "\tHTTP\t0\tSHA1,MD5\ttext/plain\t-\t0.000000\t-\tF\t1349\t1349\t0\t0\tF\t-"
             "\t2b16b9ddb8a5a39a7d2a7f8e2a3f7c2b\td6fbe0b4a1a1f7\t-\t-")
EXIM = ('2024-01-02 10:00:00 [1234] 1rABCD-000123-AB <= alice@example.com H=mx.example.com '
        '(helo.example.com) [192.0.2.1]:41000 I=[192.0.2.2]:25 P=esmtps S=1234 id=abc@example.com '
        'T="Hello there" for bob@example.net')
NETSCREEN = ('Jun 22 12:00:00 192.0.2.10 ns5gt: NetScreen device_id=ns5gt  [Root]system-notification-'
             '00257(traffic): start_time="2012-06-22 12:00:00" duration=5 policy_id=2 service=http proto=6 '
             'src zone=Trust dst zone=Untrust action=Permit sent=1200 rcvd=4400 src=10.0.0.5 '
             'dst=192.0.2.80 src_port=51000 dst_port=80 src-xlated ip=203.0.113.9 port=4000 dst-xlated '
             'ip=192.0.2.80 port=80 session_id=1234 reason=Close - TCP FIN')
SHOREWALL = ("May 28 17:23:25 fw kernel: [12345.678] Shorewall:net2fw:DROP:IN=eth0 OUT= "
             "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=198.51.100.7 DST=192.0.2.1 LEN=60 "
             "TOS=0x00 PREC=0x00 TTL=52 ID=12345 DF PROTO=TCP SPT=4567 DPT=22 WINDOW=29200 RES=0x00 "
             "SYN URGP=0")
SENDMAIL = ("Nov 28 11:59:58 mail1 sendmail[812]: j061bXn5000812: from=<a@b.org>, size=2262, "
            "class=0, nrcpts=1, msgid=<x@b.org>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]")
POSTFIX = ("Nov 28 11:59:59 mx2 postfix/smtp[333]: 4BC1D2A0F3: to=<bob@example.net>, "
           "relay=mx.example.net[192.0.2.8]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
           "status=sent (250 ok)")
DOVECOT = ("Nov 28 12:00:00 mail1 dovecot: imap-login: Login: user=<carol>, method=PLAIN, "
           "rip=192.0.2.9, lip=192.0.2.1, mpid=1234, TLS, session=<abcd>")
SSHD = "Nov 28 12:00:00 web1 sshd[4242]: Accepted publickey for alice from 192.0.2.4 port 50022 ssh2"


@pytest.mark.parametrize("pattern,line,expected", [
    ("%{S3_ACCESS_LOG}", S3,
     {"[aws][s3access][bucket]": "awsexamplebucket1", "[client][ip]": "192.0.2.3",
      "[aws][s3access][operation]": "REST.GET.VERSIONING", "[http][request][method]": "GET",
      "[url][original]": "/awsexamplebucket1?versioning", "[http][response][status_code]": 200,
      "[aws][s3access][bytes_sent]": 113, "[aws][s3access][total_time]": 7,
      "[user_agent][original]": '"S3Console/0.4"', "timestamp": "06/Feb/2019:00:00:38 +0000"}),
    ("%{ELB_ACCESS_LOG}", ELB,
     {"[aws][elb][name]": "my-loadbalancer", "[source][ip]": "192.168.131.39",
      "[source][port]": 2817, "[aws][elb][backend][ip]": "10.0.0.1",
      "[aws][elb][backend][port]": 80, "[aws][elb][request_processing_time][sec]": 0.000073,
      "[http][response][status_code]": 200, "[http][response][body][bytes]": 29,
      "[url][scheme]": "http", "[url][path]": "/path", "[http][request][method]": "GET"}),
    ("%{BACULA_LOGLINE}",
     "28-Apr 01:05 backup-dir JobId 1234: Start Backup JobId 1234, Job=nightly.2024-04-28_01.05.00_03",
     {"timestamp": "28-Apr 01:05", "[host][hostname]": "backup-dir", "[bacula][job][id]": 1234,
      "[bacula][job][name]": "nightly.2024-04-28_01.05.00_03"}),
    ("%{BACULA_LOGLINE}", "28-Apr 02:00 backup-dir JobId 1235: Fatal error: bsock.c:133 Unable to "
     "connect to Client: web1-fd on web1.example.com:9102. ERR=Connection refused",
     {"[bacula][client][name]": "web1-fd", "[error][message]": "Connection refused"}),
    ("%{BRO_CONN}", BRO_CONN,
     {"timestamp": "1300475167.096535", "[zeek][session_id]": "CRkUAc3shGS3WCyqkf",
      "[source][ip]": "141.142.220.202", "[source][port]": 5353,
      "[destination][ip]": "224.0.0.251", "[network][transport]": "udp",
      "[network][protocol]": "dns", "[zeek][connection][state]": "S0",
      "[source][packets]": "1", "[source][bytes]": "73"}),
    ("%{BRO_FILES}", BRO_FILES,   # Logstash's ECS set leaves files.log's names alone
     {"timestamp": "1300475168.892913", "fuid": "FZ9S2c2x4kV5RYFab", "source": "HTTP",
      "mime_type": "text/plain", "duration": "0.000000"}),
    ("%{EXIM}", EXIM,
     {"[process][pid]": 1234, "[exim][log][message][id]": "1rABCD-000123-AB",
      "[exim][log][flags]": "<=", "[exim][log][sender][email]": "alice@example.com",
      "[client][address]": "mx.example.com", "[exim][log][remote_address]": "helo.example.com",
      "[client][ip]": "192.0.2.1", "[client][port]": 41000, "[exim][log][host][ip]": "192.0.2.2",
      "[exim][log][host][port]": 25, "[network][protocol]": "esmtps",
      "[exim][log][message][size]": 1234, "[exim][log][header_id]": "abc@example.com",
      "[exim][log][recipient][email]": "bob@example.net"}),
    ("%{CISCOFW106023}",
     'Deny tcp src outside:10.1.2.3/4567 dst inside:192.0.2.1/22 by access-group "outside_in" [0x0, 0x0]',
     {"[cisco][asa][outcome]": "Deny", "[cisco][asa][network][transport]": "tcp",
      "[observer][ingress][interface][name]": "outside", "[source][ip]": "10.1.2.3",
      "[source][port]": 4567, "[destination][ip]": "192.0.2.1", "[destination][port]": 22,
      "[cisco][asa][rule_name]": "outside_in"}),
    ("%{CISCOFW302013_302014_302015_302016}", "Teardown TCP connection 7 for outside:10.1.2.3/4567 "
     "to inside:192.0.2.1/80 duration 0:00:05 bytes 1234 TCP FINs",
     {"[cisco][asa][outcome]": "Teardown", "[cisco][asa][duration]": "0:00:05",
      "[network][bytes]": 1234, "[event][reason]": "TCP FINs"}),
    ("%{NETSCREENSESSIONLOG}", NETSCREEN,
     {"timestamp": "Jun 22 12:00:00", "[observer][hostname]": "192.0.2.10",
      "[netscreen][device_id]": "ns5gt", "[netscreen][session][duration]": 5,
      "[observer][ingress][zone]": "Trust", "[event][action]": "Permit",
      "[source][bytes]": 1200, "[destination][bytes]": 4400, "[source][address]": "10.0.0.5",
      "[destination][port]": 80, "[source][nat][ip]": "203.0.113.9", "[source][nat][port]": 4000,
      "[netscreen][session][reason]": "Close - TCP FIN"}),
    ("%{SHOREWALL}", SHOREWALL,
     {"[observer][hostname]": "fw", "[shorewall][firewall][type]": "net2fw",
      "[shorewall][firewall][action]": "DROP", "[observer][ingress][interface][name]": "eth0",
      "[source][mac]": "66:77:88:99:aa:bb", "[source][ip]": "198.51.100.7",
      "[iptables][ttl]": 52, "[network][transport]": "TCP", "[destination][port]": 22}),
    ("%{POSTGRESQL}", "2024-01-02 03:04:05 UTC alice 65a3f1c2.1f4a 8010 LOG:  connection authorized",
     {"timestamp": "2024-01-02 03:04:05", "[user][name]": "alice",
      "[postgresql][log][connection_id]": "65a3f1c2.1f4a", "[process][pid]": 8010}),
    ("%{SENDMAIL_MESSAGE}", SENDMAIL,
     {"[email][local_id]": "j061bXn5000812", "[email][from][address]": "<a@b.org>",
      "[mail][size]": 2262, "[email][message_id]": "<x@b.org>", "[network][protocol]": "ESMTP",
      "[mail][relay][hostname]": "localhost", "[mail][relay][ip]": "127.0.0.1",
      "[process][name]": "sendmail", "[process][pid]": 812, "[host][hostname]": "mail1"}),
    ("%{POSTFIX_MESSAGE}", POSTFIX,
     {"[email][local_id]": "4BC1D2A0F3", "[email][to][address]": "bob@example.net",
      "[mail][relay][hostname]": "mx.example.net", "[mail][relay][port]": 25,
      "[mail][status]": "sent", "[mail][dsn]": "2.0.0", "[mail][status_message]": "250 ok"}),
    ("%{DOVECOT_LOGIN}", DOVECOT,
     {"[user][name]": "carol", "[mail][auth][method]": "PLAIN", "[source][ip]": "192.0.2.9",
      "[destination][ip]": "192.0.2.1", "[service][name]": "imap"}),
    ("%{SSHDLINE}", SSHD,
     {"[system][auth][ssh][event]": "Accepted", "[system][auth][ssh][method]": "publickey",
      "[user][name]": "alice", "[source][ip]": "192.0.2.4", "[source][port]": 50022,
      "[process][pid]": 4242}),
], ids=["s3", "elb", "bacula", "bacula-conn", "bro-conn", "bro-files", "exim", "asa-106023",
        "asa-302014", "netscreen", "shorewall", "postgresql", "sendmail", "postfix", "dovecot",
        "sshd"])
def test_ecs_names_of_the_later_families(pattern, line, expected):
    caps, tags = Matcher([pattern], ecs=True).match(line)
    assert tags == [] and {k: caps.get(k) for k in expected} == expected
    classic_only = [k for k in caps if not k.startswith("[") and k not in (
        "timestamp", "message", "exim_year", "exim_month", "exim_day", "exim_time",
        "fuid", "tx_hosts", "rx_hosts", "conn_uids", "source", "depth", "analyzers", "mime_type",
        "filename", "duration", "local_orig", "is_orig", "seen_bytes", "total_bytes",
        "missing_bytes", "overflow_bytes", "timedout", "parent_fuid", "md5", "sha1", "sha256",
        "extracted")]
    assert classic_only == []


def test_the_builtin_mail_type_in_ecs_mode_stores_email_fields_nested():
    cfg = load_pipeline(None)
    cfg.types["mail"] = dataclasses.replace(cfg.types["mail"], ecs_compatibility="v1")
    doc = Pipeline(cfg).process(Record(id="r", line=SENDMAIL, host="mail1", type="mail",
                                       received_at=RECEIVED)).doc
    assert doc["email"] == {"local_id": "j061bXn5000812", "from": {"address": "<a@b.org>"},
                            "message_id": "<x@b.org>"}
    assert doc["mail"]["relay"] == {"hostname": "localhost", "ip": "127.0.0.1"}
    assert doc["process"] == {"name": "sendmail", "pid": 812} and "qid" not in doc
    assert doc["@timestamp"].startswith("2026-11-28T11:59:58")
