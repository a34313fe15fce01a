"""No input makes ``logpipe ui`` answer 500: every query, time, cursor and paging parameter the
page and the API take, and the query grammar itself, fuzzed (hypothesis) against the real app
over an embedded store with events and a real Valkey holding dead letters. A request the app
cannot answer as asked is a 400 with a message (JSON ``{"error"}`` from the API, the page with
the message otherwise); nothing reaches the server's error log."""

from __future__ import annotations

import logging
import time
import warnings
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record, encode
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.search.web.app import create_app
from logpipe.search.web.data import Data
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]
TOKEN = "fuzz-token-0123456789abcdef"
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = "sqlite:///" + str(tmp_path_factory.mktemp("fuzz") / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    sink.write([Event(f"ev{i:02d}", {
        "@timestamp": f"2026-11-28T10:{i:02d}:00.000Z", "host": f"h{i % 3}",
        "program": "sendmail" if i % 2 else "postfix/smtp", "qid": f"q{i:04d}ABC",
        "size": i * 1000, "stat": "Sent (ok)" if i % 3 else "Deferred: refused",
        "nested": {"a": i, "b": [f"x{i}", "y"]}, "message": f"line {i} <b>&amp;</b>"})
        for i in range(40)])
    sink.close()
    return url


@pytest.fixture
def web(store_url, redis_url, caplog):
    client = connect(redis_url)
    dlq = DeadLetterQueue(client, Keys())
    for i in range(3):
        bad = Record(id=f"bad-{i}", line=f"garbage {i}", host="h", type="mail",
                     received_at=time.time())
        dlq.add(encode(bad), f"bad-{i}", "parse", "ValueError: no date")
    dlq.add(b"\xff\xfe not text", "undecodable", "decode", "DecodeError: not UTF-8")
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(Data(store_url, redis_url), TOKEN)) as web:
        # raise_server_exceptions (the default): an unhandled exception fails the test
        r = web.get(f"/?token={TOKEN}", follow_redirects=False)
        assert r.status_code == 303
        yield web
    client.close()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def check(response) -> None:
    """The answer is not a server error; a refusal carries a message a person can read."""
    assert response.status_code < 500, (response.request.url, response.text[:500])
    assert response.status_code in (200, 303, 307, 400, 404), response.status_code
    if response.status_code == 400:
        if response.request.url.path.startswith("/api/"):
            error = response.json()["error"]
            assert isinstance(error, str) and error.strip()
            assert "Traceback" not in error
        else:
            assert 'class="error"' in response.text


# ------------------------------------------------------------------ strategies

HUGE = st.integers(min_value=-(10 ** 40), max_value=10 ** 40)
numbers = st.one_of(HUGE, st.sampled_from([2 ** 63, 2 ** 63 - 1, -2 ** 63 - 1, 2 ** 64, 0, -1]))
word = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)
names = st.sampled_from(["host", "program", "qid", "size", "stat", "nested.a", "nested.b",
                         "message", "@timestamp", "_id", "id", "missing", "", "a.b.c"]) | word
dates = st.one_of(
    st.sampled_from(["now", "now-1h", "now-1000000000000d", "now+1000000000000d", "now/d",
                     "now-7d/d", "0001-01-01", "9999-12-31", "9999-12-31T23:59:59Z",
                     "0000-00-00", "2026-02-30", "2026-11-28T10:00:00+25:00", "1h", "0s",
                     "99999999999999999999d", "-1h", "now-1y", "now-1M", "now-", "now--1h",
                     "2026-11-28T10:00:00.123456789Z", "yesterday", "\x00", "\u65e5"]),
    numbers.map(lambda n: f"now-{abs(n)}d"), numbers.map(lambda n: f"{abs(n)}h"),
    numbers.map(str), st.integers(min_value=-5000, max_value=15000).map(lambda y: f"{y:04d}-01-01"),
    word)
term_values = st.one_of(word.filter(lambda w: w.strip()), numbers.map(str),
                        st.sampled_from(["*", "?", "a*", "\"quoted phrase\"", "\"", "\\",
                                         "/re.*x/", "/[/", "foo~", "foo~99999999999",
                                         "foo^99999999999999999999", "1e999", "-1e999", "NaN",
                                         "inf", "0x10", "sendmail", "Sent*"]))


def ranges(inner):
    bound = st.one_of(numbers.map(str), dates, st.just("*"))
    return st.tuples(st.sampled_from("[{"), bound, bound, st.sampled_from("]}")).map(
        lambda t: f"{t[0]}{t[1]} TO {t[2]}{t[3]}")


queries = st.recursive(
    st.one_of(term_values,
              st.tuples(names, term_values).map(lambda t: f"{t[0]}:{t[1]}"),
              st.tuples(names, ranges(None)).map(lambda t: f"{t[0]}:{t[1]}"),
              st.tuples(names, st.sampled_from([">", ">=", "<", "<="]),
                        st.one_of(numbers.map(str), dates)).map(lambda t: f"{t[0]}:{t[1]}{t[2]}"),
              st.sampled_from(["_exists_:host", "NOT", "AND", "OR", "(", ")", ":", "field:",
                               ":value", "a:b:c", "+", "-", "!", "&&", "||", "\\:", "[", "]"])),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " ", " && ", " || "]), inner)
        .map("".join),
        inner.map(lambda q: f"NOT {q}"), inner.map(lambda q: f"-{q}"),
        inner.map(lambda q: f"({q})"), st.tuples(names, inner).map(lambda t: f"{t[0]}:({t[1]})")),
    max_leaves=12)
