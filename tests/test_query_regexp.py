"""Lucene regular expressions in the query language (``program:/postfix.*\\/smtpd/``): the
subset, its errors, the in-memory evaluation (routes) and the embedded store, with the bound on
a regexp that backtracks without end. Elasticsearch is compared with the embedded store in
tests/integration/test_store_equivalence.py."""

from __future__ import annotations

import pytest

from logpipe.common.cli import main
from logpipe.common.errors import QueryTooExpensive
from logpipe.query import lucene, tree
from logpipe.query.errors import QueryError
from logpipe.query.evaluate import matches
from logpipe.query.regexp import RegexpTimeout, fullmatch, translate
from logpipe.store.base import Event, SearchRequest
from logpipe.store.budget import Budget, applied
from logpipe.store.sqlite import SqliteStore
from tests.support.stores import search as store_search

PATHOLOGICAL = "(a|a)+b"        # backtracks 2^n ways on "aaaa...c"
LONG_AS = "a" * 40 + "c"


@pytest.mark.parametrize("source, yes, no", [
    (r"postfix.*\/smtpd", ["postfix/smtpd", "postfix-in/smtpd"], ["postfix/smtp", "x postfix/smtpd"]),
    ("post", ["post"], ["postfix", "apost"]),                       # anchored on the whole value
    ("sm-.*|sendmail", ["sm-mta", "sendmail"], ["sendmail2", "xsm-mta"]),
    ("[a-c]+[^0-9]?", ["abc", "abcx"], ["abc1", "d"]),
    (r"[-a.\-]+", ["-a.-"], ["b"]),
    (r"\d{2,3}", ["12", "123"], ["1", "1234", "ab"]),
    (r"\w+\s\S+", ["ab c!", "x_1\t?"], ["ab  c", "ab"]),
    ('"a.b"+', ["a.b", "a.ba.b"], ["axb"]),
    (r"a\.b\*\[c\]", ["a.b*[c]"], ["axb*[c]"]),
    ("(ab)+c?", ["abab", "ababc"], ["aba", "c"]),
    ("a.c", ["abc", "a\nc"], ["ac"]),                                # . takes a newline too
    ("Sent", ["Sent"], ["sent"]),                                    # case-sensitive
])
def test_the_subset_means_what_lucene_means(source, yes, no):
    pattern = translate(source)
    assert all(fullmatch(pattern, v) for v in yes), source
    assert not any(fullmatch(pattern, v) for v in no), source


@pytest.mark.parametrize("query, what", [
    ("program:/a@b/", "@ (any string)"),
    ("program:/a#b/", "# (the empty language)"),
    ("program:/a&b/", "& (intersection)"),
    ("program:/~a/", "~ (complement)"),
    ("program:/<1-5>/", "numeric interval"),
    ("program:/^post.*/", "not an anchor"),
    ("program:/post.*$/", "not an anchor"),
    ("program:/(post/", "( is not closed"),
    ("program:/post)/", ") without its ("),
    ("program:/[post/", "not closed"),
    ("program:/*post/", "repeats nothing"),
    ("program:/a**/", "repeats nothing"),
    ("program:/a{3,1}/", "upper bound is below"),
    ("program:/a{5000}/", "at most 1000"),
    ("program:/a{x}/", "{n}, {n,} or {n,m}"),
    ("program:/[a-z.-]+/", "starts a range in Lucene"),
])
def test_what_the_subset_does_not_hold_is_a_clear_error_with_the_position(query, what):
    with pytest.raises(QueryError) as caught:
        lucene.compile_query(query)
    message = str(caught.value)
    assert what in message and "invalid regular expression" in message and "position" in message


def test_the_error_position_points_into_the_query():
    with pytest.raises(QueryError) as caught:
        lucene.compile_query("type:mail AND program:/ab@c/")
    assert caught.value.position == len("type:mail AND program:/ab")


@pytest.mark.parametrize("query", ["/postfix/", "message:/postfix.*/", "@timestamp:/2026.*/",
                                   "_id:/x.*/"])
def test_regexps_on_message_tokens_time_or_id_are_refused(query):
    with pytest.raises(QueryError, match="regular expression matches the whole value"):
        lucene.compile_query(query)


