"""The embedded store's full-text body of an ASCII message from the C module (query/_fts.c) is
the regular expression substitution's, character for character: on generated lines of every
type, on the corpus, on text made of the characters the rule looks at, and at the edges."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from logpipe.query import analyzer
from logpipe.services.loggen import generate
from tests.conftest import corpus_lines

try:
    from logpipe.query import _fts
except ImportError:
    if os.environ.get("LOGPIPE_EXPECT_NATIVE") == "1":   # CI builds it: its absence is a failure
        pytest.fail("the full-text C module (query/_fts.c) was not built", pytrace=False)
    pytest.skip("the full-text C module is not built here (no compiler at install)",
                allow_module_level=True)

# what the rule reads: the five marks, letters and digits on either side, and what is neither
ALPHABET = ".:',;aZ09_ -@/\t"


def lines() -> list[str]:
    out = [line for kind in ("mail", "syslog", "sshd", "apache")
           for line in generate(kind, 3000, seed=5)] + corpus_lines(3000)
    return [line for line in out if line.isascii()]


def test_the_module_is_what_fts_text_uses():
    assert analyzer._ascii_body is _fts.ascii_body


def test_real_lines_get_the_same_body_from_both():
    found = lines()
    assert len(found) >= 12000
    differ = [line for line in found
              if _fts.ascii_body(line) != analyzer._ascii_body_re(line)]
    assert differ == []
    # the rule at work on a mail line: hosts and addresses stay whole, times and lists split
    line = "May 15 02:10:34 mx1 sendmail[1]: r4F2: to=<a.b@ex.org>, delay=00:00:01, 10.0.0.8"
    assert _fts.ascii_body(line) == ("May 15 02 10 34 mx1 sendmail[1]  r4F2  to=<a.b@ex.org>  "
                                     "delay=00 00 01  10.0.0.8")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_any_text_of_the_characters_the_rule_reads(text):
    assert _fts.ascii_body(text) == analyzer._ascii_body_re(text)


@pytest.mark.parametrize("text", ["", ".", "a.", ".a", "a.b", "1,2", "1:2", "a,b", "a'b", "1'2",
                                  "a.1", "1.a", "..", "a..b", "1.2.3", "x;y", "9;9"])
def test_the_edges(text):
    assert _fts.ascii_body(text) == analyzer._ascii_body_re(text)


def test_text_that_is_not_ascii_is_refused_and_fts_text_tokenises_it():
    with pytest.raises(ValueError):
        _fts.ascii_body("café.au.lait")
    with pytest.raises(ValueError):
        _fts.ascii_body(b"bytes")  # type: ignore[arg-type]
    assert analyzer.fts_text("Café.au.lait à 10,5") == "café.au.lait à 10,5"
