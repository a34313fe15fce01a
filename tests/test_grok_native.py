"""PCRE2's grok searches (indexer/grok/native.py, the C module _pcre) give what Python's re gives:
the same captures, in the same order, on every line (ASCII or not, with a newline or not, hostile
or not), for every built-in type and every pattern of the library; and a hostile line still ends
in ``_groktimeout`` under the watchdog's time budget."""

from __future__ import annotations

import os
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from logpipe.indexer.grok import native
from logpipe.indexer.grok.compiler import compile_grok
from logpipe.indexer.grok.library import build_library
from logpipe.indexer.grok.matcher import Matcher
from logpipe.indexer.pipeline_config import load_pipeline
from logpipe.services.loggen import generate
from tests.conftest import corpus_lines

if native._pcre is None:
    if os.environ.get("LOGPIPE_EXPECT_NATIVE") == "1":   # CI builds it: its absence is a failure
        pytest.fail("the PCRE2 module (indexer/grok/_pcre.c) was not built; libpcre2-dev?",
                    pytrace=False)
    pytest.skip("the PCRE2 module is not built here (libpcre2-dev missing at install)",
                allow_module_level=True)

KINDS = {"mail": "mail", "syslog": "syslog", "sshd": "sshd", "apache": "apache"}


def variants(line: str) -> list[str]:
    """The line, and forms PCRE2 must leave to re or read as re does: non-ASCII, a newline
    inside or at the end, str.isspace's ASCII separators, a vertical tab, a carriage return."""
    head, _, tail = line.partition(" ")
    return [line, line + "\n", f"{head}\n{tail}", f"{head} é{tail}", f"{head}\x1c{tail}",
            f"{head}\x0b{tail}", line.replace(" ", "\x1f", 2), line + "\r", line.upper()]


def matchers(type_name: str) -> tuple[Matcher, Matcher]:
    tc = load_pipeline(None).types[type_name]
    args = (list(tc.patterns), dict(tc.pattern_definitions), list(tc.patterns_dir))
    with_pcre = Matcher(*args)
    os.environ["LOGPIPE_GROK_NATIVE"] = "0"
    try:
        plain = Matcher(*args)
    finally:
        del os.environ["LOGPIPE_GROK_NATIVE"]
    return with_pcre, plain


def native_entries(m: Matcher) -> int:
    return sum(extract is None for _, extract, _ in m._entries)


@pytest.mark.parametrize("type_name", sorted(KINDS))
def test_pcre_captures_equal_re_captures_for_every_builtin_type(type_name):
    with_pcre, plain = matchers(type_name)
    assert native_entries(with_pcre) >= 1, "no pattern of this type runs on PCRE2"
    assert native_entries(plain) == 0
    lines = [v for line in list(generate(KINDS[type_name], 2000, seed=11)) + corpus_lines()
             for v in variants(line)]
    matched = 0
    for line in lines:
        got, want = with_pcre.match(line), plain.match(line)
        # the same dict in the same order (the stored document keeps the order)
        assert got == want, line
        if got[0] is not None:
            assert list(got[0]) == list(want[0]), line
            matched += 1
    assert matched > len(lines) // 20


def library_lines() -> list[str]:
    lines = corpus_lines(200)
    for kind in KINDS.values():
        lines += list(generate(kind, 100, seed=3))
    lines += ["", " ", "-", "0", "1.5", "-3e7", "a_b", "[x]", "2026-12-07T23:40:01.123+01:00",
              "Dec  7 23:40:01", "::1", "fe80::1%eth0", "10.0.0.300", "user@example.org",
              "GET /a?b=c HTTP/1.1", "\x1c\x1d", "tab\there", "x\x0by"]
    return lines


def test_every_library_pattern_gives_re_groups():
    """Each definition of the built-in library alone, through PCRE2 and through re."""
    library = build_library()
    lines = library_lines()
    checked = refused = 0
    for name in library.names():
        try:
            c = compile_grok("%{" + name + "}", library)
        except Exception:
            continue
        if c.fast is None:
            continue
        pattern = native.native_pattern(c.fast)
        if pattern is None:
            refused += 1
            continue
        checked += 1
        for line in lines:
            m = c.fast.search(line)
            assert pattern.groups(line) == (None if m is None else m.groups()), (name, line)
    assert checked > 100 and refused < checked // 10, (checked, refused)


