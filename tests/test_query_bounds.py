"""Any query, however wrong, compiles or raises QueryError with a clear message: never a
RecursionError, OverflowError or a date out of range (query/lucene.py, query/datemath.py,
query/tree.py), and the stores take whatever compiles (issue 21.7, query side)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from logpipe.common.errors import QueryError
from logpipe.query import datemath, lucene, tree
from logpipe.store.base import Event, SearchRequest, decode_cursor
from logpipe.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 28, 10, 30, 0, tzinfo=timezone.utc)
BIG = "99999999999999999999"  # over 2^64


def _refused(query: str) -> str:
    with pytest.raises(QueryError) as err:
        lucene.compile_query(query, NOW)
    return str(err.value)


# ---------------------------------------------------------------- nesting

@pytest.mark.parametrize("query", [
    "(" * 1000 + "a" + ")" * 1000,
    "NOT " * 1000 + "a",
    "-" * 1000 + "a",
    "a:(" * 1 + "(" * 1000 + "b" + ")" * 1001,
    "_exists_:" + "(" * 500 + "a" + ")" * 500,
    "(a OR " * 600 + "b" + ")" * 600,
])
def test_deep_nesting_is_refused_in_one_line(query):
    message = _refused(query)
    assert f"nested more than {lucene.MAX_DEPTH} levels deep" in message
    assert "\n" not in message  # not the 2000-character query echoed back


def test_nesting_up_to_the_bound_compiles():
    depth = lucene.MAX_DEPTH
    assert lucene.compile_query("(" * depth + "a" + ")" * depth, NOW) == tree.Text(("a",), "a")
    _refused("(" * (depth + 1) + "a" + ")" * (depth + 1))


def test_a_luqum_tree_is_bounded_too():
    from luqum.thread import parse
    with pytest.raises(QueryError):
        lucene.compile_query(parse("(" * 300 + "a" + ")" * 300), NOW)


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("query", [
    f"size:>{BIG}", f"size:[1 TO {BIG}]", f"size:[{BIG} TO *]", f"size:<={BIG}",
    "size:[1 TO 1e999]", "size:>9223372036854775808",
])
def test_range_numbers_past_64_bits_are_refused(query):
    message = _refused(query)
    assert "is out of range" in message and "64-bit" in message and "\n" not in message


def test_range_numbers_within_64_bits_compile():
    assert lucene.compile_query("size:[0 TO 9223372036854775807]", NOW) == tree.Range(
        "size", "0", "9223372036854775807")
    assert tree.numeric("9223372036854775807") == 2 ** 63 - 1
    assert tree.numeric(BIG) is None and tree.numeric("1e999") is None


def test_a_long_digit_value_is_an_exact_text_term_on_a_real_store():
    # a 20-digit id is a value like any other: matched as text, no integer overflow in SQLite
    sink = SqliteStore("sqlite:///:memory:")
    sink.write([Event("1", {"@timestamp": "2026-11-28T10:00:00Z", "message": "m", "ref": BIG}),
                Event("2", {"@timestamp": "2026-11-28T10:00:01Z", "message": "m", "size": 5})])
    assert sink.count(SearchRequest(query=f"ref:{BIG}")) == 1
    assert sink.count(SearchRequest(query="size:1e999")) == 0
    assert sink.count(SearchRequest(query="size:[1 TO 9223372036854775807]")) == 1
    sink.close()


# ---------------------------------------------------------------- dates

@pytest.mark.parametrize("query", [
    "@timestamp:>now-1000000000000d", "@timestamp:[now-1000000000000d TO now]",
    f"@timestamp:<now+{BIG}y", "@timestamp:now-10000y", "@timestamp:9999-12-31||+1d",
    "@timestamp:0001-01-01||-1d", "@timestamp:[\"0001-01-01T00:00+01:00\" TO *]",
])
def test_dates_out_of_the_calendar_are_refused_in_one_line(query):
    message = _refused(query)
    assert "out of range (dates go from 0001-01-01 to 9999-12-31)" in message
    assert "\n" not in message


def test_the_first_and_last_days_of_the_calendar_are_usable_bounds():
    first = datemath.epoch_ms(datetime(1, 1, 1, tzinfo=timezone.utc))
    end = datemath.epoch_ms(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)) + 1
    assert lucene.compile_query("@timestamp:[0001-01-01 TO 9999-12-31]", NOW) == \
        tree.TimeRange(first, end)
    assert lucene.compile_query("@timestamp:9999-12-31", NOW) == \
        tree.TimeRange(end - 86_400_000, end)
    assert lucene.compile_query("@timestamp:>9999", NOW) == tree.TimeRange(end, None)
    sink = SqliteStore("sqlite:///:memory:")
    sink.write([Event("1", {"@timestamp": "2026-11-28T10:00:00Z", "message": "m"})])
    assert sink.count(SearchRequest(query="@timestamp:[0001-01-01 TO 9999-12-31]")) == 1
    assert sink.count(SearchRequest(query="@timestamp:>9999-12-31")) == 0
    sink.close()


@pytest.mark.parametrize("value", ["now-1000000000000d", f"{BIG}d", "now+1000000y",
                                   "9999-12-31||+1y", "1000000000w"])
def test_time_options_out_of_range_are_query_errors(value):
    with pytest.raises(QueryError) as err:
        datemath.time_arg(value, "--from", NOW)
    assert f"--from {value!r}" in str(err.value) and "range" in str(err.value) \
        or "longer than the whole calendar" in str(err.value)


@pytest.mark.parametrize("parse", [datemath.parse_duration, datemath.parse_interval])
def test_ages_and_intervals_are_bounded(parse):
    with pytest.raises(QueryError, match="longer than the whole calendar"):
        parse(f"{BIG}d")
    assert parse("520w")  # ten years is fine


# ---------------------------------------------------------------- cursors

def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", [[10 ** 30, 1], [1, 10 ** 30], [-(2 ** 63) - 1, 1],
                                   [1, [None, "logstash-2026.11.28", 2 ** 64]]])
def test_cursors_with_huge_integers_are_damaged_cursors(value):
    with pytest.raises(QueryError, match="cursor .* is damaged"):
        decode_cursor(_cursor(value), lambda tiebreak: True)


def test_a_huge_cursor_on_a_real_store_is_a_query_error():
    sink = SqliteStore("sqlite:///:memory:")
    sink.write([Event("1", {"@timestamp": "2026-11-28T10:00:00Z", "message": "m"})])
    with pytest.raises(QueryError, match="cursor"):
        sink.search_page(SearchRequest(limit=1), after=_cursor([10 ** 30, 10 ** 30]))
    assert decode_cursor(_cursor([2 ** 63 - 1, 7]), lambda t: True) == (2 ** 63 - 1, 7)
    sink.close()


# ---------------------------------------------------------------- property: anything goes

# grammar-ish: clauses of fields, values, ranges and date math, joined and nested, with loose
# punctuation and raw text mixed in (so unbalanced quotes, brackets and parentheses occur too)
_FIELDS = st.sampled_from(["", "qid:", "host:", "@timestamp:", "size:", "_exists_:", "message:",
                           "a.b:", "*:", "_id:"])
_NUMBERS = st.sampled_from(["0", "42", "-5", "1.5", "1e999", "-1e400", BIG, "9223372036854775808",
                            "-9223372036854775809"]) | st.integers().map(str)
_DATES = st.sampled_from(["now", "0001-01-01", "9999-12-31", "0000-00-00", "2026-11-28",
                          "2026-11-28T10:00:00Z", "9999", "0001"]).flatmap(
    lambda base: st.lists(st.sampled_from(["+", "-"]).flatmap(
        lambda sign: st.tuples(st.just(sign), _NUMBERS.filter(lambda n: n.isdigit()),
                               st.sampled_from("yMwdhHms")).map("".join))
        | st.sampled_from(["/d", "/w", "/y", "/M"]), max_size=3).map(
        lambda math: base + ("||" if math and base != "now" else "") + "".join(math)))
_WORDS = st.sampled_from(["sendmail", "r4F*", "?x", "*", "é", "\\", "\\:", "a\x1b[2J", "x/y"])
_VALUES = (_WORDS | _NUMBERS | _DATES
           | _WORDS.map(lambda w: f'"{w}"')
           | st.tuples(st.sampled_from("[{"), _NUMBERS | _DATES | st.just("*"),
                       _NUMBERS | _DATES | st.just("*"), st.sampled_from("]}")).map(
               lambda t: f"{t[0]}{t[1]} TO {t[2]}{t[3]}")
           | st.tuples(st.sampled_from([">", ">=", "<", "<="]), _NUMBERS | _DATES).map("".join))
_CLAUSES = st.tuples(st.sampled_from(["", "NOT ", "-", "+", "!"]), _FIELDS, _VALUES,
                     st.sampled_from(["", "^2", "~", "~2"])).map("".join)
_GRAMMAR = st.recursive(
    _CLAUSES,
    lambda inner: st.lists(inner, min_size=1, max_size=4).flatmap(
        lambda items: st.sampled_from([" ", " AND ", " OR ", " && ", " || "]).map(
            lambda op: op.join(items)))
    | inner.map(lambda q: f"({q})") | st.tuples(_FIELDS, inner).map(lambda t: f"{t[0]}({t[1]})"),
    max_leaves=12)
_NOISE = st.sampled_from(['"', "(", ")", "[", "]", "{", "}", ":", "\\", "/", "*", "~", "^",
                          " TO ", " AND ", "\x00"])
_QUERIES = (_GRAMMAR
            | st.lists(_GRAMMAR | _NOISE, max_size=8).map("".join)
            | st.text(max_size=40))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUERIES)
def test_any_query_compiles_or_is_a_query_error(query):
    try:
        compiled = lucene.compile_query(query, NOW)
    except QueryError as exc:
        assert str(exc).strip()
        return
    assert compiled is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["(", "NOT ", "-", "+", "a:(", "!", "(b OR "]), min_size=1,
                max_size=5), st.integers(min_value=1, max_value=3000))
def test_any_nesting_compiles_or_is_a_query_error(unit, repeat):
    openers = "".join(unit) * (repeat // len(unit) + 1)
    query = openers + "x" + ")" * openers.count("(")
    try:
        lucene.compile_query(query, NOW)
    except QueryError as exc:
        assert "nested more than" in str(exc) or "field inside a field" in str(exc)
