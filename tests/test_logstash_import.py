"""import-logstash: the 2013 config as written, tolerance, the TOML writer, and the result on
real corpus lines."""

from __future__ import annotations

import math
import random
import tomllib

import pytest
from typer.testing import CliRunner

from logpipe.indexer.pipeline_config import parse_pipeline, read_pipeline
from logpipe.indexer.grok.matcher import Matcher
from logpipe.indexer.logstash_import import (
    app,
    convert,
    import_file,
    parse_logstash,
    toml_dumps,
    toml_string,
)
from tests.conftest import corpus_file, seed_file


@pytest.fixture(scope="module")
def seed_matcher(tmp_path_factory):
    text, _ = import_file(str(seed_file("logstash-maillog.conf")))
    cfg = parse_pipeline(text, "<imported>")
    return Matcher(cfg.types["mail"].patterns)


def test_seed_yields_eleven_mail_patterns_and_notes():
    text, notes = import_file(str(seed_file("logstash-maillog.conf")))
    cfg = parse_pipeline(text, "<imported>")
    assert list(cfg.types) == ["mail"] and cfg.default_type == "mail"
    pats = cfg.types["mail"].patterns
    assert len(pats) == 11
    # the one typo, "(<dsn>" for "(?<dsn>", is repaired and said so; nothing else is touched
    assert pats[5].count("dsn=(?<dsn>[^,]+)") == 1 and "(<dsn>" not in pats[5]
    assert pats[-1].endswith("(?<mailScannerMsg>.*)")
    joined = "\n".join(notes)
    assert "input 'stdin' skipped" in joined
    assert "output 'stdout' skipped" in joined and "output 'elasticsearch' skipped" in joined
    assert "array of 'pattern' not closed" in joined
    assert "'(<dsn>' read as the named group '(?<dsn>'" in joined


def _line(name: str, needle: str) -> str:
    return next(ln for ln in corpus_file(name).read_text().splitlines() if needle in ln)


def test_seed_patterns_on_real_sendmail_lines(seed_matcher):
    caps, tags = seed_matcher.match(_line("mail_extra.log", "j061bXn5000812: from=<maddingue"))
    assert tags == []
    assert caps == {"timestamp": "Jan  6 02:37:33", "logsource": "Jupiter", "program": "sendmail",
                    "pid": "812", "qid": "j061bXn5000812",
                    "from": "<maddingue@jupiter.maddingue.net>", "size": "2262", "class": "0",
                    "nrcpts": "1",
                    "msgid": "<200501060137.j061bW9V000809@jupiter.maddingue.net>",
                    "proto": "ESMTP", "daemon": "MTA", "relay": "localhost",
                    "relayip": "127.0.0.1"}
    caps, _ = seed_matcher.match(_line("mail_extra.log", "j061bXn5000812: to=<cpan-testers"))
    assert caps["to"] == "<cpan-testers@perl.org>" and caps["mailer"] == "esmtp"
    assert caps["delay"] == "00:00:10" and caps["relay"] == "mx.develooper.com."
    assert caps["relayip"] == "63.251.223.176" and caps["pri"] == "30373"
    # with the repaired (?<dsn>...) the key list goes on to the delivery status
    assert caps["dsn"] == "2.0.0" and caps["stat"].startswith("Sent")


def test_seed_patterns_user_unknown_ruleset_and_mailscanner(seed_matcher):
    caps, _ = seed_matcher.match(_line("mail_extra.log", "User unknown"))
    assert caps["qid"] == "j4K93AYX027873" and caps["unknownUser"] == "nobody@example.edu"
    caps, _ = seed_matcher.match(_line("mail_extra.log", "j2OFquVD026245"))
    assert caps["qid"] == "j2OFquVD026245" and caps["ruleset"] == "check_rcpt"
    assert caps["arg1"] == "<fwipada@dakkitydak.fap>" and caps["program"] == "sendmail"
    assert caps["relay"] == "mx2.laboris.fr"
    assert caps["relayip"] == "123.456.789.1"        # masked in the source: HOSTNAME takes it
    assert caps["reject"] == ("553 5.1.8 <fwipada@dakkitydak.fap>... Domain of sender address "
                              "antoine@infirmiers.co does not exist")
    # as written, (sm-mta[^,\[]+) needs a character after "sm-mta" that is not '[': plain
    # "sm-mta[pid]" lines match none of the seed's patterns (nor would they in Logstash)
    assert seed_matcher.match(_line("sendmail-reject.log", "s1O7XtZJ021134"))[0] is None
    caps, _ = seed_matcher.match(_line("mail_extra.log", "MailScanner["))
    assert caps["program"] == "MailScanner" and caps["pid"] == "1803828"
    assert caps["mailScannerMsg"].startswith("Message 4bsM5k4xJmz4rT6 from 192.168.1.50")


