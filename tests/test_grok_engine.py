"""The grok engine: references, captures, Oniguruma syntax, errors, time budget, dispatch."""

from __future__ import annotations

import threading

import pytest

from logpipe.common.errors import GrokError
from logpipe.indexer.grok.compiler import compile_grok, required_literals, split_pieces
from logpipe.indexer.grok.library import Library, parse_pattern_text
from logpipe.indexer.grok.matcher import Matcher, matcher_for
from logpipe.indexer.pipeline_config import TypeConfig


def test_named_and_unnamed_references_and_types():
    m = Matcher(["%{WORD:verb} %{INT:n:int} %{NUMBER:x:float} %{WORD}"])
    caps, tags = m.match("GET 42 3.5 tail")
    assert tags == []
    assert caps == {"verb": "GET", "n": 42, "x": 3.5}   # unnamed %{WORD} captures nothing


def test_int_conversion_is_ruby_to_i():
    m = Matcher([r"(?<v>\S+)"], definitions=None)
    m2 = Matcher(["%{NOTSPACE:v:int}"])
    assert m2.match("12abc")[0] == {"v": 12}
    assert m2.match("abc")[0] == {"v": 0}
    assert m.match("x")[0] == {"v": "x"}


def test_recursive_references_and_cycle_error():
    defs = {"A": "%{B}-%{B}", "B": "[0-9]+"}
    assert Matcher(["%{A:a}"], defs).match("x 12-34 y")[0] == {"a": "12-34"}
    with pytest.raises(GrokError) as exc:
        Matcher(["%{X}"], {"X": "a%{Y}", "Y": "b%{X}"})
    assert "reference cycle: X -> Y -> X" in str(exc.value)


def test_oniguruma_named_groups_and_odd_field_names():
    m = Matcher([r"(?<qid>\w+): (?'who'\w+) %{WORD:[nested][f]} %{WORD:@ts}"])
    assert m.match("AB12: bob x y")[0] == {"qid": "AB12", "who": "bob", "[nested][f]": "x",
                                            "@ts": "y"}


def test_same_field_in_alternatives_takes_the_matching_branch():
    m = Matcher([r"(?:from=(?<addr>\S+)|to=(?<addr>\S+)|relay=%{WORD:addr})"])
    assert m.match("to=bob")[0] == {"addr": "bob"}
    assert m.match("from=alice")[0] == {"addr": "alice"}
    assert m.match("relay=mx1")[0] == {"addr": "mx1"}


def test_repeated_group_keeps_last_iteration_and_earlier_fields():
    m = Matcher([r"((?:k=(?<k>\w+)|v=(?<v>\w+))(, |$))*"])
    caps, _ = m.match("k=a, v=b, k=c")
    assert caps == {"k": "c", "v": "b"}


def test_plain_groups_do_not_capture_and_literal_angle_group():
    # the 2013 config's typo: (<dsn>...) is a plain group matching the literal text '<dsn>'
    m = Matcher([r"dsn=(<dsn>[^,]+)"])
    assert m.match("dsn=2.0.0") == (None, ["_grokparsefailure"])
    assert m.match("dsn=<dsn>2.0.0")[0] == {}


def test_posix_classes_nested_sets_atomic_lookbehind_hex():
    m = Matcher([r"(?<u>[[[:alnum:]]_%!$@:.,+~-]+) (?>a+)b(?<=b) +(?<h>\h+)"])
    caps, _ = m.match("us_er@x.y ab  ff0A")
    assert caps == {"u": "us_er@x.y", "h": "ff0A"}


def test_mid_pattern_flag_is_scoped_and_ruby_m_is_dotall():
    assert Matcher([r"(?<a>x(?i)ABC)d"]).match("xabcd")[0] == {"a": "xabc"}
    assert Matcher([r"(?<a>x(?i)ABC)D"]).match("xabcd") == (None, ["_grokparsefailure"])
    assert Matcher([r"(?m)a.b"]).match("a\nb")[0] == {}


def test_backreference_by_name_and_number():
    assert Matcher([r"(?<q>['\"])(?<body>.*?)\k<q>"]).match("say 'hi'")[0] == {"q": "'", "body": "hi"}
    assert Matcher([r"(\w)\1"]).match("abccd")[0] == {}


def test_first_match_wins_in_order():
    m = Matcher(["%{INT:num}", "%{WORD:word}"])
    assert m.match("abc 12")[0] == {"num": "12"}      # pattern 1 wins though 2 matches earlier
    assert m.match("abc")[0] == {"word": "abc"}


def test_non_participating_captures_are_left_out():
    caps, _ = Matcher(["%{WORD:a}(?: %{INT:b})?"]).match("x")
    assert caps == {"a": "x"}


