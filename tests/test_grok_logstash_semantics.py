"""The last differences from Logstash's grok, each checked through the engine and through
`logpipe grok parse`: a name captured twice keeps every value; `-` placeholders; tab-separated
Bro/Zeek lines; RFC 5424 structured data; sendmail's `relay=[IP] [IP]`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from logpipe.common.record import Record
from logpipe.indexer.grok.cli import app
from logpipe.indexer.grok.matcher import Matcher
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline

runner = CliRunner()


def parse(args: list[str], lines: list[str]) -> list[dict]:
    r = runner.invoke(app, ["parse", *args], input="".join(line + "\n" for line in lines))
    assert r.exit_code == 0, r.output
    return [json.loads(x) for x in r.output.splitlines()]


# --- the same name captured twice -------------------------------------------------------------

def test_a_name_captured_twice_keeps_both_values_in_pattern_order():
    m = Matcher(["%{WORD:x} %{WORD:x}"])
    assert m.match("first second")[0] == {"x": ["first", "second"]}
    assert parse(["-p", "%{WORD:x} %{WORD:x}"], ["first second"]) == [
        {"message": "first second", "x": ["first", "second"]}]


def test_conversions_apply_per_capture():
    m = Matcher(["%{INT:n:int} %{INT:n} %{NUMBER:n:float}"])
    assert m.match("1 2 3.5")[0] == {"n": [1, "2", 3.5]}


def test_only_the_captures_that_took_part_count():
    # branches of an alternation never take part together: one value, not a list
    m = Matcher(["(?:%{INT:v:int}|%{WORD:v}) end"])
    assert m.match("12 end")[0] == {"v": 12}
    assert m.match("abc end")[0] == {"v": "abc"}
    # an optional second capture that did not take part leaves a single value
    m = Matcher(["%{WORD:w}(?: %{INT:w})?$"])
    assert m.match("abc")[0] == {"w": "abc"}
    assert m.match("abc 7")[0] == {"w": ["abc", "7"]}


def test_a_repeated_group_gives_its_last_iteration():
    m = Matcher(["^(?:%{WORD:w} )+end"])
    assert m.match("a b c end")[0] == {"w": "c"}


def test_raw_named_groups_and_references_with_one_name_are_one_field():
    m = Matcher(["(?<k>[a-z]+)=%{INT:k}"])
    assert m.match("abc=5")[0] == {"k": ["abc", "5"]}


def test_bind9_keeps_both_query_names_as_logstash_does():
    line = ("02-Jan-2024 10:00:00.123 queries: info: client @0x7f2a 192.0.2.1#53001 "
            "(www.example.com): query: www.example.com IN A + (192.0.2.53)")
    [row] = parse(["-p", "%{BIND9}"], [line])
    assert row["query"] == ["www.example.com", "www.example.com"]
    assert row["querytype"] == "A" and row["clientport"] == 53001


def test_a_list_capture_goes_through_the_pipeline_into_the_event(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[types.pair]\npatterns = ['%{WORD:x} %{WORD:x} %{INT:n:int}']\n")
    event = Pipeline(load_pipeline(cfg)).process(Record(id="r1", line="a b 3", type="pair", host="h"))
    assert event is not None
    assert event.doc["x"] == ["a", "b"] and event.doc["n"] == 3
    assert "_grokparsefailure" not in event.doc["tags"]


# --- `-` placeholders --------------------------------------------------------------------------

APACHE_DASHES = '192.0.2.7 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 304 - "-" "-"'


def test_dash_placeholders_as_logstash_keeps_them():
    # HTTPDUSER matches "-": ident and auth keep the string "-"; bytes is written
    # `(?:%{NUMBER:bytes}|-)`, so a "-" leaves no bytes field; a quoted "-" is the string "\"-\""
    [row] = parse(["-p", "%{COMBINEDAPACHELOG}"], [APACHE_DASHES])
    assert row["ident"] == "-" and row["auth"] == "-"
    assert "bytes" not in row
    assert row["response"] == "304"
    assert row["referrer"] == '"-"' and row["agent"] == '"-"'


def test_the_builtin_apache_type_keeps_dashes_and_converts_only_real_numbers():
    pipeline = Pipeline(load_pipeline(None))
    event = pipeline.process(Record(id="r1", line=APACHE_DASHES, type="apache", host="web1"))
    assert event is not None
    assert event.doc["ident"] == "-" and event.doc["auth"] == "-"
    assert "bytes" not in event.doc          # convert on an absent field does nothing
    assert event.doc["response"] == 304
    with_bytes = APACHE_DASHES.replace(" 304 - ", " 200 512 ")
    event = pipeline.process(Record(id="r1", line=with_bytes, type="apache", host="web1"))
    assert event is not None and event.doc["bytes"] == 512


# --- tab-separated Bro/Zeek lines ------------------------------------------------------------

ZEEK_CONN = "\t".join([
    "1700000000.123456", "CHhAvVGS1DHFjwGM9", "2001:db8::1", "49152", "2001:db8::53", "53",
    "udp", "dns", "0.001234", "40", "120", "SF", "-", "-", "0", "Dd", "1", "68", "1", "148",
    "(empty)"])


def test_a_tab_separated_zeek_conn_line_parses():
    [row] = parse(["-p", "%{BRO_CONN}"], [ZEEK_CONN])
    assert "tags" not in row
    assert row["orig_h"] == "2001:db8::1" and row["resp_p"] == "53"
    assert row["proto"] == "udp" and row["service"] == "dns"
    assert row["local_orig"] == "-" and row["tunnel_parents"] == "(empty)"
    # spaces instead of tabs are not the format
    [row] = parse(["-p", "%{BRO_CONN}"], [ZEEK_CONN.replace("\t", " ")])
    assert row["tags"] == ["_grokparsefailure"]


def test_a_zeek_http_line_with_empty_and_dash_columns():
    line = "\t".join([
        "1700000001.5", "CmWpSw1bQDCuBAUR63", "192.0.2.10", "48649", "198.51.100.80", "80", "1",
        "GET", "example.com", "/index.html", "-", "curl/8.0", "0", "1024", "200", "OK", "-", "-",
        "-", "(empty)", "-", "-", "-", "-", "-", "FakJ2l1", "text/html"])
    [row] = parse(["-p", "%{BRO_HTTP}"], [line])
    assert row["method"] == "GET" and row["uri"] == "/index.html" and row["user_agent"] == "curl/8.0"
    assert row["status_code"] == "200" and row["resp_mime_types"] == "text/html"


# --- RFC 5424 structured data ---------------------------------------------------------------

SD = '[exampleSDID@32473 iut="3" eventSource="App \\"x\\""][examplePriority@32473 class="high"]'
RFC5424 = f"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 {SD} hello"


def test_rfc5424_structured_data_lands_in_syslog5424_sd():
    [row] = parse(["-p", "%{SYSLOG5424LINE}"], [RFC5424])
    assert row["syslog5424_sd"] == SD and row["syslog5424_msg"] == "hello"
    [row] = parse(["--type", "syslog"], [RFC5424])
    assert row["syslog5424_sd"] == SD and row["message"] == "hello"
    assert row["program"] == "evntslog" and row["pid"] == "1234"


def test_rfc5424_without_structured_data_has_no_sd_field():
    [row] = parse(["--type", "syslog"], [RFC5424.replace(SD, "-")])
    assert "syslog5424_sd" not in row and row["message"] == "hello"


# --- sendmail relay=[IP] [IP] ----------------------------------------------------------------

def sendmail(kv: str) -> str:
    return ("Jun  1 12:00:00 mx sendmail[123]: u51C0A0a012345: from=<a@example.org>, size=10, "
            f"class=0, nrcpts=1, proto=ESMTP, daemon=MTA, {kv}")


def test_sendmail_relay_without_a_host_name_gives_relay_too():
    rows = parse(["--type", "mail"], [
        sendmail("relay=[192.0.2.1] [192.0.2.1]"),
        sendmail("relay=[192.0.2.1]"),
        sendmail("relay=mx.example.org. [192.0.2.2] (may be forged)"),
        sendmail("relay=localhost"),
    ])
    got = [(r.get("relay"), r.get("relayip")) for r in rows]
    assert got == [("192.0.2.1", "192.0.2.1"), (None, "192.0.2.1"),
                   ("mx.example.org.", "192.0.2.2"), ("localhost", None)]
    assert all("tags" not in r for r in rows)
