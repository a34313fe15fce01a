"""The shipped pattern library: every definition compiles; known names give known fields."""

from __future__ import annotations

import pytest

from logpipe.indexer.grok.compiler import compile_grok
from logpipe.indexer.grok.library import Library, builtin_definitions
from logpipe.indexer.grok.matcher import Matcher

CORE = ("WORD NOTSPACE SPACE DATA GREEDYDATA INT POSINT NONNEGINT NUMBER BASE10NUM BASE16NUM "
        "BASE16FLOAT QUOTEDSTRING QS UUID USERNAME USER EMAILLOCALPART EMAILADDRESS IP IPV4 IPV6 "
        "HOSTNAME IPORHOST HOSTPORT MAC URI URIPROTO URIHOST URIPATH URIPARAM URIPATHPARAM MONTH "
        "MONTHNUM MONTHDAY DAY YEAR HOUR MINUTE SECOND TIME DATE_US DATE_EU DATE DATESTAMP TZ "
        "ISO8601_TIMEZONE SYSLOGTIMESTAMP HTTPDATE TIMESTAMP_ISO8601 SYSLOGHOST PROG SYSLOGPROG "
        "SYSLOGFACILITY SYSLOGBASE SYSLOGLINE SYSLOG5424PRI SYSLOG5424LINE COMMONAPACHELOG "
        "COMBINEDAPACHELOG HTTPD_ERRORLOG NGINXACCESS JAVASTACKTRACEPART HAPROXYHTTP REDISLOG "
        "POSTGRESQL MONGO3_LOG LOGLEVEL").split()


def test_core_names_present_and_every_definition_compiles():
    lib = Library()
    missing = [n for n in CORE if n not in lib]
    assert missing == []
    for name, d in builtin_definitions().items():
        c = compile_grok("%{" + name + "}", lib)
        assert c.regex is not None, name
        assert d.path.endswith(".grok") and d.line


def test_stdlib_re_and_regex_agree_on_the_corpus():
    from tests.conftest import corpus_file
    lines = corpus_file("linux.log").read_text().splitlines()[:300] + \
        corpus_file("mail_extra.log").read_text().splitlines()
    lib = Library()
    for name in ("SYSLOGLINE", "SYSLOGBASE", "COMBINEDAPACHELOG", "SENDMAIL_MESSAGE",
                 "POSTFIX_MESSAGE", "IPORHOST", "TIMESTAMP_ISO8601"):
        c = compile_grok("%{" + name + "}", lib)
        assert c.fast is not None
        for line in lines:
            a, b = c.fast.search(line), c.regex.search(line)
            assert (a and a.groups()) == (b and b.groups()), (name, line)