def test_custom_pattern_files_and_inline_override(tmp_path):
    d = tmp_path / "pats"
    d.mkdir()
    (d / "mine").write_text("# my patterns\n\nQID [0-9A-Za-z]{14}\nMAILQ %{QID:qid}: %{GREEDYDATA:rest}\n")
    m = Matcher(["%{MAILQ}"], patterns_dirs=[str(d)])
    assert m.match("x j061bW9V000809: hello")[0] == {"qid": "j061bW9V000809", "rest": "hello"}
    m2 = Matcher(["%{MAILQ}"], {"QID": "[a-z]+"}, [str(d)])  # inline definitions win
    assert m2.match("abc: hi")[0] == {"qid": "abc", "rest": "hi"}


def test_unknown_reference_reports_pattern_and_position():
    with pytest.raises(GrokError) as exc:
        Matcher(["%{WORD:a} %{NOPE:b}"])
    text = str(exc.value)
    assert "unknown pattern %{NOPE}" in text and "position 10" in text
    assert exc.value.position == 10


def test_bad_regex_in_pattern_file_names_file_and_line(tmp_path):
    f = tmp_path / "broken.grok"
    f.write_text("GOOD \\w+\n# comment\nBAD (?<x>[a-z\n")
    with pytest.raises(GrokError) as exc:
        Matcher(["%{GOOD}"], patterns_dirs=[str(f)])   # reported at load, though unused
    assert exc.value.path == str(f) and exc.value.line == 3
    assert "character class" in str(exc.value)


def test_bad_regex_position_maps_through_references():
    with pytest.raises(GrokError) as exc:
        Matcher(["%{WORD:w} (?<n>x{2,1})"])
    assert exc.value.pattern == "%{WORD:w} (?<n>x{2,1})"
    assert exc.value.position is not None and exc.value.position >= 15


def test_malformed_pattern_file_line():
    with pytest.raises(GrokError) as exc:
        parse_pattern_text("OK a\nNOSPACE\n", "f.grok")
    assert exc.value.line == 2 and "f.grok:2" in str(exc.value)


def test_timeout_tags_and_never_hangs():
    m = Matcher([r"^(a|aa)+\1$"], timeout=0.1)
    assert m.match("a" * 40 + "b") == (None, ["_groktimeout"])
    assert m.match("aaaa")[1] == []                    # the next line is fine
    assert m.match_with_timeout("a" * 40 + "b") == (None, ["_groktimeout"])


def test_timeout_in_a_thread():
    m = Matcher([r"^(a|aa)+\1$"], timeout=0.1)
    out = []
    t = threading.Thread(target=lambda: out.append(m.match("a" * 40 + "b")))
    t.start()
    t.join(10)
    assert out == [(None, ["_groktimeout"])]


def test_required_literals_dispatch():
    lib = Library()
    c = compile_grok(r"%{SYSLOGBASE2} (?<program>(sendmail|sm-mta[^,\[]+)): (?<qid>NOQUEUE): connect from %{IP}", lib)
    req = required_literals(c.pattern)
    flat = {s for alts in req for s in alts}
    assert ": NOQUEUE: connect from " in flat
    assert ("sendmail", "sm-mta") in req or ("sm-mta", "sendmail") in req or \
        any(set(a) == {"sendmail", "sm-mta"} for a in req)
    assert required_literals(compile_grok("(?i)abc", lib).pattern) == []


def test_dispatch_keeps_first_match_wins():
    pats = ["%{WORD:a} Milter %{GREEDYDATA:m}", "%{WORD:a}: %{GREEDYDATA:rest}", "%{GREEDYDATA:all}"]
    fast = Matcher(pats)
    plain = Matcher(pats, prefilter=False)
    for line in ["q: Milter add: x", "q: to=<a>", "nothing here", "Milter: x"]:
        assert fast.match(line) == plain.match(line)


def test_matcher_for_caches_per_process():
    tc = TypeConfig("t", patterns=["%{WORD:w}"])
    assert matcher_for(tc) is matcher_for(TypeConfig("other", patterns=["%{WORD:w}"]))


def test_split_pieces_round_trips():
    expr = r"%{SYSLOGBASE} (?<qid>\S+): [a-z\]]+x? \(may\)*%{INT:n:int}$"
    pieces = split_pieces(expr)
    assert "".join(pieces) == expr
    assert pieces[0] == "%{SYSLOGBASE}" and "(?<qid>\\S+)" in pieces and "\\(" in pieces


def test_pieces_and_required_literals_step_over_a_class_the_same_way():
    """One class skipper: POSIX classes inside a class, and a half-typed ``[:`` that runs to the
    end (the debugger splits it; the literal scan keeps only what comes before it)."""
    assert split_pieces(r"abcd[[:alpha:]x]+efgh[[:") == [*"abcd", "[[:alpha:]x]+", *"efgh", "[[:"]
    assert required_literals(r"abcd[[:alpha:]x]efgh") == [("abcd",), ("efgh",)]
    assert required_literals(r"abcd[[:efgh") == [("abcd",)]