def test_seed_patterns_on_generated_dovecot_and_milter_lines(seed_matcher):
    from logpipe.services.loggen import generate
    seen = set()
    for line in generate("mail", 3000, seed=7):
        caps, tags = seed_matcher.match(line)
        assert tags == [], line
        if "imap-login: Login:" in line:
            assert caps["user"] and caps["rip"] and caps["lip"] and caps["session"]
            seen.add("login")
        elif "opendkim[" in line or "milter-greylist:" in line:
            assert caps["qid"] in line and caps["milterMsg"]
            seen.add("milter")
        elif "STARTTLS=" in line:
            assert caps["starttls"] == "server" and caps["cipher"]
            seen.add("tls")
        elif ": NOQUEUE: connect from" in line:
            assert caps["qid"] == "NOQUEUE"
            seen.add("connect")
    assert seen == {"login", "milter", "tls", "connect"}


def test_tolerant_parsing_and_conversions():
    conf = ("input {\u00a0file { path => '/var/log/maillog' type => 'mail' } }\n"
            "filter {\n"
            "  # a comment\n"
            "  if [type] == \"web\" {\n"
            "    grok { match => { \"message\" => [\"%{COMBINEDAPACHELOG}\", '%{COMMONAPACHELOG}'] }\n"
            "           patterns_dir => ['./patterns'] add_tag => ['web'] }\n"
            "    date { match => [ 'timestamp', 'dd/MMM/yyyy:HH:mm:ss Z' ] timezone => 'Europe/Paris' }\n"
            "  }\n"
            "  grok { match => [ 'message', '%{SYSLOGBASE} %{GREEDYDATA:msg}' ] }\n"
            "  mutate { rename => { 'logsource' => 'host_name' } remove_field => ['msg']\n"
            "           convert => { 'pid' => 'integer' } gsub => ['a', 'b', 'c'] }\n"
            "  geoip { source => 'clientip' }\n"
            "  date { match => [ 'timestamp', 'MMM  d HH:mm:ss', 'MMM dd HH:mm:ss', 'ISO8601' ] }\n"
            "output { elasticsearch { } }\n")
    plugins, notes = parse_logstash(conf, "x.conf")
    doc, more = convert(plugins, "x.conf")
    cfg = parse_pipeline(toml_dumps(doc), "<t>")
    web, mail = cfg.types["web"], cfg.types["mail"]
    assert web.patterns == ["%{COMBINEDAPACHELOG}", "%{COMMONAPACHELOG}"]
    assert web.date.formats == ["HTTPDATE"] and web.date.timezone == "Europe/Paris"
    # the grok's add_tag applies when it matched (a conditional entry after the patterns)
    assert web.fields.add_tags == [] and [f.kind for f in web.filters] == ["if"]
    assert web.filters[0].options["branches"][0][1][0].options == {"add_tag": ["web"]}
    assert mail.patterns == ["%{SYSLOGBASE} %{GREEDYDATA:msg}"]
    assert mail.date.formats == ["syslog", "ISO8601"]
    assert mail.fields.rename == {"logsource": "host_name"} and mail.fields.remove == ["msg"]
    assert mail.fields.convert == {"pid": "int"}
    text = "\n".join(notes + more)
    assert "filter 'geoip' skipped" in text
    assert [(f.kind, f.options) for f in mail.filters] == [("mutate", {"gsub": ["a", "b", "c"]})]
    assert "'filter' block not closed" in text


def test_toml_strings_round_trip():
    rng = random.Random(5)
    alphabet = "ab'\"\\\n\t\r\x00\x1f\x7f é{}[]%=#"
    samples = [r"(?<q>\S+): '%{WORD}'", "plain", "", "tab\there", "\x7f"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(300)]
    for s in samples:
        assert tomllib.loads(f"k = {toml_string(s)}")["k"] == s
    assert toml_string(r"%{INT:n} \[x\]") == r"'%{INT:n} \[x\]'"   # literal when possible


def test_toml_document_round_trip():
    doc = {"default_type": "mail", "types": {"we'ird key": {"patterns": ["a'b", r"c\d"],
                                                           "fields": {"add": {"x.y": 1, "f": 1.5,
                                                                              "b": True},
                                                                      "remove": []},
                                                           "date": {"field": "t", "formats": ["x"]}}}}
    assert tomllib.loads(toml_dumps(doc)) == doc
    assert math.isinf(tomllib.loads(toml_dumps({"x": float("inf")}))["x"])


def test_cli_writes_file_and_reports(tmp_path):
    out = tmp_path / "mail.toml"
    r = CliRunner().invoke(app, [str(seed_file("logstash-maillog.conf")), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len(read_pipeline(out).types["mail"].patterns) == 11
    assert "skipped" in r.output        # notes go to stderr (mixed in by CliRunner)


def test_cli_missing_file_is_a_clear_error(tmp_path):
    from logpipe.common.cli import main
    assert main(["import-logstash", str(tmp_path / "nope.conf")]) == 2


def test_unterminated_string_names_line():
    from logpipe.common.errors import ConfigError
    with pytest.raises(ConfigError) as exc:
        parse_logstash('filter {\n grok { match => ["message", "abc\n', "y.conf")
    assert "y.conf:2" in str(exc.value)