def test_compiles_to_a_regexp_node_the_routes_evaluate():
    q = lucene.compile_query(r"program:/postfix.*\/smtpd/ AND NOT host:/mx[0-9]+/")
    assert isinstance(q, tree.And) and isinstance(q.items[0], tree.Regexp)
    assert q.items[0].source == r"postfix.*\/smtpd"
    assert matches(q, {"program": "postfix/smtpd", "host": "relay"})
    assert not matches(q, {"program": "postfix/smtpd", "host": "mx12"})
    assert not matches(q, {"program": "postfix/qmgr", "host": "relay"})
    # a list matches when one element does; numbers are not matched
    assert matches(lucene.compile_query("tags:/_grok.*/"), {"tags": ["x", "_grokparsefailure"]})
    assert not matches(lucene.compile_query("size:/20.*/"), {"size": 2039})


def test_a_pathological_regexp_is_stopped_in_memory():
    with pytest.raises(RegexpTimeout, match="nested repetitions"):
        fullmatch(translate(PATHOLOGICAL), LONG_AS, timeout=0.2)


# ---------------------------------------------------------------- the embedded store

@pytest.fixture
def sink(tmp_path):
    s = SqliteStore("sqlite:///" + str(tmp_path / "events.db"))
    s.prepare()
    docs = [
        {"program": "postfix/smtpd", "host": "mx1", "size": 2039},
        {"program": "postfix/qmgr", "host": "mx1", "size": 100},
        {"program": "sendmail", "host": "mail1", "tags": ["a", "_grokparsefailure"]},
        {"program": "sm-mta", "host": "Mail2"},
        {"program": "cron", "host": "web1", "odd": LONG_AS},
    ]
    events = [Event(f"e{i}", {"@timestamp": f"2026-11-28T10:00:0{i}.000Z", "type": "syslog",
                              "message": f"line {i}", **d}) for i, d in enumerate(docs)]
    s.write(events)
    yield s
    s.close()


def ids(sink, query: str) -> set[str]:
    return {e["_id"] for e in store_search(sink, SearchRequest(query=query, limit=100)).events}


def test_the_embedded_store_runs_regexps(sink):
    assert ids(sink, r"program:/postfix.*\/smtpd/") == {"e0"}
    assert ids(sink, "program:/postfix.*/") == {"e0", "e1"}
    assert ids(sink, "program:/post/") == set()
    assert ids(sink, "program:/sm-.*|sendmail/") == {"e2", "e3"}
    assert ids(sink, "host:/[a-z]+[0-9]/") == {"e0", "e1", "e2", "e4"}   # case-sensitive
    assert ids(sink, "tags:/_grok.*/") == {"e2"}                         # an element of a list
    assert ids(sink, "size:/20.*/") == set()                             # numbers: no match
    assert ids(sink, "program:/postfix.*/ AND NOT size:[1000 TO *]") == {"e1"}
    assert ids(sink, "type:/sys.*/") == {f"e{i}" for i in range(5)}      # a column field


def test_a_pathological_regexp_on_the_embedded_store_ends_with_a_clear_error(sink):
    with pytest.raises(QueryTooExpensive, match="query too expensive: the regular expression"):
        store_search(sink, SearchRequest(query=f"odd:/{PATHOLOGICAL}/"))
    # the store still answers afterwards, and the same regexp on short values is fine
    assert ids(sink, f"program:/{PATHOLOGICAL}/") == set()
    with applied(Budget(5)):
        with pytest.raises(QueryTooExpensive):
            store_search(sink, SearchRequest(query=f"odd:/{PATHOLOGICAL}/"))
        assert ids(sink, "program:/cron/") == {"e4"}


def test_logpipe_search_says_so_in_one_line(sink, tmp_path, capsys):
    code = main(["search", "--store", "sqlite:///" + str(tmp_path / "events.db"),
                 f"odd:/{PATHOLOGICAL}/"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "query too expensive: the regular expression" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code = main(["search", "--store", "sqlite:///" + str(tmp_path / "events.db"),
                 "program:/a@b/"])
    out, err = capsys.readouterr()
    assert code == 2 and "invalid regular expression /a@b/" in err and "Traceback" not in err
