"""Built-in pipelines (syslog, mail, apache, sshd) on real corpus lines."""

from __future__ import annotations

from logpipe.indexer.grok.matcher import matcher_for
from logpipe.indexer.pipeline_config import builtin_pipeline
from logpipe.indexer.pipeline_config import load_pipeline as load
from tests.conftest import corpus_file


def _m(kind):
    return matcher_for(builtin_pipeline().for_type(kind))


def test_builtin_pipeline_has_four_types_with_dates():
    cfg = builtin_pipeline()
    assert set(cfg.types) == {"syslog", "mail", "apache", "sshd"}
    assert cfg.types["mail"].date.formats == ["syslog", "ISO8601"]
    assert "HTTPDATE" in cfg.types["apache"].date.formats
    assert builtin_pipeline() is cfg


def test_load_merges_user_file_type_by_type(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[types.mail]\npatterns = ['%{WORD:w}']\n[types.custom]\npatterns = ['%{INT:n}']\n")
    cfg = load(str(f))
    assert cfg.types["mail"].patterns == ["%{WORD:w}"]
    assert "custom" in cfg.types and "apache" in cfg.types
    assert load(None).types["mail"].patterns == builtin_pipeline().types["mail"].patterns


def test_mail_sendmail_lines_share_qid():
    m = _m("mail")
    lines = [ln for ln in corpus_file("mail_extra.log").read_text().splitlines()
             if ": j061bW9V000809: " in ln]
    parsed = [m.match(ln)[0] for ln in lines]
    assert len(parsed) == 2 and all(p["qid"] == "j061bW9V000809" for p in parsed)
    frm = next(p for p in parsed if "from" in p)
    assert frm["from"] == "maddingue" and frm["size"] == "2039" and frm["relay"] == "localhost"
    to = next(p for p in parsed if "to" in p and p.get("mailer") == "relay")
    assert to["to"] == "cpan-testers@perl.org" and to["ctladdr"] == "maddingue (501/20)"
    assert to["relayip"] == "127.0.0.1" and to["dsn"] == "2.0.0"
    assert to["stat"] == "Sent (j061bXn5000812 Message accepted for delivery)"


def test_mail_every_corpus_line_parses_and_postfix_has_qid():
    m = _m("mail")
    for name in ("mail_extra.log", "sendmail-auth.log", "sendmail-reject.log", "postfix.log"):
        for ln in corpus_file(name).read_text().splitlines():
            assert m.match(ln)[1] == [], (name, ln)
    caps, _ = m.match("Feb 20 14:56:18 fangorn postfix/smtp[5161]: CCAE27A4: to=<cpan-testers@perl.org>, "
                      "relay=mx.develooper.com[63.251.223.176], delay=9, status=sent (250 Queued!)")
    assert caps["qid"] == "CCAE27A4" and caps["to"] == "cpan-testers@perl.org"
    assert caps["relay"] == "mx.develooper.com" and caps["stat"] == "sent"


def test_mail_multi_recipient_and_dovecot_login():
    m = _m("mail")
    text = corpus_file("mail_extra.log").read_text().splitlines()
    multi = next(ln for ln in text if "to=<sent1@example.com>" in ln)
    caps = m.match(multi)[0]
    assert caps["to"] == "<sent1@example.com>,<sent2@example.com>" and caps["dsn"] == "2.0.0"
    login = next(ln for ln in text if "Login: user=<test@yourdomain.net>" in ln)
    caps = m.match(login)[0]
    assert caps["user"] == "test@yourdomain.net" and caps["rip"] == "172.17.0.1"
    assert caps["lip"] == "172.17.0.2" and caps["program"] == "dovecot"


def test_sshd_pipeline_events():
    m = _m("sshd")
    ok = sum(m.match(ln)[1] == [] for ln in corpus_file("openssh.log").read_text().splitlines())
    assert ok == 1200
    caps = m.match("Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster "
                   "from 173.234.31.186 port 38926 ssh2")[0]
    assert caps["event"] == "Failed" and caps["user"] == "webmaster"
    assert caps["src_ip"] == "173.234.31.186" and caps["src_port"] == "38926"
    caps = m.match("Jan  1 00:00:00 h sshd[1]: Accepted publickey for git from 10.0.0.5 port 22 ssh2")[0]
    assert caps["event"] == "Accepted" and caps["auth_method"] == "publickey" and caps["user"] == "git"


def test_syslog_and_apache_error_corpora():
    m = _m("syslog")
    for name in ("linux.log", "mac.log"):
        assert all(m.match(ln)[1] == [] for ln in corpus_file(name).read_text().splitlines())
    caps = m.match("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")[0]
    assert caps["program"] == "sshd(pam_unix)" and caps["pid"] == "19939"
    a = _m("apache")
    lines = corpus_file("apache_error.log").read_text().splitlines()
    assert all(a.match(ln)[1] == [] for ln in lines)
    assert a.match(lines[0])[0]["loglevel"] == "notice"
