"""import-logstash beyond grok: kv, dissect, json, drop, mutate (lowercase, gsub, split, ...),
add_tag and if / else if / else become the type's chain ([[types.X.filter]] entries, a
conditional one `if` entry with Logstash's own condition, `then` and `else`) that runs in the
indexer in the config's order; what cannot be carried over is listed with the reason."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from logpipe.common.errors import ConfigError
from logpipe.common.record import Record
from logpipe.indexer.logstash_import import convert, parse_logstash, toml_dumps, toml_value
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import parse_pipeline

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc).timestamp()

CONFIG = r'''
input { file { path => "/var/log/app.log" type => "app" } }
filter {
  grok { match => { "message" => "%{WORD:level} %{WORD:component} %{GREEDYDATA:rest}" } }
  date { match => [ "ts", "ISO8601" ] timezone => "Europe/Paris" }
  if [component] == "http" {
    kv { source => "rest" field_split => " " value_split => "=" target => "http" }
    mutate { lowercase => [ "level" ] add_tag => [ "web" ] }
  } else if [component] == "job" {
    dissect { mapping => { "rest" => "%{job_id} took %{duration}ms" } }
    mutate { convert => { "duration" => "integer" } }
  } else if [level] in ["TRACE", "DEBUG"] {
    drop { }
  } else {
    json { source => "rest" target => "payload" }
  }
  if [message] =~ /secret/ {
    mutate { gsub => [ "message", "secret", "***" ] }
  }
  mutate { split => { "component" => "." } }
}
output { elasticsearch { } }
'''


@pytest.fixture(scope="module")
def imported():
    plugins, parse_notes = parse_logstash(CONFIG, "app.conf")
    doc, notes = convert(plugins, "app.conf")
    text = toml_dumps(doc)
    return parse_pipeline(text, "pipeline.toml"), text, parse_notes + notes


def event(cfg, line: str):
    return Pipeline(cfg).process(Record(id="r", line=line, host="h", path="/var/log/app.log",
                                        type="app", received_at=RECEIVED))


def test_filters_and_conditions_are_carried_over(imported):
    cfg, text, notes = imported
    filters = cfg.types["app"].filters
    # the if / else if / else is one entry, the regex conditional another, the split last
    assert [f.kind for f in filters] == ["if", "if", "mutate"]
    branches = filters[0].options["branches"]
    assert [c for c, _ in branches] == ['[component] == "http"', '[component] == "job"',
                                        '[level] in ["TRACE", "DEBUG"]']
    assert [[f.kind for f in then] for _, then in branches] == [["kv", "mutate"],
                                                                ["dissect", "mutate"], ["drop"]]
    assert [f.kind for f in filters[0].options["else"]] == ["json"]
    # kv made the fields the mutate's lowercase and add_tag work on: it stays first
    assert branches[0][1][1].options["lowercase"] == ["level"]
    assert filters[1].options["branches"][0][0] == "[message] =~ /secret/"
    assert not any("regular expression" in n for n in notes), notes
    assert any("inputs are logpipe's shipper's job" in n for n in notes)


def test_kv_lowercase_and_tags_run_under_their_condition(imported):
    doc = event(imported[0], "INFO http method=GET path=/a status=200").doc
    assert doc["http"] == {"method": "GET", "path": "/a", "status": "200"}
    assert doc["level"] == "info" and "web" in doc["tags"]
    assert doc["component"] == ["http"]           # the unconditional split ran last


def test_dissect_and_convert(imported):
    doc = event(imported[0], "INFO job nightly-7 took 5230ms").doc
    assert (doc["job_id"], doc["duration"]) == ("nightly-7", 5230)
    assert "http" not in doc and "web" not in doc["tags"]


def test_drop_and_json(imported):
    assert event(imported[0], "DEBUG cache noisy details") is None
    doc = event(imported[0], 'INFO cache {"hits": 3, "keys": ["a"]}').doc
    assert doc["payload"] == {"hits": 3, "keys": ["a"]}
    doc = event(imported[0], "INFO cache not-json").doc
    assert "_jsonparsefailure" in doc["tags"]


def test_a_filter_kind_the_config_does_not_know_is_an_error():
    with pytest.raises(ConfigError, match="filter 1"):
        parse_pipeline("[types.a]\n[[types.a.filter]]\nruby = {}\n", "p.toml")


def test_a_grok_under_a_field_condition_runs_under_it_in_order():
    """Logstash runs the second grok only on events whose program the first one captured as
    postfix, on the same event: the type stays, both groks' captures are kept."""
    conf = ('filter {\n  grok { match => { "message" => "%{SYSLOGBASE} %{GREEDYDATA:msg}" } }\n'
            '  if [program] == "postfix" {\n'
            '    grok { match => { "message" => "%{SYSLOGBASE} %{WORD:qid}: %{GREEDYDATA:rest}" } }\n'
            '  }\n'
            '  date { match => [ "timestamp", "MMM dd HH:mm:ss" ] }\n}\n')
    plugins, _ = parse_logstash(conf, "c.conf")
    doc, notes = convert(plugins, "c.conf")
    cfg = parse_pipeline(toml_dumps(doc), "p.toml")
    base = cfg.types["default"]
    assert list(cfg.types) == ["default"] and base.routes == []
    assert base.patterns == ["%{SYSLOGBASE} %{GREEDYDATA:msg}"]
    assert [f.kind for f in base.filters] == ["if", "date"]
    (cond, then), = base.filters[0].options["branches"]
    assert cond == '[program] == "postfix"' and then[0].kind == "grok"
    pipeline = Pipeline(cfg)
    pipeline.compile_all()
    doc = pipeline.process(Record(id="r", line="Nov 28 11:59:59 mx2 postfix[3]: 4BC1D2A0F3: sent",
                                  host="h", type="default", received_at=RECEIVED)).doc
    assert (doc["type"], doc["qid"], doc["rest"]) == ("default", "4BC1D2A0F3", "sent")
    # the second grok captured timestamp, logsource, program, pid again: Logstash keeps both
    assert doc["program"] == ["postfix", "postfix"] and doc["msg"] == "4BC1D2A0F3: sent"
    # so timestamp is a list too, which Logstash's date filter does not read (its executors
    # take a string or a number): the received time stays and the event is tagged
    assert doc["timestamp"] == ["Nov 28 11:59:59", "Nov 28 11:59:59"]
    assert doc["@timestamp"] == "2026-11-28T12:00:00.000Z" and doc["tags"] == ["_dateparsefailure"]
    other = pipeline.process(Record(id="r2", line="Nov 28 11:59:59 mx2 cron[3]: hello",
                                    host="h", type="default", received_at=RECEIVED)).doc
    assert other["type"] == "default" and other["msg"] == "hello" and "qid" not in other