@pytest.mark.parametrize("pattern,line,expected", [
    ("%{COMBINEDAPACHELOG}",
     '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
     '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
     {"clientip": "127.0.0.1", "ident": "-", "auth": "frank",
      "timestamp": "10/Oct/2000:13:55:36 -0700", "verb": "GET", "request": "/apache_pb.gif",
      "httpversion": "1.0", "response": "200", "bytes": "2326",
      "referrer": '"http://www.example.com/start.html"',
      "agent": '"Mozilla/4.08 [en] (Win98; I ;Nav)"'}),
    ("%{COMMONAPACHELOG}", '::1 - - [01/Jan/2024:00:00:00 +0000] "-" 408 -',
     {"clientip": "::1", "ident": "-", "auth": "-", "timestamp": "01/Jan/2024:00:00:00 +0000",
      "rawrequest": "-", "response": "408"}),
    ("%{SYSLOGBASE}", "Jan  6 02:37:32 Jupiter sendmail[809]: x",
     {"timestamp": "Jan  6 02:37:32", "logsource": "Jupiter", "program": "sendmail",
      "pid": "809"}),
    ("%{SYSLOG5424LINE}",
     '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
     '[exampleSDID@32473 iut="3" eventSource="Application"] An application event',
     {"syslog5424_pri": "165", "syslog5424_ver": "1", "syslog5424_ts": "2003-10-11T22:14:15.003Z",
      "syslog5424_host": "mymachine.example.com", "syslog5424_app": "evntslog",
      "syslog5424_msgid": "ID47",
      "syslog5424_sd": '[exampleSDID@32473 iut="3" eventSource="Application"]',
      "syslog5424_msg": "An application event"}),
    ("%{HTTPD_ERRORLOG}",
     "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
     {"timestamp": "Sun Dec 04 04:47:44 2005", "loglevel": "error",
      "message": "mod_jk child workerEnv in error state 6"}),
    ("%{HTTPD_ERRORLOG}",
     "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] "
     "[client 72.15.99.187:5678] AH00124: File does not exist: /favicon.ico",
     {"timestamp": "Wed Oct 11 14:32:52.123456 2000", "module": "core", "loglevel": "error",
      "pid": "35708", "tid": "4328636416", "clientip": "72.15.99.187", "clientport": "5678",
      "errorcode": "AH00124", "message": "File does not exist: /favicon.ico"}),
    ("%{JAVASTACKTRACEPART}", "\tat com.example.Foo.bar(Foo.java:42)",
     {"class": "com.example.Foo", "method": "bar", "file": "Foo.java", "line": "42"}),
    ("%{REDISLOG3}", "1234:M 14 Nov 2019 07:23:06.231 * Ready to accept connections",
     {"pid": "1234", "role": "M", "timestamp": "14 Nov 2019 07:23:06.231", "level": "*",
      "message": "Ready to accept connections"}),
    ("%{POSTGRESQL}", "2024-01-02 03:04:05.678 UTC [4242] LOG:  checkpoint starting: time",
     {"timestamp": "2024-01-02 03:04:05.678", "timezone": "UTC", "pid": "4242", "level": "LOG",
      "message": "checkpoint starting: time"}),
    ("%{MONGO3_LOG}", "2020-01-02T03:04:05.678+0000 I NETWORK  [conn12] end connection",
     {"timestamp": "2020-01-02T03:04:05.678+0000", "severity": "I", "component": "NETWORK",
      "context": "conn12", "message": "end connection"}),
    ("%{URI:u}", "see https://user@example.com:8080/a/b?x=1&y=2 now",
     {"u": "https://user@example.com:8080/a/b?x=1&y=2", "port": "8080"}),
    ("%{EMAILADDRESS:e} %{UUID:id} %{MAC:mac}",
     "bob.smith+x@mail.example.org 123e4567-e89b-12d3-a456-426614174000 00:1A:2b:3c:4D:5e",
     {"e": "bob.smith+x@mail.example.org", "id": "123e4567-e89b-12d3-a456-426614174000",
      "mac": "00:1A:2b:3c:4D:5e"}),
])
def test_patterns_give_logstash_field_names(pattern, line, expected):
    caps, tags = Matcher([pattern]).match(line)
    assert tags == [] and caps == expected


@pytest.mark.parametrize("addr,ok", [("10.0.0.1", True), ("255.255.255.255", True),
                                     ("fe80::1", True), ("2001:db8::ff00:42:8329", True),
                                     ("::ffff:192.0.2.1", True), ("1:2:3:4:5:6:7:8", True),
                                     ("256.1.1.1", False), ("host.example", False)])
def test_ip(addr, ok):
    caps, _ = Matcher([r"^%{IP:ip}$"]).match(addr)
    assert (caps == {"ip": addr}) if ok else caps is None


def test_haproxy_http_line():
    line = ('Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] '
            'http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 '
            '"GET /index.html HTTP/1.1"')
    caps, _ = Matcher(["%{HAPROXYHTTP}"]).match(line)
    assert caps["client_ip"] == "10.0.1.2" and caps["backend_name"] == "static"
    assert caps["http_status_code"] == "200" and caps["http_request"] == "/index.html"
    assert caps["program"] == "haproxy" and caps["time_duration"] == "109"
