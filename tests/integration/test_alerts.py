"""Alerts (issue 24): rules evaluated with an injected clock over a real embedded store, notices
delivered to a real local SMTP server (aiosmtpd: plain, STARTTLS with a test CA, AUTH) and a real
local HTTP receiver that checks the HMAC signature. Firing -> deduplicated -> resolved."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from logpipe.common.errors import ConfigError
from logpipe.search.alerts.book import AlertBook
from logpipe.search.alerts.config import parse_config
from logpipe.search.alerts.daemon import AlertsDaemon
from logpipe.search.alerts.evaluate import Evaluator
from logpipe.search.alerts.notify import DeliveryError, MailChannel
from logpipe.search.alerts.rules import RuleError, mail_examples, parse_rule
from logpipe.store import open_store
from logpipe.store.base import Event
from tests.fixtures.secrets import register_secret
from tests.support.receivers import smtp_server, webhook_receiver
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc).timestamp()
PASSWORD = "smtp-pw-Zq81xKd0"
SECRET = "hook-secret-9fJw2LmQ"


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def bounce(i: int, second: float, host: str = "mail1") -> Event:
    return Event(f"b{i}", {"@timestamp": at(second), "type": "mail", "logsource": host,
                           "program": "sendmail", "dsn": "5.1.1", "stat": "User unknown",
                           "message": f"{host} sendmail: r{i}: dsn=5.1.1, stat=User unknown"})


def sent(i: int, second: float, host: str = "mail1") -> Event:
    return Event(f"s{i}", {"@timestamp": at(second), "type": "mail", "logsource": host,
                           "program": "sendmail", "dsn": "2.0.0", "stat": "Sent (ok)",
                           "message": f"{host} sendmail: r{i}: dsn=2.0.0, stat=Sent"})


def reject(i: int, second: float, ip: str) -> Event:
    return Event(f"r{i}", {"@timestamp": at(second), "type": "mail", "logsource": "relay",
                           "program": "postfix/smtpd", "action": "reject", "clientip": ip,
                           "qid": "NOQUEUE", "message": f"relay postfix/smtpd: NOQUEUE: reject: "
                           f"RCPT from unknown[{ip}]: 554 5.7.1 <x@y>: Relay access denied"})


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = open_store(url)
    sink.prepare()
    yield sink
    sink.close()


class _Refreshed:
    """A store whose writes are searchable as soon as ``write`` returns (Elasticsearch refreshes
    on its own schedule; the evaluator's clock is injected, the store's refresh is asked for)."""

    def __init__(self, sink):
        self._sink = sink

    def write(self, events):
        outcomes = self._sink.write(events)
        assert all(o.done for o in outcomes), outcomes
        self._sink.refresh()
        return outcomes

    def __getattr__(self, name):
        return getattr(self._sink, name)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def any_store(request, tmp_path):
    """The embedded store, then the session's Elasticsearch node (its logstash-* indices cleaned
    before and after: the node is shared)."""
    if request.param == "sqlite":
        sink = open_store("sqlite:///" + str(tmp_path / "events.db"))
    else:
        request.getfixturevalue("es_client")
        sink = open_store(request.getfixturevalue("es_url"))
    sink.prepare()
    yield _Refreshed(sink)
    sink.close()


@pytest.fixture
def book(tmp_path):
    b = AlertBook(tmp_path / "state" / "alerts.db")
    yield b
    b.close()


def private(path: Path, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return str(path)


def test_the_mail_examples_use_the_mail_types_fields():
    rules = {r.name: r for r in mail_examples()}
    assert set(rules) == {"mail-bounce-spike", "mail-deferred-growth", "mail-sasl-failures",
                          "mail-relay-access-rejects", "mail-silent-server"}
    assert rules["mail-sasl-failures"].group_by == "relayip"      # SENDMAIL_AUTHFAIL's field
    assert rules["mail-relay-access-rejects"].group_by == "clientip"  # POSTFIX_REJECT's
    assert rules["mail-silent-server"].host_field == "logsource"
    grok = (Path(__file__).resolve().parents[2] / "indexer/grok/patterns/mail.grok").read_text()
    for name in ("dsn", "stat", "action", "clientip", "relayip", "authMsg", "logsource"):
        assert f":{name}}}" in grok or f"<{name}>" in grok, name


def test_bad_rules_say_what_to_fix():
    with pytest.raises(RuleError, match="kind must be one of"):
        parse_rule({"name": "x", "kind": "sometimes"})
    with pytest.raises(RuleError, match="needs host"):
        parse_rule({"name": "x", "kind": "silence"})
    with pytest.raises(RuleError, match="needs total_query"):
        parse_rule({"name": "x", "kind": "ratio", "percent": 5})
    with pytest.raises(RuleError, match="invalid interval"):
        parse_rule({"name": "x", "window": "soon"})
    with pytest.raises(RuleError, match="longer than"):
        parse_rule({"name": "x", "window": "1000000d"})
    with pytest.raises(RuleError, match="unknown setting"):
        parse_rule({"name": "x", "treshold": 3})


def test_count_fires_once_while_it_holds_and_resolves(any_store, book):
    store = any_store
    store.write([bounce(i, 60 * i) for i in range(6)] + [sent(i, 60 * i + 5) for i in range(6)])
    rule = parse_rule({"name": "bounces", "query": "dsn:5*", "window": "10m", "threshold": 4})
    clock = Clock(T0 + 360)
    evaluator = Evaluator(store, clock)
    first, _ = evaluator.run([rule], book)
    assert [(n.rule, n.state, n.value) for n in first] == [("bounces", "firing", 6)]
    clock.now += 60                                           # still 6 in the window: no notice
    assert evaluator.run([rule], book)[0] == []
    assert [i["firing"] for i in book.incidents()] == [True]
    clock.now = T0 + 300 + 600                                # the window has moved past most
    resolved, _ = evaluator.run([rule], book)
    assert [(n.state, n.rule) for n in resolved] == [("resolved", "bounces")]
    assert [h["event"] for h in book.history()][:2] == ["resolved", "firing"]
    assert evaluator.run([rule], book)[0] == []               # resolved stays quiet


def test_group_by_silence_and_ratio(any_store, book):
    store = any_store
    store.write([reject(i, i, "192.0.2.7") for i in range(5)] + [reject(9, 3, "198.51.100.1")]
                + [bounce(i, 10 + i) for i in range(3)] + [sent(i, 20 + i) for i in range(7)])
    clock = Clock(T0 + 120)
    ev = Evaluator(store, clock)
    per_ip = parse_rule({"name": "relay", "query": 'action:reject AND "Relay access denied"',
                         "group_by": "clientip", "window": "1h", "threshold": 3})
    silent = parse_rule({"name": "quiet-mx2", "kind": "silence", "host": "mx2", "window": "15m"})
    loud = parse_rule({"name": "quiet-mail1", "kind": "silence", "host": "mail1", "window": "15m"})
    share = parse_rule({"name": "share", "kind": "ratio", "query": "dsn:5*",
                        "total_query": "type:mail AND program:sendmail", "window": "1h",
                        "percent": 25})
    notices, failed = ev.run([per_ip, silent, loud, share], book)
    assert not failed
    got = {(n.rule, n.key) for n in notices}
    assert got == {("relay", "192.0.2.7"), ("quiet-mx2", ""), ("share", "")}
    assert [n.value for n in notices if n.rule == "share"] == [30.0]
    # a second address joins: only it is new
    store.write([reject(20 + i, 60 + i, "198.51.100.1") for i in range(4)])
    again, _ = ev.run([per_ip, silent, loud, share], book)
    assert [(n.rule, n.key, n.state) for n in again] == [("relay", "198.51.100.1", "firing")]


def test_store_not_up_yet_is_waited_for(tmp_path, book, capfd):
    url = "sqlite:///" + str(tmp_path / "later" / "events.db")
    reader = open_store(url)
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nname = "any"\nquery = "*"\nwindow = "1h"\nthreshold = 0\n')
    daemon = AlertsDaemon(reader, str(rules), book, clock=Clock(T0 + 60))
    assert daemon.once().store_down
    assert daemon.once().store_down                            # one line, not one per pass
    sink = open_store(url)                                     # the indexer creates the store
    sink.prepare()
    sink.write([sent(1, 10)])
    sink.close()
    result = daemon.once()
    assert not result.store_down and [n.state for n in result.notices] == ["firing"]
    err = capfd.readouterr().err
    assert err.count("store_unreachable") == 1 and "store_back" in err
    reader.close()


def _config(tmp_path, mail: dict, hook_url: str | None = None, secret: str = SECRET):
    data: dict = {"rules": [{"name": "bounces", "query": "dsn:5*", "window": "10m",
                             "threshold": 2}],
                  "evaluate": {"page_url": "http://127.0.0.1:5601/alerts"}, "mail": mail}
    if hook_url:
        data["webhook"] = {"url": hook_url,
                           "secret_file": private(tmp_path / "hook.secret", secret + "\n")}
    return data


def _write_toml(path: Path, data: dict) -> str:
    def value(v):
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for section in ("evaluate", "mail", "webhook"):
        if section in data:
            out.append(f"[{section}]")
            out += [f"{k} = {value(v)}" for k, v in data[section].items()]
    for rule in data.get("rules", []):
        out.append("[[rules]]")
        out += [f"{k} = {value(v)}" for k, v in rule.items()]
    path.write_text("\n".join(out) + "\n")
    return str(path)


def test_starttls_auth_mail_and_signed_webhook_fire_dedup_resolve(tmp_path, store, book):
    register_secret(PASSWORD)
    register_secret(SECRET)
    ca = TestCA(tmp_path / "ca")
    pair = ca.issue("smtp")
    creds = private(tmp_path / "smtp.auth", f"username = alerts\npassword = {PASSWORD}\n")
    store.write([bounce(i, 30 * i) for i in range(4)])
    clock = Clock(T0 + 120)
    with smtp_server(tls=(pair.cert, pair.key), login=("alerts", PASSWORD)) as (port, box), \
            webhook_receiver(SECRET.encode()) as (url, hooks):
        mail = {"host": "127.0.0.1", "port": port, "security": "starttls",
                "ca_file": str(ca.cert), "from": "logpipe@example.org",
                "to": ["postmaster@example.org"], "credentials_file": creds}
        rules = _write_toml(tmp_path / "alerts.toml", _config(tmp_path, mail, url))
        daemon = AlertsDaemon(store, rules, book, clock=clock)
        first = daemon.once()
        assert [(n.state, n.value) for n in first.notices] == [("firing", 4)]
        assert sorted(c for _, c in first.delivered) == ["mail", "webhook"]
        msg = box.wait_for(1)[0]
        assert msg["Subject"] == "[logpipe] FIRING: bounces"
        assert "4 events of [dsn:5*]" in msg.get_content()
        assert box.sessions == [(True, "alerts")]             # over STARTTLS, authenticated
        ok, body = hooks.wait_for(1)[0]
        assert ok and body["rule"] == "bounces" and body["state"] == "firing"
        clock.now += 60
        assert daemon.once().notices == []                    # deduplicated while firing
        clock.now = T0 + 90 + 600 + 1
        last = daemon.once()
        assert [n.state for n in last.notices] == ["resolved"]
        assert box.wait_for(2)[1]["Subject"] == "[logpipe] RESOLVED: bounces"
        assert hooks.wait_for(2)[1][1]["state"] == "resolved"
        assert len(box.messages) == 2 and len(hooks.received) == 2
    events = [h["event"] for h in book.history()]
    assert events.count("delivered") == 4 and "delivery_failed" not in events
    for h in book.history():
        assert PASSWORD not in h["detail"] and SECRET not in h["detail"]


def test_plain_smtp_mute_and_a_wrong_signature_secret(tmp_path, store, book):
    store.write([bounce(i, 30 * i) for i in range(4)])
    clock = Clock(T0 + 120)
    with smtp_server() as (port, box), webhook_receiver(b"another-secret") as (url, hooks):
        mail = {"host": "127.0.0.1", "port": port, "security": "none",
                "from": "logpipe@example.org", "to": ["postmaster@example.org"]}
        rules = _write_toml(tmp_path / "alerts.toml", _config(tmp_path, mail, url))
        daemon = AlertsDaemon(store, rules, book, clock=clock)
        book.mute("bounces", 3600, "tester", now=clock.now)
        muted = daemon.once()
        assert [n.muted for n in muted.notices] == [True] and muted.delivered == []
        book.mute("bounces", 0, "tester", now=clock.now)
        clock.now = T0 + 90 + 600 + 1
        resolved = daemon.once()                                  # delivered: no longer muted
        assert ("bounces//resolved", "mail") in resolved.delivered
        assert box.wait_for(1)[0]["Subject"] == "[logpipe] RESOLVED: bounces"
        assert box.sessions == [(False, None)]
        # the receiver holds another secret: it refuses, the failure is recorded and retried
        assert resolved.undelivered == ["bounces//resolved webhook"]
        assert hooks.wait_for(1)[0][0] is False
    failed = [h for h in book.history() if h["event"] == "delivery_failed"]
    assert "HTTP 401" in failed[0]["detail"] and "same secret" in failed[0]["detail"]


def test_wrong_smtp_password_and_open_credentials_are_actionable(tmp_path):
    register_secret("wrong-pw-Kq02mZx9")
    ca = TestCA(tmp_path / "ca")
    pair = ca.issue("smtp")
    creds = private(tmp_path / "smtp.auth", "username = alerts\npassword = wrong-pw-Kq02mZx9\n")
    with smtp_server(tls=(pair.cert, pair.key), login=("alerts", PASSWORD)) as (port, box):
        mail = {"host": "127.0.0.1", "port": port, "security": "starttls", "ca_file": str(ca.cert),
                "from": "a@example.org", "to": ["b@example.org"], "credentials_file": creds}
        config = parse_config({"mail": mail})
        channel = MailChannel(config.mail)
        from logpipe.search.alerts.book import Notice
        with pytest.raises(DeliveryError) as refused:
            channel.send(Notice("r", "", "firing", T0, 1, "m", "c"))
        assert "refused the login" in str(refused.value) and "wrong-pw" not in str(refused.value)
        assert box.refused_logins >= 1 and box.messages == []  # smtplib tries each mechanism
        untrusted = parse_config({"mail": {**mail, "ca_file": None}}).mail
        with pytest.raises(DeliveryError, match="not trusted.*ca_file"):
            MailChannel(untrusted).send(Notice("r", "", "firing", T0, 1, "m", "c"))
    os.chmod(creds, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        MailChannel(config.mail)


def test_cli_lists_and_tests_rules(tmp_path, store):
    store.write([bounce(i, 30 * i) for i in range(3)])
    rules = tmp_path / "alerts.toml"
    rules.write_text("[evaluate]\nexamples = true\n[[rules]]\nname = \"any-bounce\"\n"
                     "query = \"dsn:5*\"\nwindow = \"3650d\"\nthreshold = 0\n")
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home")}
    run = [sys.executable, "-m", "logpipe.common.cli", "alerts"]
    listed = subprocess.run(run + ["list", "--rules", str(rules)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "mail-bounce-spike" in listed.stdout and "any-bounce" in listed.stdout
    tested = subprocess.run(run + ["test", "any-bounce", "--rules", str(rules), "--store",
                                   store.url], capture_output=True, text=True, env=env,
                            timeout=120)
    assert tested.returncode == 0, tested.stderr
    assert "any-bounce: WOULD FIRE: 3 events" in tested.stdout
    bad = subprocess.run(run + ["list", "--rules", str(tmp_path / "missing.toml")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def _parsed(lines: list[str]) -> list[Event]:
    from logpipe.common.record import Record, record_id
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline

    pipeline = Pipeline(load_pipeline())
    return [pipeline.process(Record(id=record_id("relay", "alerts", n), line=line, host="relay",
                                    path="/var/log/maillog", offset=n, type="mail",
                                    received_at=1368583200.0 + n))
            for n, line in enumerate(lines)]


AUTH_FAIL = ("May 15 02:01:0{n} mail1 sendmail[4242]: p4F210QG07603{n}: AUTH failure (LOGIN): "
             "authentication failure (-13) SASL(-13): authentication failure: checkpass failed, "
             "user=bob, relay=dsl.example.net [{ip}]")
RELAY_REJECT = ("May 15 02:02:0{n} relay postfix/smtpd[77]: NOQUEUE: reject: RCPT from "
                "unknown[{ip}]: 554 5.7.1 <x@example.com>: Relay access denied; from=<a@b.c> "
                "to=<x@example.com> proto=ESMTP helo=<h>")


def test_the_mail_examples_judge_alike_on_both_stores(tmp_path, es_client, es_url):
    """The built-in rules over the same parsed maillog (the pipeline's own fields and types),
    judged by the evaluator on the embedded store and on Elasticsearch: the same breaches,
    the same counts, the same group values (IP-typed fields too: 9.9.9.9 is not 10.0.0.1)."""
    from logpipe.search.alerts.rules import MAIL_EXAMPLES
    from tests.support.web import mail_events

    ips = ["9.9.9.9", "10.0.0.1", "10.0.0.1"]
    events = mail_events(400) + _parsed(
        [AUTH_FAIL.format(n=n, ip=ip) for n, ip in enumerate(ips)]
        + [RELAY_REJECT.format(n=n, ip=ip) for n, ip in enumerate(ips + ["203.0.113.5"])])
    rules = [parse_rule({**raw, **({} if raw["kind"] == "silence" else {"threshold": 0})},
                        source="example") for raw in MAIL_EXAMPLES]
    now = datetime(2013, 5, 15, 2, 6, tzinfo=timezone.utc).timestamp()
    judged = {}
    for url in ("sqlite:///" + str(tmp_path / "events.db"), es_url):
        sink = open_store(url)
        sink.prepare()
        _Refreshed(sink).write(events)
        evaluator = Evaluator(sink, Clock(now))
        judged[url.split(":")[0]] = {r.name: evaluator.breaches(r) for r in rules}
        sink.close()
    embedded, es = judged["sqlite"], judged["http"]
    assert es == embedded
    assert embedded["mail-bounce-spike"][""][0] == 3                  # dsn 5.1.2, three times
    assert embedded["mail-deferred-growth"][""][0] == 15
    assert {k: v[0] for k, v in embedded["mail-sasl-failures"].items()} == \
        {"10.0.0.1": 2, "9.9.9.9": 1}
    assert {k: v[0] for k, v in embedded["mail-relay-access-rejects"].items()} == \
        {"10.0.0.1": 2, "9.9.9.9": 1, "203.0.113.5": 1}
    assert embedded["mail-silent-server"] == {}                       # mail1 spoke