deep = st.integers(min_value=1, max_value=1200).flatmap(lambda n: st.sampled_from([
    "(" * n + "a" + ")" * n, "NOT " * n + "a", "(" * n, ")" * n, "-" * n + "a",
    "a:(" * n + "b" + ")" * n, " AND ".join(["a"] * n)]))
any_query = st.one_of(queries, deep, word)
cursors = st.one_of(st.none(), word, numbers.map(str),
                    st.binary(max_size=40).map(lambda b: __import__("base64")
                                               .urlsafe_b64encode(b).decode()),
                    st.sampled_from(["", "!!", "W251bGwsMV0", "WzEsMl0", "WzE4MDAwMDAwMDAwMDAwMDAwMDAwMDAwLDFd",
                                     "W251bGwsImEiXQ", "e30", "bnVsbA", "WyJhIiwxXQ"]))
sizes = st.one_of(st.none(), numbers.map(str), word, st.sampled_from(["1e3", "0", "-5", " 7 "]))
intervals = st.one_of(st.none(), word,
                      st.tuples(numbers, st.sampled_from(["s", "m", "h", "d", "w", "M", "y", "ms",
                                                          ""])).map(lambda t: f"{t[0]}{t[1]}"))
sorts = st.one_of(st.none(), st.sampled_from(["asc", "desc", "ASC", ""]), word)
stages = st.one_of(st.none(), st.sampled_from(["parse", "index", "decode", "bogus", ""]), word)
ids = st.one_of(word, st.sampled_from(["ev01", "q0001ABC", "bad-1", "0-0", "99999999999999999999-0",
                                       "..", "%2e%2e", "a/b"]), numbers.map(str))


def params(**strategies):
    """A dict of the given parameters, each present or not."""
    return st.fixed_dictionaries({}, optional=strategies).map(
        lambda d: {k: v for k, v in d.items() if v is not None})


search_params = params(q=any_query, **{"from": dates, "to": dates}, after=cursors, size=sizes,
                       sort=sorts, columns=st.lists(names, max_size=4).map(",".join))
requests = st.one_of(
    st.tuples(st.just("/api/search"), search_params),
    st.tuples(st.just("/"), search_params),
    st.tuples(st.just("/api/histogram"),
              params(q=any_query, **{"from": dates, "to": dates}, interval=intervals)),
    st.tuples(st.just("/api/top"), params(q=any_query, **{"from": dates, "to": dates},
                                          field=names, size=sizes)),
    st.tuples(st.just("/dlq"), params(stage=stages, reason=word, type=word)),
    st.tuples(st.just("/api/dlq/count"), params(stage=stages, reason=word, type=word)),
    st.tuples(ids.map(lambda i: "/api/event/" + quote(i, safe="")), params()),
    st.tuples(ids.map(lambda i: "/api/surrounding/" + quote(i, safe="")), params(lines=sizes)),
    st.tuples(ids.map(lambda i: "/api/trace/" + quote(i, safe="")), params()),
    st.tuples(ids.map(lambda i: "/trace/" + quote(i, safe="")), params()),
    st.tuples(ids.map(lambda i: "/dlq/" + quote(i, safe="")), params()),
)


# ------------------------------------------------------------------ the fuzz tests

@FUZZ
@given(request=requests)
@example(request=("/api/search", {"q": "(" * 1000 + "a" + ")" * 1000}))
@example(request=("/", {"q": "(" * 1000 + "a" + ")" * 1000}))
@example(request=("/api/search", {"q": "size:>99999999999999999999999"}))
@example(request=("/api/search", {"after": "99999999999999999999999"}))
@example(request=("/api/search", {"from": "0001-01-01", "to": "9999-12-31"}))
@example(request=("/", {"from": "0001-01-01", "to": "9999-12-31"}))
@example(request=("/api/histogram", {"from": "now-1000000000000d"}))
@example(request=("/api/histogram", {"interval": "99999999999999999999d"}))
@example(request=("/dlq", {"stage": "bogus"}))
@example(request=("/api/dlq/count", {"stage": "bogus"}))
def test_no_parameter_makes_a_server_error(web, request):
    path, query = request
    check(web.get(path, params=query, follow_redirects=False))


@FUZZ
@given(q=any_query, from_=dates, to=dates)
def test_no_query_makes_a_server_error(web, q, from_, to):
    for path in ("/api/search", "/api/histogram", "/"):
        check(web.get(path, params={"q": q, "from": from_, "to": to}))
    check(web.get("/api/top", params={"q": q, "field": "host"}))


@FUZZ
@given(path=st.text(min_size=1, max_size=30), query=st.text(max_size=30))
@example(path="/caf\u00e9", query="")
@example(path="\u65e5\u672c", query="q=\u65e5")
def test_no_path_makes_a_server_error(web, path, query):
    """A path beyond Latin-1, or with the token swapped for a session, is never a 500."""
    url = "/" + quote(path.lstrip("/"), safe="/")
    check(web.get(url, params={"token": TOKEN, "x": query}, follow_redirects=False))
    check(web.get(url, params={"x": query}, follow_redirects=False))
