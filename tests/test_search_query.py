"""Lucene query parsing and its translations (query/ and the stores' readers)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from logpipe.common.errors import QueryError
from logpipe.query import analyzer, datemath, lucene, tree
from logpipe.store.elasticsearch import reader as es_reader
from logpipe.store.sqlite import translate as sql_reader
from tests.support.stores import search as store_search

NOW = datetime(2026, 11, 28, 10, 30, 0, tzinfo=timezone.utc)


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


# ------------------------------------------------------------------ analyzer

@pytest.mark.parametrize("text,tokens", [
    ("Jan  6 02:37:33 Jupiter sendmail[809]: j061bW9V000809: to=cpan-testers@perl.org",
     ["jan", "6", "02", "37", "33", "jupiter", "sendmail", "809", "j061bw9v000809", "to",
      "cpan", "testers", "perl.org"]),
    ("relay=mx.develooper.com. [63.251.223.176]", ["relay", "mx.develooper.com",
                                                   "63.251.223.176"]),
    ("don't a.1 1.a v1.2 1,000.5 a_b _x __", ["don't", "a", "1", "1", "a", "v1.2", "1,000.5",
                                              "a_b", "_x"]),
    ("x:y 1:2 it’s İstanbul ΟΔΟΣ", ["x:y", "1", "2", "it’s", "istanbul", "οδοσ"]),
    ("日本語 テキスト", ["日", "本", "語", "テキスト"]),
    ("", []),
])
def test_analyze_follows_the_standard_analyzer(text, tokens):
    assert analyzer.analyze(text) == tokens


def test_long_tokens_are_split_at_255_characters():
    assert analyzer.analyze("a" * 600) == ["a" * 255, "a" * 255, "a" * 90]


@pytest.mark.parametrize("text", [
    "Jan  6 02:37:33 Jupiter sendmail[809]: j061bW9V000809: stat=Sent (x@y.z) 1,2;3 a;b it's",
    "a..b a._b _a_ ___ x_.y 1_.2 1'2 a'1 A.B.C 1,2,3 a,b 1;2 1:2 a:b ab: :ab ''a 'a' a''b",
    "mixed ünïcode: café.bar 1.2", "a" * 300 + " b",
])
def test_fts_text_yields_the_analyzer_tokens_through_the_fts5_tokenizer(text):
    from logpipe.store.sqlite.schema import FTS_TOKENIZE as _FTS_TOKENIZE

    db = sqlite3.connect(":memory:")
    db.execute(f'CREATE VIRTUAL TABLE f USING fts5(body, tokenize="{_FTS_TOKENIZE}")')
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    db.execute("INSERT INTO f(rowid, body) VALUES (1, ?)", (analyzer.fts_text(text),))
    stored = [t for (t,) in db.execute("SELECT term FROM v ORDER BY offset") if t.strip("_")]
    assert stored == analyzer.analyze(text)


# ------------------------------------------------------------------ parsing and errors

@pytest.mark.parametrize("query,position", [
    ("program:sendmail AND (qid:r4F*", 30),
    ("AND foo", 0),
    ("size:[1 TO", 10),
    ('"unclosed', 0),
])
def test_syntax_errors_carry_the_position(query, position):
    with pytest.raises(QueryError) as err:
        lucene.parse(query)
    assert err.value.position == position
    assert err.value.query == query
    assert "^" in str(err.value) and f"position {position}" in str(err.value)


@pytest.mark.parametrize("query,what", [
    ("foo~", "fuzzy"), ('"a b"~3', "proximity"), ("/a.c/", "bare /regexp/ is not supported"),
    ("message:[a TO b]", "ranges on message"), ("[1 TO 2]", "needs a field"),
    ("mes*:x", "wildcards in field names"), ("@timestamp:2026-13-45", "invalid time"),
    ("@timestamp:yesterday", "invalid time"), ("a:b:c", "field inside a field"),
])
def test_unsupported_syntax_is_a_clear_error(query, what):
    with pytest.raises(QueryError) as err:
        lucene.compile_query(query, NOW)
    assert what in str(err.value)


def test_empty_query_means_everything():
    assert lucene.compile_query("", NOW) == tree.All()
    assert lucene.compile_query("*", NOW) == tree.All()
    assert lucene.compile_query("*:*", NOW) == tree.All()


# ------------------------------------------------------------------ the intermediate form

def test_implicit_operator_is_and_and_prefixes_work():
    assert lucene.compile_query("a b -c +d", NOW) == tree.And((
        tree.Text(("a",), "a"), tree.Text(("b",), "b"), tree.Not(tree.Text(("c",), "c")),
        tree.Text(("d",), "d")))


def test_field_groups_apply_the_field_to_each_value():
    assert lucene.compile_query("program:(sendmail OR postfix*)", NOW) == tree.Or((
        tree.Term("program", "sendmail"),
        tree.Wildcard("program", tree.Pattern((("lit", "postfix"), ("*",))))))


def test_escapes_are_literal_and_star_alone_means_exists():
    assert lucene.compile_query(r"qid:a\*b", NOW) == tree.Term("qid", "a*b")
    assert lucene.compile_query(r"relay:mx\:1", NOW) == tree.Term("relay", "mx:1")
    assert lucene.compile_query("relay:*", NOW) == tree.Exists("relay")
    assert lucene.compile_query("_exists_:relay", NOW) == tree.Exists("relay")
    assert lucene.compile_query("size:[* TO *]", NOW) == tree.Exists("size")


def test_phrases_on_keyword_fields_are_exact_values():
    assert lucene.compile_query('from:"<a b@c>"', NOW) == tree.Term("from", "<a b@c>")


def test_words_split_by_the_analyzer_become_a_phrase():
    assert lucene.compile_query("user@example.com", NOW) == \
        tree.Text(("user", "example.com"), "user@example.com")
    assert lucene.compile_query("message:=", NOW) == tree.Nothing()


def test_time_values_cover_their_whole_period():
    assert lucene.compile_query("@timestamp:2026-11-28", NOW) == \
        tree.TimeRange(ms(2026, 11, 28), ms(2026, 11, 29))
    assert lucene.compile_query("@timestamp:[* TO 2026-11-28]", NOW) == \
        tree.TimeRange(None, ms(2026, 11, 29))
    assert lucene.compile_query("@timestamp:{2026-11-28T10:00 TO now}", NOW) == \
        tree.TimeRange(ms(2026, 11, 28, 10, 1), ms(2026, 11, 28, 10, 30))
    assert lucene.compile_query('@timestamp:>="2026-11-28T10:00:00+02:00"', NOW) == \
        tree.TimeRange(ms(2026, 11, 28, 8), None)


@pytest.mark.parametrize("text,expected", [
    ("now-1h", datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)),
    ("now-7d/d", datetime(2026, 11, 21, tzinfo=timezone.utc)),
    ("now+1M", datetime(2026, 12, 28, 10, 30, tzinfo=timezone.utc)),
    ("2026-11-28T10:00:00.123Z", datetime(2026, 11, 28, 10, 0, 0, 123000, tzinfo=timezone.utc)),
    ("2026-11-28 10:00", datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)),
])
def test_parse_time(text, expected):
    assert datemath.parse_time(text, NOW) == expected


def test_intervals_and_durations():
    assert datemath.parse_interval("1m") == 60_000
    assert datemath.parse_interval("1w") == 7 * 86_400_000
    assert es_reader.es_interval(7 * 86_400_000) == "7d" and es_reader.es_interval(90_000) == "90s"
    assert datemath.parse_duration("30d").days == 30
    for bad in ("", "10", "1y", "0h", "h1"):
        with pytest.raises(QueryError):
            datemath.parse_interval(bad)


# ------------------------------------------------------------------ Elasticsearch DSL

def test_to_es():
    assert es_reader.to_es("program:sendmail AND qid:r4F*", NOW) == {"bool": {"filter": [
        {"match": {"program": {"query": "sendmail", "lenient": True}}},
        {"wildcard": {"qid": {"value": "r4F*"}}}]}}
    assert es_reader.to_es("size:{1000 TO *]", NOW) == {"range": {"size": {"gt": 1000}}}
    assert es_reader.to_es('NOT "User unknown"', NOW) == {"bool": {"must_not": [
        {"match_phrase": {"message": {"query": "User unknown"}}}]}}
    assert es_reader.to_es("a OR _id:x1", NOW) == {"bool": {"should": [
        {"match_phrase": {"message": {"query": "a"}}}, {"ids": {"values": ["x1"]}}],
        "minimum_should_match": 1}}
    assert es_reader.to_es(r"qid:a\*b?", NOW) == {"wildcard": {"qid": {"value": r"a\*b?"}}}
    assert es_reader.to_es("Sen*", NOW) == {"wildcard": {"message": {"value": "sen*"}}}


# ------------------------------------------------------------------ SQL

HOSTILE = [
    "host:\"x'); DROP TABLE events; --\"",
    "program:x\\'\\)\\;DROP*",
    "\"'; DELETE FROM events; --\"",
    "`evil`:1",
    "relay\\\":1",
    "size:[\"1'\" TO \"9;\"]",
    "_exists_:x')--",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_nothing_a_query_says_reaches_the_sql_text(query):
    try:
        sql, params = sql_reader.to_sql(query, NOW)
    except QueryError:
        return  # refused outright is fine too
    for bad in ("DROP", "DELETE", "evil", "x')", "--", "1'", "9;"):
        assert bad not in sql
    # the SQL is made of our fixed fragments only: strip the known vocabulary
    assert all(isinstance(p, (str, int, float)) for p in params)


def test_hostile_queries_are_harmless_on_a_real_store():
    from logpipe.store.base import Event, SearchRequest
    from logpipe.store.sqlite import SqliteStore

    sink = SqliteStore("sqlite:///:memory:")
    sink.write([Event("1", {"@timestamp": "2026-11-28T10:00:00Z", "message": "hi",
                            "host": "x'); DROP TABLE events; --"})])
    assert store_search(sink, SearchRequest(query=HOSTILE[0])).total == 1
    for query in HOSTILE[1:]:
        try:
            store_search(sink, SearchRequest(query=query))
        except QueryError:
            pass
    assert store_search(sink, SearchRequest()).total == 1
    sink.close()


def test_to_sql_uses_columns_for_promoted_fields_and_bound_paths_otherwise():
    sql, params = sql_reader.to_sql("host:mail1 AND relay:localhost", NOW)
    assert "events.host = ?" in sql and "json_each(events.doc, ?)" in sql
    assert params == ["mail1", '$."relay"', "localhost"]
    sql, params = sql_reader.to_sql("qid:r4F*", NOW)
    assert params == ["r4F", "r4G", "r4F*"]
    sql, params = sql_reader.to_sql("@timestamp:2026-11-28", NOW)
    assert params == [ms(2026, 11, 28), ms(2026, 11, 29)]