def test_a_conditional_grok_sees_the_first_groks_fields():
    conf = ('filter {\n  grok { match => { "message" => "%{SYSLOGBASE} %{GREEDYDATA:msg}" } }\n'
            '  if [program] == "postfix" {\n'
            '    grok { match => { "msg" => "%{WORD:qid}: %{GREEDYDATA:rest}" } }\n  }\n}\n')
    plugins, _ = parse_logstash(conf, "c.conf")
    doc, notes = convert(plugins, "c.conf")
    pipeline = Pipeline(parse_pipeline(toml_dumps(doc), "p.toml"))
    got = pipeline.process(Record(id="r", line="Nov 28 11:59:59 mx2 postfix[3]: 4BC1D2A0F3: sent",
                                  host="h", type="default", received_at=RECEIVED)).doc
    assert got["type"] == "default" and got["tags"] == []
    assert {k: got.get(k) for k in ("program", "pid", "logsource", "msg", "qid", "rest")} == {
        "program": "postfix", "pid": "3", "logsource": "mx2", "msg": "4BC1D2A0F3: sent",
        "qid": "4BC1D2A0F3", "rest": "sent"}


CONDITIONAL_DATE = '''
filter {
  grok { match => { "message" => "%{WORD:kind} %{NOTSPACE:ts} %{GREEDYDATA:rest}" } }
  if [kind] == "epoch" {
    date { match => [ "ts", "UNIX" ] }
  } else if [kind] == "local" {
    date { match => [ "ts", "yyyy-MM-dd'T'HH:mm:ss" ] timezone => "Europe/Paris" target => "local_time" }
  }
}
'''


def test_a_date_under_a_condition_applies_only_under_it():
    plugins, _ = parse_logstash(CONDITIONAL_DATE, "d.conf")
    doc, notes = convert(plugins, "d.conf")
    assert not [n for n in notes if "not applied" in n]
    cfg = parse_pipeline(toml_dumps(doc), "p.toml")
    body = cfg.types["default"]
    assert body.date is None and [f.kind for f in body.filters] == ["if"]
    assert [[f.kind for f in then] for _, then in body.filters[0].options["branches"]] == [
        ["date"], ["date"]]

    def run(line):
        return Pipeline(cfg).process(Record(id="r", line=line, host="h", type="default",
                                            received_at=RECEIVED)).doc
    epoch = run("epoch 1700000000 x")
    assert epoch["@timestamp"] == "2023-11-14T22:13:20.000Z" and epoch["tags"] == []
    local = run("local 2026-07-01T12:00:00 x")
    assert local["local_time"] == "2026-07-01T10:00:00.000Z"
    assert local["@timestamp"] == "2026-11-28T12:00:00.000Z"   # not under 'epoch': received
    other = run("other 1700000000 x")                          # under no condition: no date
    assert other["@timestamp"] == "2026-11-28T12:00:00.000Z" and "local_time" not in other
    assert other["tags"] == []
    bad = run("epoch notatime x")
    assert bad["tags"] == ["_dateparsefailure"] and bad["@timestamp"] == "2026-11-28T12:00:00.000Z"


