"""The gaps issue 22's chain left, closed against what Logstash does: boolean operators mixed
without parentheses as Logstash's compiler combines them, the date filter on a list value,
date locales, the importer's first grok (its common options on success only), routes as a
leading conditional, and a condition that runs out of time through the real worker path."""

from __future__ import annotations

import itertools

import pytest

from logpipe.common.errors import ConfigError
from logpipe.indexer.conditions import compile_condition

BOOLS = (False, True)


def _doc(**values):
    return {k: 1 for k, v in values.items() if v}


# --- boolean operators without parentheses ---------------------------------------------------
# Logstash (logstash-core/lib/logstash/compiler/lscl.rb, Condition#join_conditions) combines a
# chain of operators with a shunting yard: "and" has precedence 2, "or" 1; "xor" and "nand"
# have none (its precedence() raises), so a chain mixing them with another operator is refused.

@pytest.mark.parametrize("a,b,c", list(itertools.product(BOOLS, repeat=3)))
def test_and_binds_tighter_than_or(a, b, c):
    doc = _doc(a=a, b=b, c=c)
    assert compile_condition("[a] or [b] and [c]")(doc, []) is (a or (b and c))
    assert compile_condition("[a] and [b] or [c]")(doc, []) is ((a and b) or c)


@pytest.mark.parametrize("a,b", list(itertools.product(BOOLS, repeat=2)))
def test_negation_takes_only_its_operand(a, b):
    assert compile_condition("![a] and [b]")(_doc(a=a, b=b), []) is ((not a) and b)
    assert compile_condition("!([a] and [b])")(_doc(a=a, b=b), []) is (not (a and b))


def test_the_shunting_yard_pops_one_operator_at_a_time_as_logstash_does():
    # a or b and c and d or e: Logstash builds a or (b and ((c and d) or e)), so with only e
    # true the condition is false (a textbook parser would say true)
    test = compile_condition("[a] or [b] and [c] and [d] or [e]")
    assert test({"e": 1}, []) is False
    assert test({"b": 1, "e": 1}, []) is True
    assert test({"c": 1, "d": 1}, []) is False
    assert test({"a": 1}, []) is True


@pytest.mark.parametrize("condition", ["[a] xor [b] or [c]", "[a] or [b] xor [c]",
                                       "[a] nand [b] and [c]", "[a] xor [b] xor [c]"])
def test_xor_and_nand_in_a_chain_are_refused_as_logstash_refuses_them(condition):
    with pytest.raises(ConfigError, match=r"x\.conf:4: condition .*without parentheses"):
        compile_condition(condition, "x.conf", 4)


@pytest.mark.parametrize("a,b,c", list(itertools.product(BOOLS, repeat=3)))
def test_xor_with_parentheses(a, b, c):
    doc = _doc(a=a, b=b, c=c)
    assert compile_condition("([a] xor [b]) or [c]")(doc, []) is ((a != b) or c)
    assert compile_condition("[a] xor ([b] or [c])")(doc, []) is (a != (b or c))
    assert compile_condition("[a] nand [b]")(doc, []) is (not (a and b))


# --- the importer's first grok: its common options on success only ---------------------------

from datetime import datetime, timezone  # noqa: E402

from logpipe.common.record import Record  # noqa: E402
from logpipe.indexer.logstash_import import convert, parse_logstash, toml_dumps  # noqa: E402
from logpipe.indexer.pipeline import Pipeline, event_for_line  # noqa: E402
from logpipe.indexer.pipeline_config import parse_pipeline, read_pipeline  # noqa: E402

RECEIVED = datetime(2024, 3, 20, 12, 0, tzinfo=timezone.utc).timestamp()
RECEIVED_ISO = "2024-03-20T12:00:00.000Z"

