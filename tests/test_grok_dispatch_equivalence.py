"""The fast matcher (generated literal dispatch, captures built in C) gives exactly what the plain
rule gives: each pattern in order searched with the regex module, first match wins, a field
captured by several groups keeps every value (a list), conversions applied -- on corpus and
generated lines for every built-in type."""

from __future__ import annotations

import pytest

from logpipe.services.loggen import generate
from logpipe.indexer.grok.matcher import Matcher, to_float, to_int
from logpipe.indexer.pipeline_config import load_pipeline as load
from tests.conftest import CORPUS

CORPUS_FILES = ["mail_extra.log", "sendmail-auth.log", "sendmail-reject.log", "dovecot.log",
                "postfix.log", "linux.log", "openssh.log", "sshd.log", "apache_error.log",
                "exim.log"]


def reference(matcher: Matcher, line: str):
    for c in matcher.compiled:
        m = c.regex.search(line)
        if m is None:
            continue
        values: dict = {}
        for cap in c.captures:
            value = m.group(cap.group)
            if value is None:
                continue
            if cap.conv:
                value = to_int(value) if cap.conv == "int" else to_float(value)
            values.setdefault(cap.field, []).append(value)
        # a field several groups took part in keeps every value, in the pattern's order
        out = {f: v[0] if len(v) == 1 else v for f, v in values.items()}
        return out
    return None


def lines_for(kind: str) -> list[str]:
    lines = list(generate(kind, 3000, seed=7))
    for name in CORPUS_FILES:
        path = CORPUS / name
        if path.exists():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()[:2000]
    return lines


@pytest.mark.parametrize("type_name,kind", [("mail", "mail"), ("syslog", "syslog"),
                                            ("sshd", "sshd"), ("apache", "apache")])
def test_fast_matcher_equals_the_plain_rule(type_name, kind):
    tc = load(None).types[type_name]
    matcher = Matcher(list(tc.patterns), dict(tc.pattern_definitions), list(tc.patterns_dir))
    lines = lines_for(kind)
    matched = 0
    for line in lines:
        got, tags = matcher.match(line)
        assert got == reference(matcher, line), line
        assert tags == ([] if got is not None else ["_grokparsefailure"])
        matched += got is not None
    assert matched > len(lines) // 2
