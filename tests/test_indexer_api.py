"""indexer/api.py: what the search side uses of the indexer (no broker needed here)."""

from logpipe.common.record import Record, encode
from logpipe.indexer import api
from logpipe.indexer.grok.matcher import Matcher


def test_explain_says_how_far_a_pattern_gets_and_which_piece_failed():
    matcher = Matcher(["%{WORD:a} %{INT:b} end"], {}, [])
    found = api.explain("%{WORD:a} %{INT:b} end", matcher, "hello 42 stop")
    assert found["failed_piece"] == "e"         # the literal "end" is split per character
    assert "".join(found["pieces"][:found["matched"]]) == "%{WORD:a} %{INT:b} "
    assert (found["start"], found["end"]) == (0, len("hello 42 "))
    # grok debug's code lives in the grok package, not in its CLI module
    assert api.explain.__module__ == "logpipe.indexer.grok.explain"


def test_closest_pattern_of_a_dead_record_uses_its_types_patterns():
    pipeline = api.load_parse_pipeline(None)
    raw = encode(Record(id="h-1", line="Dec  7 12:00:00 host sshd[1]", type="sshd"))
    found = api.closest_pattern(pipeline, raw, "h-1")
    assert found is not None
    assert found["type"] == "sshd"
    assert found["pattern"] in pipeline.config.for_type("sshd").patterns
    assert 0 < found["matched"] < found["pieces"]
    assert found["line"] == "Dec  7 12:00:00 host sshd[1]"
    assert found["good"] and found["failed_piece"]


def test_closest_pattern_tries_only_the_first_line_max_characters():
    pipeline = api.load_parse_pipeline(None)
    raw = encode(Record(id="h-2", line="x" * 100, type="sshd"))
    found = api.closest_pattern(pipeline, raw, "h-2", line_max=10)
    assert found is not None and found["line"] == "x" * 10


def test_a_record_that_does_not_decode_has_no_closest_pattern():
    assert api.closest_pattern(api.load_parse_pipeline(None), b"\xff not a record", "h-3") is None


def test_a_dead_letter_id_is_what_the_broker_takes_ascii_digits_below_2_64():
    for good in ("1764312000000-0", "1764312000000", "18446744073709551615-18446744073709551615"):
        assert api.valid_entry_id(good), good
    # the broker would answer an error, not "no such letter": the page and `dlq show` say so
    for bad in ("", "5-", "a-1", "1-1-1", "18446744073709551616-0", "\u0661\u0662\u0663-0"):
        assert not api.valid_entry_id(bad), bad