def test_translation_keeps_python_meanings():
    t = native.translate
    assert t(r"a\sb") == r"a[\s\x1c-\x1f]b"
    assert t(r"\S+") == r"[^\s\x1c-\x1f]+"
    assert t(r"[\s,]") == r"[\s\x1c-\x1f,]"
    assert t(r"x\Z") == r"x\z"
    assert t(r"\v") == r"\x0b"
    assert t(r"\u00e9\x41") == r"\x{00e9}\x{41}"
    assert t(r"a{,3}") == r"a{0,3}"
    assert t(r"[[:alpha:]]") == r"[\[:alpha:]]"       # re reads a set of characters, then ]
    assert t(r"[]a]") == r"[\]a]"
    assert t(r"(?P<g0>\d+)(?P=g0)") == r"(?P<g0>\d+)(?P=g0)"
    for refused in (r"[\S]", r"\N{DASH}", r"(?a)x", r"(?x) a", r"(?i)é"):
        with pytest.raises(native.NotTranslatable):
            t(refused)
    with pytest.raises(native.NotTranslatable):
        t("a", re.VERBOSE)


SAMPLES = [r"(?P<a>\w+)\s+(?P<b>\S+)?", r"^(?P<x>[^,]+(?:,(?! )[^,]*)*)(?:, (?P<y>.*))?$",
           r"(?P<n>[+-]?\d+(?:\.\d+)?)\b", r"(?i)(?P<w>ab|a)(?P<r>b?)c", r"(?:(?P<p>a)|b)+",
           r"(?P<e>)x*?(?P<f>y{,2})\Z", r"(?P<q>\s*)(?P<s>[\s\x1c]+)(?P<t>[^\s]*)",
           r"(?=(?P<l>a+))a*b|(?P<m>\.)",
           # empty iterations of a repeated group, where backtracking engines could disagree
           r"(?P<g>a|)*b", r"(?:(?P<h>a)|(?P<i>))*$", r"(?P<j>(?:ab|a)*?)b", r"(?P<k>x*)+y"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES),
       st.text(alphabet=string.ascii_letters[:6] + "xy" + string.digits[:4] + " ,.+-\t\x0b\x1c\x1f\né",
               max_size=40))
def test_pcre_groups_equal_re_groups_on_any_text(pattern, text):
    fast = re.compile(pattern, re.MULTILINE)
    compiled = native.native_pattern(fast)
    assert compiled is not None
    m = fast.search(text)
    assert compiled.groups(text) == (None if m is None else m.groups())


def test_a_hostile_line_still_times_out_under_the_watchdog():
    """PCRE2 gives up at its match limit; re, under the watchdog, then tags the line; the next
    line is PCRE2's again."""
    m = Matcher([r"^(a|aa)+\1$"], timeout=0.1)
    assert native_entries(m) == 1
    assert m.match("a" * 40 + "b") == (None, ["_groktimeout"])
    assert m.match("aaaa") == ({}, [])


def test_a_type_whose_patterns_all_run_on_pcre2_is_dispatched_in_c():
    """The mail type's dispatch runs in C (native.pattern_set); a hostile line it hands to re
    still times out there, and the next line is fine."""
    with_pcre, _ = matchers("mail")
    assert with_pcre.match.__qualname__.startswith("_build_set")
    m = Matcher([r"^(a|aa)+\1$", r"^%{INT:n:int}$"], timeout=0.1)
    assert m.match.__qualname__.startswith("_build_set")
    assert m.match("a" * 40 + "b") == (None, ["_groktimeout"])
    assert m.match("42") == ({"n": 42}, [])
    assert m.match("aaaa") == ({}, [])
    assert m.match("x") == (None, ["_grokparsefailure"])
    tags = m.match("x")[1]
    tags.append("mine")   # each answer's tags are its own list
    assert m.match("x") == (None, ["_grokparsefailure"])


def test_captures_with_conversions_and_repeated_fields_match_re():
    pattern = r"%{INT:n:int} %{NUMBER:f:float} (?:%{WORD:w}|%{INT:w:int}) %{WORD:w}"
    m = Matcher([pattern, r"%{WORD:other}"])
    os.environ["LOGPIPE_GROK_NATIVE"] = "0"
    try:
        plain = Matcher([pattern, r"%{WORD:other}"])
    finally:
        del os.environ["LOGPIPE_GROK_NATIVE"]
    assert native_entries(m) == 2
    for line in ("12 3.5 abc def", "12 3.5 -42 def", "x", "7x 1e3 a b"):
        assert m.match(line) == plain.match(line)
    assert m.match("12 3.5 abc def")[0] == {"n": 12, "f": 3.5, "w": ["abc", "def"]}
    assert m.match("12 3.5 -42 def")[0] == {"n": 12, "f": 3.5, "w": [-42, "def"]}


def test_the_engine_is_named_for_the_start_line(monkeypatch):
    assert re.fullmatch(r"pcre2-\d+\.\d+-(jit|nojit)", native.engine()), native.engine()
    monkeypatch.setenv("LOGPIPE_GROK_NATIVE", "0")
    assert native.engine() == "re (LOGPIPE_GROK_NATIVE=0)"
    assert native.captures_search(re.compile("(?P<a>a)"), (("a", ((1, 0),)),), ()) is None
