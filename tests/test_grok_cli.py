"""logpipe grok parse / debug."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from logpipe.common.cli import main
from logpipe.indexer.grok.cli import app

runner = CliRunner()


def test_parse_in_order_with_types_and_failures(tmp_path):
    inp = tmp_path / "in.log"
    inp.write_text("GET 12\nnope\nPUT 7\n")
    r = runner.invoke(app, ["parse", "-p", "%{WORD:verb} %{INT:n:int}", str(inp)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert rows == [{"message": "GET 12", "verb": "GET", "n": 12},
                    {"message": "nope", "tags": ["_grokparsefailure"]},
                    {"message": "PUT 7", "verb": "PUT", "n": 7}]


def test_parse_stdin_pattern_file_and_dir(tmp_path):
    pf = tmp_path / "pats"
    pf.write_text("# tried in order\n%{MYQ:qid} first\n%{MYQ:qid}\n")
    d = tmp_path / "defs"
    d.mkdir()
    (d / "x").write_text("MYQ [A-Z]{3}\n")
    r = runner.invoke(app, ["parse", "-f", str(pf), "-d", str(d)], input="ABC first\nXYZ\n")
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert rows == [{"message": "ABC first", "qid": "ABC"}, {"message": "XYZ", "qid": "XYZ"}]


def test_parse_builtin_type_without_config():
    line = ("Jan  6 02:37:33 Jupiter sendmail[809]: j061bW9V000809: to=cpan-testers@perl.org, "
            "delay=00:00:01, mailer=relay, relay=localhost [127.0.0.1], dsn=2.0.0, stat=Sent (ok)")
    r = runner.invoke(app, ["parse", "--type", "mail"], input=line + "\n")
    row = json.loads(r.output)
    assert row["qid"] == "j061bW9V000809" and row["stat"] == "Sent (ok)" and row["message"] == line


def test_parse_with_config_type(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[types.kv]\npatterns = ['%{KEY:k}=%{INT:v:int}']\npattern_definitions = { KEY = '[a-z]+' }\n")
    r = runner.invoke(app, ["parse", "--config", str(cfg), "--type", "kv"], input="a=1\n")
    assert json.loads(r.output) == {"message": "a=1", "k": "a", "v": 1}


def test_errors_are_clear_not_tracebacks(tmp_path, capsys):
    assert main(["grok", "parse", "-p", "%{NOPE:x}", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "unknown pattern %{NOPE}" in err and "Traceback" not in err
    pf = tmp_path / "pf"
    pf.write_text("%{WORD}\n(unclosed\n")
    assert main(["grok", "parse", "-f", str(pf), "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert f"{pf}:2:" in err and "missing ')'" in err
    assert main(["grok", "parse", "/dev/null"]) == 2
    assert "no patterns" in capsys.readouterr().err
    assert main(["grok", "parse", "--type", "nosuch", "/dev/null"]) == 2
    assert "unknown type 'nosuch'" in capsys.readouterr().err


def test_debug_shows_match_and_how_far_failures_got():
    r = runner.invoke(app, ["debug", "-p", "%{SYSLOGBASE} oops %{INT:n:int}", "-p", "%{WORD:w} zzz"],
                      input="Jan  6 02:37:32 h prog[1]: oops 12\nJan  6 02:37:32 h prog[1]: oops x\n")
    out = r.output
    assert r.exit_code == 0, out
    assert "matched pattern #1" in out and "n = 12" in out
    assert "matches up to: '%{SYSLOGBASE} oops '" in out
    assert "then fails at: '%{INT:n:int}'" in out
    assert "stopped at char 32: 'x'" in out


def test_parse_builtin_mail_reads_dovecot_lmtp_delivery_with_its_msgid():
    lines = ("Dec  7 10:00:05 mail1 dovecot: lmtp(bob)<12345><AbCdEf>: "
             "msgid=<20261207100001.ABC@example.org>: saved mail to INBOX\n"
             "Dec  7 10:00:06 mail1 dovecot: lmtp(4242, carol@example.org): Xy12ab: "
             "msgid=<m2@example.org>: saved mail to INBOX\n"
             "Dec  7 10:00:07 mail1 dovecot: lmtp(bob)<12345><AbCdEf>: sieve: "
             "msgid=<m3@example.org>: stored mail into mailbox 'Junk'\n")
    r = runner.invoke(app, ["parse", "--type", "mail"], input=lines)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines()]
    got = [(x["logsource"], x["program"], x["service"], x["user"], x["msgid"], x["dovecotMsg"])
           for x in rows]
    assert got == [
        ("mail1", "dovecot", "lmtp", "bob", "20261207100001.ABC@example.org",
         "saved mail to INBOX"),
        ("mail1", "dovecot", "lmtp", "carol@example.org", "m2@example.org",
         "saved mail to INBOX"),
        ("mail1", "dovecot", "lmtp", "bob", "m3@example.org", "stored mail into mailbox 'Junk'")]
    assert [x["session"] for x in rows] == ["AbCdEf", "Xy12ab", "AbCdEf"]