HEAD_GROK = r'''
input { file { path => "/var/log/app.log" type => "app" } }
filter {
  grok {
    match => { "message" => "^%{WORD:level}: %{GREEDYDATA:rest}$" }
    add_tag => [ "parsed_%{level}" ]
    add_field => { "origin" => "app-%{level}" }
    remove_field => [ "rest" ]
  }
}
'''


def _imported(text: str, name: str = "app.conf"):
    plugins, parse_notes = parse_logstash(text, name)
    doc, notes = convert(plugins, name)
    return parse_pipeline(toml_dumps(doc), "pipeline.toml"), toml_dumps(doc), parse_notes + notes


def _event(cfg, line: str, type_name: str = "app"):
    return Pipeline(cfg).process(Record(id="r", line=line, host="h", path="/var/log/app.log",
                                        type=type_name, received_at=RECEIVED))


def test_the_first_groks_common_options_apply_when_it_matched():
    cfg, text, _ = _imported(HEAD_GROK)
    assert cfg.types["app"].patterns == ["^%{WORD:level}: %{GREEDYDATA:rest}$"]  # fast path kept
    doc = _event(cfg, "WARN: disk almost full").doc
    assert doc["tags"] == ["parsed_WARN"]
    assert doc["origin"] == "app-WARN" and "rest" not in doc and doc["level"] == "WARN"


def test_the_first_groks_common_options_do_not_apply_when_it_failed():
    cfg, _, _ = _imported(HEAD_GROK)
    doc = _event(cfg, "no level here").doc
    assert doc["tags"] == ["_grokparsefailure"]
    assert "origin" not in doc and "level" not in doc


def test_a_date_after_the_first_groks_add_field_reads_the_added_field():
    text = r'''
filter {
  grok { match => { "message" => "^%{DATE_EU:d} %{TIME:t} %{GREEDYDATA:rest}$" }
         add_field => { "ts" => "%{d} %{t}" } }
  date { match => [ "ts", "dd.MM.yy HH:mm:ss" ] }
}
'''
    cfg, _, _ = _imported(text)
    doc = _event(cfg, "05.03.24 10:11:12 started", "default").doc
    assert doc["@timestamp"] == "2024-03-05T10:11:12.000Z" and doc["tags"] == []


# --- the date filter on a list (a name grok captured twice) ----------------------------------
# Logstash's date filter (logstash-filter-date's DateFilter.java) hands the field's value to
# each format's executor; a text executor refuses anything but a string, a numeric one anything
# but a string or a number: an array fails every format and the event is tagged.

TWICE = """
[types.twice]
patterns = ['^%{SYSLOGTIMESTAMP:ts} %{SYSLOGTIMESTAMP:ts} %{GREEDYDATA:rest}$']
[types.twice.date]
field = 'ts'
formats = ['syslog']
"""