@pytest.mark.parametrize("body,message", [
    ("date = { field = 'ts', pattern = 'x' }", "pattern"),
    ("date = { field = 'ts', timezone = 'Mars/Olympus' }", "Mars/Olympus"),
])
def test_a_date_filter_the_config_cannot_use_is_an_error(body, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_pipeline(f"[types.a]\n[[types.a.filter]]\nwhen = 'kind:x'\n{body}\n", "p.toml")
    assert "p.toml" in str(err.value) and "filter 1" in str(err.value)


def dissected(pattern: str, line: str, **options) -> dict:
    cfg = parse_pipeline("[types.a]\n[[types.a.filter]]\n"
                         + "dissect = " + toml_value({"mapping": {"message": pattern}, **options})
                         + "\n", "p.toml")
    doc = Pipeline(cfg).process(Record(id="r", line=line, host="h", type="a",
                                       received_at=RECEIVED)).doc
    return {k: v for k, v in doc.items() if k not in ("@timestamp", "message", "host", "path",
                                                       "type", "received_at")}


@pytest.mark.parametrize("pattern,line,options,expected", [
    # + appends to the field, joined by a space
    ("%{ts} %{+ts} %{+ts} %{src} %{} %{prog}[%{pid}]: %{msg}",
     "Mar 16 00:01:25 10.0.0.1 evita postfix/smtpd[1713]: connect from camomile.cloud9.net",
     {}, {"ts": "Mar 16 00:01:25", "src": "10.0.0.1", "prog": "postfix/smtpd", "pid": "1713",
          "msg": "connect from camomile.cloud9.net"}),
    # ... in ordinal order with /N, and with the separator given
    ("%{+name/2} %{+name/1}", "Doe John", {"append_separator": ", "}, {"name": "John, Doe"}),
    # ?k / *k names a key, &k stores the value under it
    ("%{?k1}=%{&k1} %{*k2}=%{&k2}", "error=REFUSED retries=3", {},
     {"error": "REFUSED", "retries": "3"}),
    # -> : the delimiter after the field may repeat (right padding)
    ("%{ts->} %{level} %{msg}", "2026-11-29      INFO started", {},
     {"ts": "2026-11-29", "level": "INFO", "msg": "started"}),
    # without it, the padding goes into the next fields
    ("%{ts} %{level} %{msg}", "2026-11-29   INFO started", {},
     {"ts": "2026-11-29", "level": "", "msg": " INFO started"}),
    ("%{a} %{b}", "nospace", {}, None),
    # ?name skips the value
    ("%{?drop} %{keep}", "a b", {}, {"keep": "b"}),
], ids=["append", "ordinal", "reference", "padding", "no-padding", "no-match", "skip"])
def test_dissect_key_modifiers(pattern, line, options, expected):
    got = dissected(pattern, line, **options)
    if expected is None:
        assert got["tags"] == ["_dissectfailure"]
    else:
        assert got == {**expected, "tags": []}


def test_dissect_reference_to_a_field_of_the_event():
    cfg = parse_pipeline("[types.a]\npatterns = ['%{WORD:key} %{GREEDYDATA:rest}']\n"
                         "[[types.a.filter]]\ndissect = { mapping = { rest = '%{&key}' } }\n")
    doc = Pipeline(cfg).process(Record(id="r", line="colour blue", host="h", type="a",
                                       received_at=RECEIVED)).doc
    assert doc["colour"] == "blue"


def test_import_carries_dissect_modifiers_and_the_separator():
    conf = ('filter {\n  dissect {\n    mapping => { "message" => "%{+ts/2} %{+ts/1} %{?k}=%{&k}" }\n'
            '    append_separator => "-"\n  }\n}\n')
    plugins, _ = parse_logstash(conf, "c.conf")
    doc, notes = convert(plugins, "c.conf")
    assert not [n for n in notes if "dissect" in n]
    cfg = parse_pipeline(toml_dumps(doc), "p.toml")
    got = Pipeline(cfg).process(Record(id="r", line="b a x=y", host="h", type="default",
                                       received_at=RECEIVED)).doc
    assert (got["ts"], got["x"], got["tags"]) == ("a-b", "y", [])


@pytest.mark.parametrize("pattern,message", [
    ("%{+a/x}", "ordinal"), ("%{&}", "needs a name")])
def test_a_dissect_key_that_cannot_be_read_is_an_error(pattern, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline("[types.a]\n[[types.a.filter]]\ndissect = { mapping = { message = '"
                       + pattern + "' } }\n", "p.toml")
