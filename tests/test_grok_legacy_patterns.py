"""Logstash's classic (legacy) pattern set: every name exists and compiles, and each family parses
lines written from its format's documentation into Logstash's field names."""

from __future__ import annotations

from pathlib import Path

import pytest

from logpipe.indexer.grok.compiler import compile_grok
from logpipe.indexer.grok.library import Library, builtin_definitions
from logpipe.indexer.grok.matcher import Matcher

NAMES_FILE = Path(__file__).parent / "fixtures" / "logstash_legacy_pattern_names.txt"


def legacy_names() -> list[str]:
    return [w for line in NAMES_FILE.read_text().splitlines() if not line.startswith("#")
            for w in line.split()]


def test_the_fixture_lists_the_317_names_once():
    names = legacy_names()
    assert len(names) == 317 and len(set(names)) == 317


def test_every_legacy_name_is_defined_and_compiles():
    lib = Library()
    missing = [n for n in legacy_names() if n not in lib]
    assert missing == []
    for name in legacy_names():
        assert compile_grok("%{" + name + "}", lib).regex is not None, name


def test_no_name_is_defined_in_two_pattern_files():
    seen: dict[str, str] = {}
    clashes = []
    for path in sorted(Path(builtin_definitions()["WORD"].path).parent.glob("*.grok")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name = line.split()[0]
                if name in seen:
                    clashes.append((name, seen[name], path.name))
                seen[name] = path.name
    assert clashes == []


def parse(pattern: str, line: str) -> dict:
    caps, tags = Matcher([pattern]).match(line)
    assert tags == [], (pattern, line)
    return caps


def subset(caps: dict, expected: dict) -> dict:
    return {k: caps.get(k) for k in expected}


CASES = [
    # --- grok-patterns core ---
    ("%{PATH:p}", "open /var/log/nginx/access.log failed", {"p": "/var/log/nginx/access.log"}),
    ("%{PATH:p}", r"loaded C:\Windows\System32\drivers\etc\hosts", {"p": r"C:\Windows\System32\drivers\etc\hosts"}),
    ("%{UNIXPATH:p}", "cwd=/home/alice/src", {"p": "/home/alice/src"}),
    ("%{WINPATH:p}", r"share \\fileserver\public\report.docx", {"p": r"\\fileserver\public\report.docx"}),
    ("%{TTY:t}", "session opened on /dev/pts/3 by root", {"t": "/dev/pts/3"}),
    ("%{TTY:t}", "getty on /dev/ttyS0", {"t": "/dev/ttyS0"}),
    ("%{TIMESTAMP_CN:t}", "2024-01-02 03:04:05.678 [main] INFO",
     {"t": "2024-01-02 03:04:05.678"}),
    ("%{HTTPDATE:t}", "[02/Mai/2024:10:00:00 +0200]", {"t": "02/Mai/2024:10:00:00 +0200"}),
    ("%{HTTPDATE:t}", "[31/Dez/2024:23:59:59 +0100]", {"t": "31/Dez/2024:23:59:59 +0100"}),
    ("%{MONTH:m}", "am 3 März", {"m": "März"}),
    # --- httpd: a '-' status (client went away before a response) is accepted ---
    ("%{HTTPD_COMBINEDLOG}",
     '192.0.2.1 - - [02/Okt/2024:10:00:00 +0200] "GET / HTTP/1.1" - - "-" "curl/8.0"',
     {"clientip": "192.0.2.1", "timestamp": "02/Okt/2024:10:00:00 +0200", "verb": "GET",
      "response": None, "bytes": None, "agent": '"curl/8.0"'}),
    ("%{HTTPD_COMMONLOG}", '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
     {"clientip": "127.0.0.1", "auth": "frank", "response": "200", "bytes": "2326",
      "request": "/apache_pb.gif", "httpversion": "1.0"}),
    # --- linux-syslog ---
    ("%{SYSLOG5424LINE}",
     '<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 [exampleSDID@32473 iut="3" '
     'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] \'su root\' failed',
     {"syslog5424_pri": "34", "syslog5424_app": "su", "syslog5424_proc": None,
      "syslog5424_msgid": "ID47",
      "syslog5424_sd": '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
                       '[examplePriority@32473 class="high"]',
      "syslog5424_msg": "'su root' failed"}),
    ("%{SYSLOG5424LINE}", '<13>1 2026-11-29T16:14:20.334383+00:00 web1 app 123 - [meta x="a\\]b"] hello',
     {"syslog5424_sd": '[meta x="a\\]b"]', "syslog5424_msg": "hello", "syslog5424_proc": "123"}),
    ("%{SYSLOG5424LINE}", "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - It's time",
     {"syslog5424_host": "192.0.2.1", "syslog5424_sd": None, "syslog5424_msg": "It's time"}),
    ("%{CRONLOG}", "Jan  6 06:25:01 web1 CRON[4242]: (root) CMD (test -x /usr/sbin/anacron)",
     {"program": "CRON", "pid": "4242", "user": "root", "action": "CMD",
      "message": "test -x /usr/sbin/anacron"}),
    ("%{SYSLOGPAMSESSION}",
     "Jan  6 06:25:01 web1 CRON[4242]: pam_unix(cron:session): session opened for user root by (uid=0)",
     {"pam_module": "pam_unix", "pam_caller": "cron:session", "pam_session_state": "opened",
      "username": "root", "pam_by": "(uid=0)"}),
    # --- redis: MONITOR output gives client and port apart ---
    ("%{REDISMONLOG}", '1339518083.107412 [0 127.0.0.1:60866] "keys" "*"',
     {"timestamp": "1339518083.107412", "database": "0", "client": "127.0.0.1", "port": 60866,
      "command": "keys", "params": '"*"'}),
    ("%{REDISMONLOG}", '1339518083.107412 [0 lua] "get" "x"',
     {"client": "lua", "port": None, "command": "get"}),
    ("%{REDISLOG}", "[4018] 14 Nov 07:01:22.119 * Background saving terminated with success",
     {"pid": "4018", "timestamp": "14 Nov 07:01:22.119"}),
    # --- mongodb ---
    ("%{MONGO_SLOWQUERY}",
     'query test.users query: { name: "x" } ntoreturn:0 ntoskip:0 nscanned:10 keyUpdates:0 '
     'numYields: 0 locks(micros) r:1234 nreturned:1 reslen:100 105ms',
     {"database": "test", "collection": "users", "query": '{ name: "x" }', "ntoreturn": "0",
      "ntoskip": "0", "nscanned": "10", "nreturned": "1", "duration": "105"}),
    ("%{MONGO_LOG}", "Mar  4 12:00:01 [conn4] end connection 127.0.0.1:51000",
     {"timestamp": "Mar  4 12:00:01", "component": "conn4", "message": "end connection 127.0.0.1:51000"}),
    ("%{MONGO3_LOG}", "2020-01-02T03:04:05.678+0000 W NETWORK  [conn12] slow",
     {"severity": "W", "component": "NETWORK", "context": "conn12", "message": "slow"}),
    # --- aws ---
    ("%{S3_ACCESS_LOG}",
     '79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 '
     '[06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be '
     '3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - '
     '"-" "S3Console/0.4" -',
     {"bucket": "awsexamplebucket1", "timestamp": "06/Feb/2019:00:00:38 +0000", "clientip": "192.0.2.3",
      "request_id": "3E57427F3EXAMPLE", "operation": "REST.GET.VERSIONING", "key": "-", "verb": "GET",
      "request": "/awsexamplebucket1?versioning", "httpversion": "1.1", "response": 200,
      "bytes": 113, "request_time_ms": 7, "agent": '"S3Console/0.4"', "error_code": None}),
    ("%{ELB_ACCESS_LOG}",
     '2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 '
     '0.000057 200 200 0 29 "GET http://www.example.com:80/path?a=1 HTTP/1.1" "curl/7.38.0" - -',
     {"elb": "my-loadbalancer", "clientip": "192.168.131.39", "clientport": 2817,
      "backendip": "10.0.0.1", "backendport": 80, "request_processing_time": 0.000073,
      "response": 200, "backend_response": 200, "received_bytes": 0, "bytes": 29, "verb": "GET",
      "proto": "http", "urihost": "www.example.com:80", "path": "/path", "params": "?a=1",
      "httpversion": "1.1"}),
    ("%{CLOUDFRONT_ACCESS_LOG}",
     "2019-12-04\t21:02:31\tLAX1-C3\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-"
     "\tMozilla/5.0\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\t"
     "d111111abcdef8.cloudfront.net\thttps\t23\t0.001\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit",
     {"timestamp": "2019-12-04\t21:02:31", "x_edge_location": "LAX1-C3", "sc_bytes": 392,
      "clientip": "192.0.2.100", "cs_method": "GET", "cs_uri_stem": "/index.html", "sc_status": 200,
      "agent": "Mozilla/5.0", "x_edge_result_type": "Hit", "cs_protocol": "https", "cs_bytes": 23,
      "time_taken": 0.001, "ssl_protocol": "TLSv1.2", "x_edge_response_result_type": "Hit"}),
    # --- bacula ---
    ("%{BACULA_LOGLINE}",
     "28-Apr 01:05 backup-dir JobId 1234: Start Backup JobId 1234, Job=nightly.2024-04-28_01.05.00_03",
     {"bts": "28-Apr 01:05", "hostname": "backup-dir", "jobid": "1234",
      "job": "nightly.2024-04-28_01.05.00_03"}),
    ("%{BACULA_LOGLINE}", '28-Apr 01:07 backup-sd JobId 1234: Using Device "FileStorage"',
     {"hostname": "backup-sd", "device": "FileStorage"}),
    ("%{BACULA_LOGLINE}", "28-Apr 02:00 backup-dir JobId 1235: Fatal error: bsock.c:133 Unable to connect "
     "to Client: web1-fd on web1.example.com:9102. ERR=Connection refused",
     {"client": "web1-fd", "berror": "Connection refused"}),
    ("%{BACULA_LOGLINE}", '28-Apr 01:30 backup-dir JobId 1234: Created new Volume "Vol-0042" in catalog.',
     {"volume": "Vol-0042"}),
    ("%{BACULA_LOGLINE}", "28-Apr 01:31 backup-dir JobId 1234: Pruned 3 Jobs for client web1-fd from catalog.",
     {"client": "web1-fd"}),
    # --- bind ---
    ("%{BIND9}", "02-Jan-2024 10:00:00.123 queries: info: client @0x7f2a1c0 192.0.2.1#53001 "
     "(www.example.com): query: www.example.com IN AAAA +E(0)K (192.0.2.53)",
     {"timestamp": "02-Jan-2024 10:00:00.123", "loglevel": "info", "clientip": "192.0.2.1",
      "clientport": 53001,
      # captured twice: Logstash's grok keeps both values
      "query": ["www.example.com", "www.example.com"], "querytype": "AAAA", "dns": "192.0.2.53"}),
    # --- bro ---
    ("%{BRO_CONN}", "1300475167.096535\tCRkUAc3shGS3WCyqkf\t141.142.220.202\t5353\t224.0.0.251\t5353\tudp"
     "\tdns\t-\t-\t-\tS0\t-\t-\t0\tD\t1\t73\t0\t0\t-",
     {"ts": "1300475167.096535", "uid": "CRkUAc3shGS3WCyqkf", "orig_h": "141.142.220.202",
      "orig_p": "5353", "resp_h": "224.0.0.251", "proto": "udp", "service": "dns",
      "conn_state": "S0", "history": "D", "orig_pkts": "1", "orig_ip_bytes": "73",
      "tunnel_parents": "-", "sensorname": None}),
    ("%{BRO_DNS}", "1300475168.853899\tCpNYmtxy4LQYS1bhFb\t141.142.220.118\t43927\t141.142.2.2\t53\tudp"
     "\t39451\twww.google.com\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t"
     "74.125.225.80,74.125.225.81\t288.000000,288.000000\tF",
     {"proto": "udp", "trans_id": "39451", "query": "www.google.com", "qtype_name": "A",
      "rcode_name": "NOERROR", "RD": "T", "answers": "74.125.225.80,74.125.225.81", "rejected": "F"}),
    ("%{BRO_HTTP}", "1300475168.843894\tCmWpSw1bQDCuBAUR63\t141.142.220.118\t48649\t208.80.152.118\t80"
     "\t1\tGET\tbits.wikimedia.org\t/skins-1.5/monobook/main.css\thttp://www.wikipedia.org/\tMozilla/5.0"
     "\t0\t0\t304\tNot Modified\t-\t-\t-\t(empty)\t-\t-\t-\t-\t-\t-\t-",
     {"method": "GET", "domain": "bits.wikimedia.org", "uri": "/skins-1.5/monobook/main.css",
      "status_code": "304", "status_msg": "Not Modified", "bro_tags": "(empty)"}),
    ("%{BRO_FILES}", "1300475168.892913\tFZ9S2c2x4kV5RYFab\t208.80.152.3\t141.142.220.235\tCmWpSw1bQDCuBAUR63"
     "\tHTTP\t0\tSHA1,MD5\ttext/plain\t-\t0.000000\t-\tF\t1349\t1349\t0\t0\tF\t-"
     "\t2b16b9ddb8a5a39a7d2a7f8e2a3f7c2b\td6fbe0b4a1a1f7\t-\t-",
     {"fuid": "FZ9S2c2x4kV5RYFab", "tx_hosts": "208.80.152.3", "source": "HTTP",
      "mime_type": "text/plain", "seen_bytes": "1349", "md5": "2b16b9ddb8a5a39a7d2a7f8e2a3f7c2b"}),
    # --- exim ---
    ("%{EXIM}", '2024-01-02 10:00:00 [1234] 1rABCD-000123-AB <= alice@example.com H=mx.example.com '
     '(helo.example.com) [192.0.2.1]:41000 I=[192.0.2.2]:25 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 '
     'S=1234 id=abc@example.com T="Hello there" for bob@example.net',
     {"exim_year": "2024", "exim_time": "10:00:00", "pid": "1234", "exim_msgid": "1rABCD-000123-AB",
      "exim_flags": "<=", "exim_sender_email": "alice@example.com", "remote_hostname": "mx.example.com",
      "remote_heloname": "helo.example.com", "remote_host": "192.0.2.1", "remote_port": "41000",
      "exim_interface": "192.0.2.2", "exim_interface_port": "25", "protocol": "esmtps",
      "exim_msg_size": "1234", "exim_header_id": "abc@example.com", "exim_subject": '"Hello there"',
      "exim_recipient_email": "bob@example.net"}),
    # --- firewalls ---
    ("%{CISCO_TAGGED_SYSLOG} %{GREEDYDATA:cisco_message}",
     "<166>Jun 22 2012 12:00:00 asa1 : %ASA-6-302013: Built inbound TCP connection 7 for outside:10.1.2.3/4567",
     {"syslog_pri": "166", "timestamp": "Jun 22 2012 12:00:00", "sysloghost": "asa1",
      "ciscotag": "ASA-6-302013"}),
    ("%{CISCOFW302013_302014_302015_302016}",
     "Built inbound TCP connection 7 for outside:10.1.2.3/4567 (10.1.2.3/4567) to inside:192.0.2.1/80 (203.0.113.1/80)",
     {"action": "Built", "direction": "inbound", "protocol": "TCP", "connection_id": "7",
      "src_interface": "outside", "src_ip": "10.1.2.3", "src_port": "4567", "src_mapped_ip": "10.1.2.3",
      "dst_interface": "inside", "dst_ip": "192.0.2.1", "dst_port": "80", "dst_mapped_ip": "203.0.113.1"}),
    ("%{CISCOFW302013_302014_302015_302016}",
     "Teardown TCP connection 7 for outside:10.1.2.3/4567 to inside:192.0.2.1/80 duration 0:00:05 bytes 1234 TCP FINs",
     {"action": "Teardown", "duration": "0:00:05", "bytes": "1234", "reason": "TCP FINs"}),
    ("%{CISCOFW106023}",
     'Deny tcp src outside:10.1.2.3/4567 dst inside:192.0.2.1/22 by access-group "outside_in" [0x0, 0x0]',
     {"action": "Deny", "protocol": "tcp", "src_interface": "outside", "src_ip": "10.1.2.3",
      "src_port": "4567", "dst_ip": "192.0.2.1", "dst_port": "22", "policy_id": "outside_in",
      "hashcode1": "0x0", "hashcode2": "0x0"}),
    ("%{CISCOFW106006_106007_106010}", "Deny inbound UDP from 10.1.2.3/53 to 192.0.2.1/1025 on interface outside",
     {"action": "Deny", "direction": "inbound", "protocol": "UDP", "src_port": "53",
      "interface": "outside"}),
    ("%{CISCOFW106100}", "access-list acl_in permitted tcp inside/10.0.0.1(1234) -> outside/192.0.2.1(80) "
     "hit-cnt 1 first hit [0x1a2b, 0x0]",
     {"policy_id": "acl_in", "action": "permitted", "src_ip": "10.0.0.1", "dst_port": "80",
      "hit_count": "1", "interval": "first hit"}),
    ("%{CISCOFW104001}", "(Primary) Switching to ACTIVE - mate lost", {"switch_reason": "mate lost"}),
    ("%{CISCOFW733100}", "[ Scanning] drop rate-1 exceeded. Current burst rate is 10 per second, max "
     "configured rate is 10; Current average rate is 5 per second, max configured rate is 5; "
     "Cumulative total count is 3000",
     {"drop_type": "Scanning", "drop_rate_id": "rate-1", "drop_total_count": "3000"}),
    ("%{NETSCREENSESSIONLOG}",
     'Jun 22 12:00:00 192.0.2.10 ns5gt: NetScreen device_id=ns5gt  [Root]system-notification-00257(traffic): '
     'start_time="2012-06-22 12:00:00" duration=5 policy_id=2 service=http proto=6 src zone=Trust dst zone=Untrust '
     'action=Permit sent=1200 rcvd=4400 src=10.0.0.5 dst=192.0.2.80 src_port=51000 dst_port=80 '
     'src-xlated ip=203.0.113.9 port=4000 dst-xlated ip=192.0.2.80 port=80 session_id=1234 reason=Close - TCP FIN',
     {"device": "192.0.2.10", "device_id": "ns5gt", "start_time": '"2012-06-22 12:00:00"',
      "service": "http", "action": "Permit", "src_ip": "10.0.0.5", "src_xlated_port": "4000",
      "session_id": "1234", "reason": "Close - TCP FIN"}),
    ("%{SHOREWALL}",
     "May 28 17:23:25 fw kernel: [12345.678] Shorewall:net2fw:DROP:IN=eth0 OUT= "
     "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=198.51.100.7 DST=192.0.2.1 LEN=60 TOS=0x00 "
     "PREC=0x00 TTL=52 ID=12345 DF PROTO=TCP SPT=4567 DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0",
     {"timestamp": "May 28 17:23:25", "nf_host": "fw", "nf_action1": "net2fw", "nf_action2": "DROP",
      "nf_in_interface": "eth0", "nf_out_interface": None, "nf_dst_mac": "00:11:22:33:44:55",
      "nf_src_mac": "66:77:88:99:aa:bb", "nf_src_ip": "198.51.100.7", "nf_dst_ip": "192.0.2.1",
      "nf_len": "60", "nf_ttl": "52", "nf_id": "12345", "nf_protocol": "TCP", "nf_src_port": "4567",
      "nf_dst_port": "22"}),
    ("%{SFW2}",
     "May 28 17:23:25 gw kernel: [ 1234.567890] SFW2-INext-DROP-DEFLT IN=eth0 OUT= "
     "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=198.51.100.7 DST=192.0.2.1 LEN=40 TOS=0x00 "
     "PREC=0x00 TTL=240 ID=54321 PROTO=TCP SPT=40000 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0",
     {"nf_action": "DROP-DEFLT", "nf_in_interface": "eth0", "nf_src_ip": "198.51.100.7",
      "nf_protocol": "TCP", "nf_src_port": "40000", "nf_dst_port": "23"}),
    # --- haproxy ---
    ("%{HAPROXYHTTP}",
     'Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in '
     'static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1"',
     {"client_ip": "10.0.1.2", "accept_date": "06/Feb/2009:12:14:14.655", "haproxy_monthday": "06",
      "haproxy_month": "Feb", "haproxy_year": "2009", "haproxy_hour": "12", "haproxy_second": "14",
      "haproxy_milliseconds": "655", "frontend_name": "http-in", "server_name": "srv1",
      "time_duration": "109", "http_status_code": "200", "captured_request_headers": "1wt.eu",
      "http_verb": "GET", "http_request": "/index.html", "http_version": "1.1"}),
    ("%{HAPROXYTCP}",
     "Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 "
     "0/0/5007 212 -- 0/0/0/0/3 0/0",
     {"frontend_name": "fnt", "backend_name": "bck", "time_duration": "5007", "bytes_read": "212",
      "termination_state": "--"}),
    ("%{HAPROXYERROR}",
     "Dec  3 18:27:14 localhost haproxy[6103]: 127.0.0.1:56059 [03/Dec/2012:17:35:10.380] frt/f1: "
     "Connection error during SSL handshake",
     {"client_port": "56059", "frontend_name": "frt", "bind_name": "f1",
      "error_message": "Connection error during SSL handshake"}),
    # --- java ---
    ("%{TOMCATLOG}", "2014-01-09 20:03:28,269 -0800 | ERROR | com.example.service.ExampleService - something failed",
     {"timestamp": "2014-01-09 20:03:28,269 -0800", "level": "ERROR",
      "class": "com.example.service.ExampleService", "logmessage": "something failed"}),
    ("%{CATALINALOG}", "Jan 9, 2014 7:13:13 AM org.apache.catalina.startup.Catalina start",
     {"timestamp": "Jan 9, 2014 7:13:13 AM", "class": "org.apache.catalina.startup.Catalina",
      "logmessage": "start"}),
    ("%{JAVASTACKTRACEPART}", "\tat java.lang.Thread.run(Thread.java:750)",
     {"class": "java.lang.Thread", "method": "run", "file": "Thread.java", "line": "750"}),
    # --- junos ---
    ("%{RT_FLOW1}",
     "RT_FLOW_SESSION_CLOSE: session closed TCP FIN: 10.0.0.1/52000->192.0.2.7/443 junos-https "
     "203.0.113.5/41000->192.0.2.7/443 src-nat-rule None 6 allow-web trust untrust 40001 12(1500) 10(9000) 30 "
     "UNKNOWN UNKNOWN N/A(N/A) ge-0/0/1.0 UNKNOWN",
     {"event": "RT_FLOW_SESSION_CLOSE", "close-reason": "session closed TCP FIN", "src-ip": "10.0.0.1",
      "src-port": "52000", "dst-ip": "192.0.2.7", "dst-port": "443", "service": "junos-https",
      "nat-src-ip": "203.0.113.5", "nat-src-port": "41000", "protocol-id": "6",
      "policy-name": "allow-web", "from-zone": "trust", "to-zone": "untrust", "session-id": "40001",
      "sent": "1500", "received": "9000", "elapsed-time": "30"}),
    ("%{RT_FLOW2}",
     "RT_FLOW_SESSION_CREATE: session created 10.0.0.1/52000->192.0.2.7/443 junos-https "
     "203.0.113.5/41000->192.0.2.7/443 src-nat-rule None 6 allow-web trust untrust 40001 N/A(N/A) ge-0/0/1.0",
     {"event": "RT_FLOW_SESSION_CREATE", "session-id": "40001", "policy-name": "allow-web"}),
    ("%{RT_FLOW3}",
     "RT_FLOW_SESSION_DENY: session denied 10.0.0.1/52000->192.0.2.7/23 junos-telnet 6(0) deny-all trust untrust "
     "UNKNOWN UNKNOWN N/A(N/A) ge-0/0/1.0",
     {"event": "RT_FLOW_SESSION_DENY", "dst-port": "23", "protocol-id": "6", "policy-name": "deny-all",
      "from-zone": "trust", "to-zone": "untrust"}),
    # --- maven, mcollective, ruby ---
    ("%{MAVEN_VERSION:v}", "deploying 3.8.1-SNAPSHOT now", {"v": "3.8.1-SNAPSHOT"}),
    ("%{MCOLLECTIVE}", "I, [2024-01-02T10:00:00.123456 #1234]  INFO -- : pluginmanager.rb:83 Registering",
     {"timestamp": "2024-01-02T10:00:00.123456", "pid": "1234", "event_level": "INFO"}),
    ("%{MCOLLECTIVEAUDIT}", "2024-01-02T10:00:00.123456+0000: reqid=abc: reqtime=1",
     {"timestamp": "2024-01-02T10:00:00.123456+0000"}),
    ("%{RUBY_LOGGER}", "I, [1999-03-03T02:34:24.895701 #19074]  INFO -- Main: info.",
     {"timestamp": "1999-03-03T02:34:24.895701", "pid": 19074, "loglevel": "INFO",
      "progname": "Main", "message": "info."}),
    # --- nagios ---
    ("%{NAGIOSLOGLINE}", "[1427925600] SERVICE ALERT: web1;HTTP;CRITICAL;HARD;3;Connection refused",
     {"nagios_epoch": "1427925600", "nagios_type": "SERVICE ALERT", "nagios_hostname": "web1",
      "nagios_service": "HTTP", "nagios_state": "CRITICAL", "nagios_statelevel": "HARD",
      "nagios_attempt": "3", "nagios_message": "Connection refused"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] HOST NOTIFICATION: admin;db1;DOWN;notify-host-by-email;PING CRITICAL",
     {"nagios_type": "HOST NOTIFICATION", "nagios_notifyname": "admin", "nagios_hostname": "db1",
      "nagios_state": "DOWN", "nagios_contact": "notify-host-by-email", "nagios_message": "PING CRITICAL"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] CURRENT SERVICE STATE: web1;Disk;OK;HARD;1;DISK OK",
     {"nagios_type": "CURRENT SERVICE STATE", "nagios_statetype": "HARD", "nagios_statecode": "1"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] EXTERNAL COMMAND: DISABLE_SVC_NOTIFICATIONS;web1;HTTP",
     {"nagios_command": "DISABLE_SVC_NOTIFICATIONS", "nagios_hostname": "web1", "nagios_service": "HTTP"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] EXTERNAL COMMAND: ENABLE_HOST_NOTIFICATIONS;db1",
     {"nagios_command": "ENABLE_HOST_NOTIFICATIONS", "nagios_hostname": "db1"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] EXTERNAL COMMAND: "
     "SCHEDULE_HOST_DOWNTIME;db1;1427925600;1427929200;1;0;3600;admin;kernel upgrade",
     {"nagios_command": "SCHEDULE_HOST_DOWNTIME", "nagios_start_time": "1427925600",
      "nagios_duration": "3600", "author": "admin", "comment": "kernel upgrade"}),
    ("%{NAGIOSLOGLINE}", "[1427925600] Warning: Return code of 127 for check of service 'x' was out of bounds.",
     {"nagios_message": "Return code of 127 for check of service 'x' was out of bounds."}),
    # --- postgresql ---
    ("%{POSTGRESQL}", "2024-01-02 03:04:05 UTC alice 65a3f1c2.1f4a 8010 LOG:  connection authorized",
     {"timestamp": "2024-01-02 03:04:05", "user_id": "alice", "connection_id": "65a3f1c2.1f4a",
      "pid": "8010"}),
    # --- rails ---
    ("%{RAILS3}",
     'Started GET "/users/1?x=2" for 127.0.0.1 at 2012-01-02 10:00:00 +0100\n'
     "Processing by UsersController#show as HTML\n"
     '  Parameters: {"id"=>"1"}\n'
     "  User Load (0.2ms)  SELECT * FROM users\n"
     "Completed 200 OK in 79ms (Views: 78.8ms | ActiveRecord: 0.2ms)",
     {"verb": "GET", "request": "/users/1?x=2", "clientip": "127.0.0.1",
      "timestamp": "2012-01-02 10:00:00 +0100", "controller": "UsersController", "action": "show",
      "format": "HTML", "params": '"id"=>"1"', "response": "200", "totalms": 79.0, "viewms": 78.8,
      "activerecordms": 0.2}),
    # --- squid ---
    ("%{SQUID3}", "1286536308.779    180 192.168.0.224 TCP_MISS/200 411 GET http://example.com/ - "
     "HIER_DIRECT/93.184.216.34 text/html",
     {"timestamp": "1286536308.779", "duration": "180", "client_address": "192.168.0.224",
      "cache_result": "TCP_MISS", "status_code": "200", "bytes": "411", "request_method": "GET",
      "url": "http://example.com/", "user": None, "hierarchy_code": "HIER_DIRECT",
      "server": "93.184.216.34", "content_type": "text/html"}),
]


@pytest.mark.parametrize("pattern,line,expected", CASES, ids=[c[0] for c in CASES])
def test_family_lines_give_logstash_fields(pattern, line, expected):
    assert subset(parse(pattern, line), expected) == expected


@pytest.mark.parametrize("pattern,line", [
    ("^%{HTTPD_COMMONLOG}$", '192.0.2.1 - - [02/Foo/2024:10:00:00 +0200] "GET / HTTP/1.1" 200 1'),
    ("^%{TTY}$", "/dev/null"),
    ("^%{RT_FLOW3}$", "RT_FLOW_SESSION_DENY: session created 10.0.0.1/1->10.0.0.2/2 x 6(0) p a b"),
    ("^%{BIND9}$", "02-Jan-2024 10:00:00.123 queries: info: client 192.0.2.1 (x): query: x IN A (192.0.2.53)"),
])
def test_lines_outside_the_format_do_not_match(pattern, line):
    caps, tags = Matcher([pattern]).match(line)
    assert caps is None and tags == ["_grokparsefailure"]
