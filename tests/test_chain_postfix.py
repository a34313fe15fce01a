"""A two-stage Logstash mail config (tests/data/postfix_two_stage: the config and its pattern
file, written here) imported and run as Logstash runs it: the syslog-splitting grok (with
overwrite), a date, per-program groks under `[program] =~ /regex/` conditionals, kv on captured
fields, groks on the fields kv made, mutate, translate, and a final condition on tags and
[@metadata].

expected.jsonl holds, per line of mail.log, every field of the event but `message` (checked
apart: the text after the syslog header, which the first grok's overwrite puts there) and the
record's own host/path/type/received_at. The values follow Logstash's documented semantics and
were checked line by line against them: kv's default include_brackets strips <...> and [...]
around a value and a plain value ends at any field_split character (so `stat=Sent (Ok...)` gives
`Sent`, `relay=host [ip]` gives `host`); a kv that finds no pair sets nothing and does not run
its remove_field; a grok's add_tag applies on success only, tag_on_failure => [] tags nothing;
a date whose field is missing does nothing; a field a grok captures that exists already is
kept as both values unless overwritten."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from logpipe.common.errors import ConfigError
from logpipe.indexer.conditions import ConditionTimeout, compile_condition
from logpipe.indexer.logstash_import import import_file
from logpipe.indexer.pipeline import event_for_line
from logpipe.indexer.pipeline_config import read_pipeline

DATA = Path(__file__).parent / "data" / "postfix_two_stage"
RECEIVED = datetime(2013, 5, 16, tzinfo=timezone.utc).timestamp()
HEADER = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ [^:\[]+(?:\[\d+\])?: ")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    here = tmp_path_factory.mktemp("pf")
    shutil.copytree(DATA / "patterns", here / "patterns")
    text, notes = import_file(str(DATA / "postfix.conf"))
    (here / "pipeline.toml").write_text(text)
    return here / "pipeline.toml", text, notes


def cases():
    lines = (DATA / "mail.log").read_text().splitlines()
    expected = [json.loads(x) for x in (DATA / "expected.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected) >= 30
    return list(zip(lines, expected))


def test_the_import_keeps_the_chain_and_skips_only_input_and_output(imported):
    path, text, notes = imported
    assert [n.split(": ", 2)[1] for n in notes] == ["input 'file' skipped",
                                                    "output 'elasticsearch' skipped"], notes
    cfg = read_pipeline(path)
    mail = cfg.types["mail"]
    assert cfg.default_type == "mail" and mail.patterns == [] and mail.routes == []
    assert [f.kind for f in mail.filters] == ["grok", "date", "if", "if"]
    branches = mail.filters[2].options["branches"]
    assert [c for c, _ in branches] == [
        "[program] =~ /^postfix\\/smtpd$/", "[program] =~ /^postfix\\/(smtp|lmtp|local)$/",
        '[program] in ["postfix/qmgr", "postfix/cleanup", "postfix/pickup"]',
        '[program] == "sendmail"']
    assert [f.kind for f in branches[1][1]] == ["grok", "kv", "grok", "grok", "mutate", "if"]
    assert [f.kind for f in mail.filters[2].options["else"]] == ["mutate"]


@pytest.mark.parametrize("line,expected", cases(), ids=[f"line{n}" for n in range(1, 34)])
def test_every_field_of_every_line(imported, line, expected):
    event = event_for_line(line, read_pipeline(imported[0]), received_at=RECEIVED,
                           host="shipper", path="/var/log/mail.log")
    doc = dict(event.doc)
    header = HEADER.match(line)
    assert doc.pop("message") == (line[header.end():] if header else line)
    assert (doc.pop("host"), doc.pop("path"), doc.pop("type"), doc.pop("received_at")) == (
        "shipper", "/var/log/mail.log", "mail", RECEIVED)
    assert doc == expected


def test_a_later_grok_sees_what_an_earlier_one_overwrote(imported):
    cfg = read_pipeline(imported[0])
    line = cases()[4][0]
    doc = event_for_line(line, cfg, received_at=RECEIVED).doc
    # the smtp branch's grok read `message` as the first grok left it (the bare text)
    assert doc["queue_id"] == "3F2A1B4C5D" and "delivery" not in doc
    assert (doc["relay_host"], doc["relay_ip"], doc["relay_port"]) == ("mx.example.net",
                                                                       "203.0.113.25", 25)


@pytest.mark.parametrize("condition,doc,tags,expected", [
    ('[a] == "x"', {"a": "x"}, [], True),
    ('[a] != "x"', {"a": "x"}, [], False),
    ('[n] == 200', {"n": "200"}, [], False),               # text is not a number
    ("[n] == 200", {"n": 200}, [], True),
    ("[n] < 5 and [n] >= 1", {"n": 3}, [], True),
    ("[n] > 5", {"n": "7"}, [], False),
    ('[s] <= "b"', {"s": "a"}, [], True),
    ("[p] =~ /^postfix\\/(smtp|lmtp)$/", {"p": "postfix/smtp"}, [], True),
    ("[p] !~ /^postfix/", {"p": "sendmail"}, [], True),
    ("[p] =~ /x/", {}, [], False),
    ("[p] !~ /x/", {}, [], True),
    ('[a] in ["x", "y"]', {"a": "y"}, [], True),
    ('[a] not in ["x", "y"]', {"a": "z"}, [], True),
    ('"ab" in [a]', {"a": "xaby"}, [], True),
    ('"t1" in [tags]', {}, ["t1"], True),
    ('"t1" not in [tags]', {}, ["t1"], False),
    ("[a][b]", {"a": {"b": ""}}, [], True),                  # there, even empty
    ("[a][b]", {"a": {"b": False}}, [], False),
    ("![a][c]", {"a": {"b": 1}}, [], True),
    ('[@metadata][k] == "v"', {"@metadata": {"k": "v"}}, [], True),
    ("[a] xor [b]", {"a": 1, "b": 1}, [], False),
    ("[a] xor [b]", {"a": 1}, [], True),
    ("[a] nand [b]", {"a": 1, "b": 1}, [], False),
    ("[a] or [b] and [c]", {"a": 1}, [], True),
    ("!([a] or [b])", {}, [], True),
])
def test_conditions(condition, doc, tags, expected):
    assert compile_condition(condition)(doc, tags) is expected


def test_a_regex_condition_that_runs_out_of_time_raises_and_names_itself():
    test = compile_condition("[m] =~ /^(a|aa)+$/", "x.conf", 7, timeout=0.05)
    with pytest.raises(ConditionTimeout, match=r"x\.conf:7.*ran out of its 0\.05 s"):
        test({"m": "a" * 60 + "b"}, [])


def test_a_condition_that_cannot_be_read_names_the_file_and_line():
    with pytest.raises(ConfigError, match=r"x\.conf:3: condition .*cannot read"):
        compile_condition('[a] == "x" ]', "x.conf", 3)




@pytest.mark.integration
def test_the_real_indexer_path(imported, redis_url, tmp_path):
    """Shipped to Valkey, `logpipe index --burst` into the embedded store, searched by field."""
    store = f"sqlite:///{tmp_path}/events.db"

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout
    run("ship", "--redis", redis_url, "--type", "mail", "--once", str(DATA / "mail.log"))
    run("index", "--redis", redis_url, "--store", store, "--config", str(imported[0]),
        "--workers", "1", "--burst")
    docs = [orjson.loads(x) for x in run("search", "--store", store, "--json", "--limit",
                                        "1000", "*").splitlines()]
    expected = {line: exp for line, exp in cases()}
    assert len(docs) == len(expected)
    for doc in docs:
        line = next(x for x in expected if x.endswith(doc["message"]))
        want = {k: v for k, v in expected[line].items() if k not in ("@timestamp", "tags")}
        assert {k: doc.get(k) for k in want} == want, line
        assert sorted(doc["tags"]) == sorted(expected[line]["tags"])
    found = [orjson.loads(x) for x in run("search", "--store", store, "--json",
                                         "relay_ip:203.0.113.25").splitlines()]
    assert sorted(d["dlv"]["status"] for d in found) == ["bounced", "sent"]
    found = [orjson.loads(x) for x in run("search", "--store", store, "--json",
                                         "env_proto:esmtp").splitlines()]
    assert [d["reply_code"] for d in found] == [554]
