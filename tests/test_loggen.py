"""The log generator: deterministic, realistic, parseable."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from typer.testing import CliRunner

from logpipe.indexer.grok.matcher import matcher_for
from logpipe.indexer.pipeline_config import builtin_pipeline
from logpipe.services.loggen import app, generate

_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def test_deterministic_for_a_seed():
    assert list(generate("mail", 500, seed=3)) == list(generate("mail", 500, seed=3))
    assert list(generate("mail", 200, seed=3)) != list(generate("mail", 200, seed=4))


def test_mail_messages_tie_together_by_qid():
    lines = list(generate("mail", 4000, seed=1))
    m = matcher_for(builtin_pipeline().for_type("mail"))
    by_qid: dict[str, list[dict]] = {}
    for line in lines:
        caps, tags = m.match(line)
        assert tags == [], line
        if re.fullmatch(r"[0-9A-Za-z]{14}", caps.get("qid", "")):
            by_qid.setdefault(caps["qid"], []).append(caps)
    assert len(by_qid) > 300
    complete = 0
    for qid, events in by_qid.items():
        assert qid[8:].isdigit()
        froms = [e for e in events if "from" in e and e["program"] == "sendmail"]
        tos = [e for e in events if "to" in e and "stat" in e]
        if froms and tos:
            complete += 1
            assert all(t["stat"].startswith(("Sent", "Deferred", "Host unknown")) for t in tos)
    assert complete > 300
    programs = {c["program"] for c in (m.match(ln)[0] for ln in lines)}
    assert {"sendmail", "dovecot", "opendkim", "milter-greylist", "MailScanner"} <= programs


def test_timestamps_increase_and_start_is_honoured():
    start = datetime(2024, 2, 28, 23, 59, 0, tzinfo=timezone.utc)
    stamps = []
    for line in generate("syslog", 300, seed=2, start=start):
        mon, day, hms = line.split()[:3]
        stamps.append((_MONTHS[mon], int(day), hms))
    assert stamps == sorted(stamps) and stamps[0][:2] == (2, 28) and stamps[-1][:2] == (2, 29)


def test_other_kinds_parse_with_their_pipelines():
    for kind in ("syslog", "sshd", "apache"):
        m = matcher_for(builtin_pipeline().for_type(kind))
        lines = list(generate(kind, 500, seed=9))
        assert all(m.match(ln)[1] == [] for ln in lines), kind
    caps = matcher_for(builtin_pipeline().for_type("apache")).match(
        next(generate("apache", 1, seed=1)))[0]
    assert {"clientip", "verb", "request", "response", "bytes", "agent"} <= set(caps)


def test_cli_writes_lines(tmp_path):
    out = tmp_path / "a.log"
    r = CliRunner().invoke(app, ["--kind", "sshd", "--lines", "25", "--seed", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines() == list(generate("sshd", 25, seed=4))
    r = CliRunner().invoke(app, ["--kind", "nope"])
    assert r.exit_code != 0 and "unknown kind" in r.output