def _cfg(tmp_path, text: str, name: str = "p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_type_date_on_a_list_is_a_date_parse_failure(tmp_path):
    path = _cfg(tmp_path, TWICE)
    event = event_for_line("Mar  5 10:11:12 Mar  5 10:11:13 two stamps", str(path), "twice",
                           received_at=RECEIVED)
    assert event.doc["ts"] == ["Mar  5 10:11:12", "Mar  5 10:11:13"]
    assert event.doc["@timestamp"] == RECEIVED_ISO
    assert event.doc["tags"] == ["_dateparsefailure"]


def test_a_date_filter_on_a_list_is_a_date_parse_failure(tmp_path):
    path = _cfg(tmp_path, """
[types.twice]
patterns = ['^%{SYSLOGTIMESTAMP:ts} %{SYSLOGTIMESTAMP:ts} %{GREEDYDATA:rest}$']
[[types.twice.filter]]
date = { match = ['ts', 'MMM  d HH:mm:ss', 'MMM dd HH:mm:ss'], add_tag = ['dated'] }
""")
    event = event_for_line("Mar  5 10:11:12 Mar  5 10:11:13 two stamps", str(path), "twice",
                           received_at=RECEIVED)
    assert event.doc["@timestamp"] == RECEIVED_ISO
    assert event.doc["tags"] == ["_dateparsefailure"]


def test_a_number_is_read_by_unix_formats_only(tmp_path):
    path = _cfg(tmp_path, """
[types.epoch]
patterns = ['^%{NUMBER:epoch:int} %{GREEDYDATA:rest}$']
[types.epoch.date]
field = 'epoch'
formats = ['UNIX']
[types.joda]
patterns = ['^%{NUMBER:year:int} %{GREEDYDATA:rest}$']
[types.joda.date]
field = 'year'
formats = ['yyyy']
""")
    event = event_for_line("1709633472 x", str(path), "epoch", received_at=RECEIVED)
    assert event.doc["@timestamp"] == "2024-03-05T10:11:12.000Z" and event.doc["tags"] == []
    event = event_for_line("2023 x", str(path), "joda", received_at=RECEIVED)
    assert event.doc["@timestamp"] == RECEIVED_ISO and event.doc["tags"] == ["_dateparsefailure"]


def test_a_missing_date_field_is_not_a_failure(tmp_path):
    path = _cfg(tmp_path, TWICE.replace("^%{SYSLOGTIMESTAMP:ts} %{SYSLOGTIMESTAMP:ts} ",
                                        "^(?:%{SYSLOGTIMESTAMP:ts} )?"))
    event = event_for_line("no stamp", str(path), "twice", received_at=RECEIVED)
    assert event.doc["@timestamp"] == RECEIVED_ISO and event.doc["tags"] == []


# --- date locales ----------------------------------------------------------------------------

@pytest.mark.parametrize("locale,text,fmt", [
    ("en_US", "Tuesday, 5 March 2024 10:11:12", "EEEE, d MMMM yyyy HH:mm:ss"),
    ("de_DE", "Dienstag, 5. März 2024 10:11:12", "EEEE, d. MMMM yyyy HH:mm:ss"),
    ("de", "Di., 05. Mär. 2024 10:11:12", "EEE, dd. MMM yyyy HH:mm:ss"),
    ("fr_FR", "mardi 5 mars 2024 10:11:12", "EEEE d MMMM yyyy HH:mm:ss"),
    ("fr", "mar. 05 mars 2024 10:11:12", "EEE dd MMM yyyy HH:mm:ss"),
    ("es_ES", "martes, 5 de marzo de 2024 10:11:12", "EEEE, d 'de' MMMM 'de' yyyy HH:mm:ss"),
    ("es", "mar 05 mar 2024 10:11:12", "EEE dd MMM yyyy HH:mm:ss"),       # martes, marzo
    ("it_IT", "martedì 5 marzo 2024 10:11:12", "EEEE d MMMM yyyy HH:mm:ss"),
    ("it", "05/mar/2024:10:11:12", "dd/MMM/yyyy:HH:mm:ss"),
    ("nl_NL", "dinsdag 5 maart 2024 10:11:12", "EEEE d MMMM yyyy HH:mm:ss"),
    ("nl", "05-mrt-2024 10:11:12", "dd-MMM-yyyy HH:mm:ss"),
    ("pt_BR", "terça-feira, 5 de março de 2024 10:11:12",
     "EEEE, d 'de' MMMM 'de' yyyy HH:mm:ss"),
    ("pt", "05 mar 2024 10:11:12", "dd MMM yyyy HH:mm:ss"),
])
def test_date_locales(tmp_path, locale, text, fmt):
    path = _cfg(tmp_path, f"""
[types.loc]
patterns = ['^<%{{DATA:when}}> %{{GREEDYDATA:rest}}$']
[[types.loc.filter]]
date = {{ match = ['when', "{fmt}"], locale = '{locale}', target = 'at' }}
""")
    event = event_for_line(f"<{text}> x", str(path), "loc", received_at=RECEIVED)
    assert event.doc.get("at") == "2024-03-05T10:11:12.000Z", event.doc
    assert event.doc["tags"] == []


def test_a_locales_names_are_not_read_in_another_locale(tmp_path):
    path = _cfg(tmp_path, """
[types.loc]
patterns = ['^<%{DATA:when}> %{GREEDYDATA:rest}$']
[[types.loc.filter]]
date = { match = ['when', 'd MMMM yyyy'], locale = 'it', target = 'at' }
""")
    event = event_for_line("<5 maart 2024> x", str(path), "loc", received_at=RECEIVED)
    assert "at" not in event.doc and event.doc["tags"] == ["_dateparsefailure"]


def test_a_type_date_takes_a_locale_too(tmp_path):
    path = _cfg(tmp_path, """
[types.loc]
patterns = ['^%{NOTSPACE:when} %{GREEDYDATA:rest}$']
[types.loc.date]
field = 'when'
formats = ['d/MMMM/yyyy']
locale = 'fr'
""")
    event = event_for_line("5/janvier/2024 x", str(path), "loc", received_at=RECEIVED)
    assert event.doc["tags"] == [] and event.doc["@timestamp"] == "2024-01-05T00:00:00.000Z"


@pytest.mark.parametrize("body,line", [
    ("""[types.loc]
patterns = ['%{GREEDYDATA:x}']
[[types.loc.filter]]
[types.loc.filter.date]
match = ['x', 'MMM']
locale = 'xx_YY'
""", 6),
    ("""[types.loc]
patterns = ['%{GREEDYDATA:x}']

[types.loc.date]
field = 'x'
locale = "tlh"
""", 6),
])
def test_an_unknown_locale_is_refused_at_load_with_file_and_line(tmp_path, body, line):
    path = _cfg(tmp_path, body)
    with pytest.raises(ConfigError, match=rf"{path}:{line}: .*locale .*known for en, de, fr"):
        read_pipeline(path)


def test_the_importer_keeps_a_known_locale_and_lists_an_unknown_one():
    text = r'''
filter {
  grok { match => { "message" => "^<%{DATA:when}> %{GREEDYDATA:rest}$" } }
  date { match => [ "when", "d MMMM yyyy" ] locale => "fr_FR" target => "day" }
  date { match => [ "when", "d MMMM yyyy" ] locale => "tlh" target => "other" }
}
'''
    cfg, toml, notes = _imported(text, "loc.conf")
    assert "locale = 'fr_FR'" in toml
    assert any(n.startswith("loc.conf:5:") and "'tlh'" in n for n in notes), notes
    doc = _event(cfg, "<5 mars 2024> x", "default").doc
    assert doc["day"] == "2024-03-05T00:00:00.000Z"


# --- a condition that runs out of time, through the real worker path -------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402

import orjson  # noqa: E402

SLOW = """[types.app]
patterns = ['^%{WORD:level} %{GREEDYDATA:body}$']

[[types.app.filter]]
if = '[body] =~ /^(a|aa)+$/'
then = [ { add_tag = ['only_a'] } ]
"""


def _cli(*args):
    done = subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.integration
def test_a_condition_that_runs_out_of_time_dead_letters_its_record_only(redis_url, tmp_path):
    """Shipped to Valkey, `logpipe index --burst` into the embedded store: the line whose body
    sends the condition's regex into catastrophic backtracking is dead-lettered (stage parse,
    the reason naming the condition, its file:line and entry); its neighbours are indexed."""
    config = _cfg(tmp_path, SLOW, "pipeline.toml")
    log = tmp_path / "app.log"
    log.write_text("INFO first line\n" + "WARN " + "a" * 64 + "b\n" + "INFO aaaa\n"
                   + "ERROR last line\n")
    store = f"sqlite:///{tmp_path}/events.db"
    _cli("ship", "--redis", redis_url, "--type", "app", "--once", str(log))
    _cli("index", "--redis", redis_url, "--store", store, "--config", str(config),
         "--workers", "1", "--burst")
    docs = [orjson.loads(x) for x in _cli("search", "--store", store, "--json", "--limit",
                                          "100", "*").splitlines()]
    assert sorted((d["level"], d["body"], d["tags"]) for d in docs) == [
        ("ERROR", "last line", []), ("INFO", "aaaa", ["only_a"]), ("INFO", "first line", [])]
    letters = [orjson.loads(x) for x in _cli("dlq", "list", "--redis", redis_url,
                                             "--json").splitlines()]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["stage"] == "parse" and letter["type"] == "app"
    assert "condition '[body] =~ /^(a|aa)+$/'" in letter["reason"]
    assert f"{config}:5 [types.app] filter 1" in letter["reason"]
    assert "ran out of its 0.25 s" in letter["reason"]


# --- routes: a pre-chain dispatch, equivalent to a leading conditional -----------------------

from pathlib import Path  # noqa: E402

from logpipe.indexer.pipeline import handoff_line  # noqa: E402
from logpipe.indexer.pipeline_config import load_pipeline  # noqa: E402

MAIL_PROGRAMS = ("sendmail|sm-mta|sm-msp-queue|postfix.*|dovecot|opendkim|opendmarc|"
                 "milter-greylist|spamass-milter|clamav-milter|amavis|MailScanner")
OTHER_LINES = [
    "Mar  5 10:11:12 gw sshd[811]: Accepted publickey for ops from 192.0.2.7 port 50522 ssh2",
    "Mar  5 10:11:13 gw CRON[900]: (root) CMD (run-parts /etc/cron.hourly)",
    "Mar  5 10:11:14 gw kernel: eth0: link up",
    "<34>1 2024-03-05T10:11:15.000Z mx1 postfix/smtpd 4242 - - connect from a[192.0.2.1]",
    "Mar  5 10:11:16 mx1 dovecot: imap-login: Login: user=<bob>, method=PLAIN",
    "Mar  5 10:11:17 mx1 Postfix/smtpd[1]: not a mail program: names are case-sensitive",
]


def test_the_built_in_routes_are_a_leading_conditional_on_the_syslog_captures():
    """What `[[types.syslog.route]]` does is what this Logstash chain would do, written first:
    `if [program] =~ /^(mail programs)$/ { <the mail type's chain on the bare message> } else
    if [program] == "sshd" { <the sshd type's> }` -- the same events are selected, and a routed
    event is the target type's event for the line rebuilt from the header, the syslog captures
    beneath."""
    cfg = load_pipeline()
    syslog = cfg.types["syslog"]
    pipeline = Pipeline(cfg)
    to_mail = compile_condition(f"[program] =~ /^({MAIL_PROGRAMS})$/")
    to_sshd = compile_condition('[program] == "sshd"')
    lines = (Path(__file__).parent / "data" / "postfix_two_stage" / "mail.log").read_text()
    seen = set()
    for line in lines.splitlines() + OTHER_LINES:
        captures, _ = pipeline._grok(syslog, line)
        doc = {k: v for k, v in captures.items() if "[" not in k}
        want = "mail" if to_mail(doc, []) else "sshd" if to_sshd(doc, []) else "syslog"
        record = Record(id="r", line=line, host="h", path="/var/log/syslog", type="syslog",
                        received_at=RECEIVED)
        event = pipeline.process(record)
        assert event.doc["type"] == want, line
        seen.add(want)
        if want != "syslog":
            # the target type on the rebuilt line: its own fields, as a branch would give them
            own, tags = pipeline._grok(cfg.types[want], handoff_line(line, captures))
            assert not tags, line
            for name, value in own.items():
                if "[" not in name and name not in ("message", "timestamp", "pid"):
                    # the target's [fields] convert ran after, and hostnames lose their
                    # trailing dot once every step has run (for every type alike)
                    got = event.doc.get(name)
                    assert got == value or str(got) == str(value).rstrip("."), (line, name)
    assert seen == {"mail", "sshd", "syslog"}
