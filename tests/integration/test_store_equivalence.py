"""The same queries on both stores, loaded with the same real corpus, give the same hits.

The embedded store is checked always, against a plain-Python evaluation of the documented query
semantics; Elasticsearch (the ``es_url`` node) is checked against the embedded store.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache

import pytest

from logpipe.query import analyzer, lucene, tree
from logpipe.store.base import Event, SearchRequest, Status
from logpipe.store.fields import MALFORMED_FIELD, MALFORMED_TAG, mark_malformed
from logpipe.store.sqlite import SqliteStore, timestamp_ms
from tests.conftest import corpus_file
from tests.support.stores import search as store_search

CORPUS = ["mail_extra.log", "postfix.log", "sendmail-reject.log", "sendmail-auth.log",
          "dovecot.log", "sshd.log", "exim.log", "linux.log", "openssh.log"]
YEAR = 2026
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_SYSLOG = re.compile(r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) "
                     r"(?P<logsource>\S+) (?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: "
                     r"(?P<rest>.*)$")
_QID = re.compile(r"^(?P<qid>[0-9A-Za-z]{8,16}): (?P<kv>.*)$")
_KV = re.compile(r"(?:^|, )(?P<k>[a-z]+)=(?P<v>[^,]*)")
_KEEP = {"from", "to", "ctladdr", "delay", "xdelay", "mailer", "pri", "dsn", "size", "class",
         "nrcpts", "msgid", "proto", "daemon", "relay", "stat", "status", "ruleset", "arg1",
         "reject", "user", "rip"}
_INTS = {"size", "nrcpts", "pid"}


def corpus_events() -> list[Event]:
    """Events parsed from real log lines: a syslog header, a queue id, key=value fields."""
    events = []
    for name in CORPUS:
        path = corpus_file(name)
        kind = "syslog" if name in ("sshd.log", "linux.log", "openssh.log") else "mail"
        fallback = datetime(YEAR, 12, 1, tzinfo=timezone.utc).timestamp()
        for offset, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            doc: dict = {"message": line, "path": f"/var/log/{name}", "type": kind,
                         "tags": ["corpus", name.split(".")[0]], "offset": offset}
            m = _SYSLOG.match(line)
            if m:
                hh, mm, ss = map(int, m["time"].split(":"))
                when = datetime(YEAR, _MONTHS[m["mon"]], int(m["day"]), hh, mm, ss,
                                tzinfo=timezone.utc)
                doc["host"] = m["logsource"]
                doc["logsource"] = m["logsource"]
                doc["program"] = m["program"]
                if m["pid"]:
                    doc["pid"] = m["pid"]
                q = _QID.match(m["rest"])
                if q:
                    doc["qid"] = q["qid"]
                    for kv in _KV.finditer(q["kv"]):
                        key, value = kv["k"], kv["v"].strip()
                        if key in _KEEP and value and key not in doc:
                            doc[key] = value
                    relay = doc.get("relay", "")
                    ip = re.search(r"\[([0-9a-fA-F.:]+)\]", relay)
                    if ip:  # masked ones too (123.456.789.1): stored, tagged, not indexed as IP
                        doc["relayip"] = ip[1]
                    if relay:
                        doc["relay"] = relay.split(" ")[0].rstrip(".") or relay
            else:
                when = datetime.fromtimestamp(fallback + offset, timezone.utc)
                doc["host"] = "unknown"
            for key in _INTS:
                if key in doc and str(doc[key]).isdigit():
                    doc[key] = int(doc[key])
                else:
                    doc.pop(key, None)
            doc["@timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            events.append(Event(f"{name}:{offset}", doc))
    # a non-number in numeric fields (a pipeline that typed nothing, a foreign shipper)
    for k, (size, pid) in enumerate([("12k", "abc"), ("n/a", 77), (True, "1e999")]):
        events.append(Event(f"synthetic:{k}", {
            "message": f"synthetic odd number {k}", "host": "odd", "type": "mail",
            "program": "sendmail", "tags": ["corpus", "synthetic"], "size": size, "pid": pid,
            "@timestamp": f"2026-01-07T00:00:0{k}.000Z"}))
    return events


# ------------------------------------------------------------------ the reference semantics

def _values(event: Event, field: str) -> list:
    if field == "_id":
        return [event.id]
    doc = mark_malformed(event.doc)  # the documented rule: a malformed value is not indexed
    if field in doc.get(MALFORMED_FIELD, ()):
        return []
    value = doc.get(tree.TEXT_FIELD if field == tree.TEXT_KEYWORD else field)
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def _tokens(message: str) -> tuple:
    return tuple(analyzer.analyze(message))


def _glob_regex(pattern: tree.Pattern) -> re.Pattern:
    parts = []
    for p in pattern.parts:
        parts.append(re.escape(p[1]) if p[0] == "lit" else (".*" if p[0] == "*" else "."))
    return re.compile("".join(parts), re.S)


def _lucene_regexp_to_re(source: str) -> str:
    """The test's own reading of the Lucene regexp constructs QUERIES use: an escaped character
    is literal, ( ) group, \\d a digit; everything else (. * + ? | [ ] { }) means in Python
    what it means in Lucene."""
    out, i = [], 0
    while i < len(source):
        c = source[i]
        if c == "\\":
            nxt = source[i + 1]
            out.append("[0-9]" if nxt == "d" else re.escape(nxt))
            i += 2
            continue
        out.append("(?:" if c == "(" else c)
        i += 1
    return "".join(out)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _in_range(v, q: tree.Range) -> bool:
    if _num(v):
        lo = tree.numeric(q.low) if q.low is not None else None
        hi = tree.numeric(q.high) if q.high is not None else None
        if (q.low is not None and lo is None) or (q.high is not None and hi is None):
            return False
    elif isinstance(v, str):
        lo, hi = q.low, q.high
    else:
        return False
    if lo is not None and (v < lo or (v == lo and not q.include_low)):
        return False
    if hi is not None and (v > hi or (v == hi and not q.include_high)):
        return False
    return True


def matches(q, event: Event) -> bool:
    """The documented semantics of :mod:`query`, evaluated in plain Python."""
    if isinstance(q, tree.All):
        return True
    if isinstance(q, tree.Nothing):
        return False
    if isinstance(q, tree.And):
        return all(matches(i, event) for i in q.items)
    if isinstance(q, tree.Or):
        return any(matches(i, event) for i in q.items)
    if isinstance(q, tree.Not):
        return not matches(q.item, event)
    if isinstance(q, tree.Text):
        tokens = _tokens(event.doc.get("message", ""))
        n = len(q.tokens)
        return any(tuple(tokens[i:i + n]) == q.tokens for i in range(len(tokens) - n + 1))
    if isinstance(q, tree.TextWildcard):
        rx = _glob_regex(q.pattern)
        return any(rx.fullmatch(t) for t in _tokens(event.doc.get("message", "")))
    if isinstance(q, tree.Term):
        n = tree.numeric(q.value)
        return any(v == q.value or (n is not None and _num(v) and v == n)
                   for v in _values(event, q.field))
    if isinstance(q, tree.Wildcard):
        rx = _glob_regex(q.pattern)
        return any(rx.fullmatch(str(v)) for v in _values(event, q.field))
    if isinstance(q, tree.Regexp):
        # Lucene's regexp: the whole string value matches (numbers never do); an independent
        # reading of the few constructs the queries below use
        rx = re.compile(_lucene_regexp_to_re(q.source), re.S)
        return any(isinstance(v, str) and rx.fullmatch(v) for v in _values(event, q.field))
    if isinstance(q, tree.Exists):
        return bool(_values(event, q.field))
    if isinstance(q, tree.Range):
        return any(_in_range(v, q) for v in _values(event, q.field))
    if isinstance(q, tree.TimeRange):
        ts = timestamp_ms(event.doc.get("@timestamp"))
        return ts is not None and (q.start is None or ts >= q.start) and \
            (q.end is None or ts < q.end)
    raise TypeError(q)


# ------------------------------------------------------------------ the query set

QUERIES = [
    "*",
    "program:sendmail",
    "program:sendmail AND qid:j06*",
    "qid:j061bW9V000809",
    "qid:J061BW9V000809",                       # keyword terms are case-sensitive
    "stat:Sent*",
    r"stat:Sent\ \(Queued*",                     # escaped space and parenthesis
    '"stat=Sent"',
    "sent",
    "SENT",                                     # full text is case-insensitive
    '"Message accepted for delivery"',
    '"accepted message"',
    "mx.develooper.com",
    "develooper",                               # one token for ES: mx.develooper.com
    "relay:localhost",
    "NOT relay:localhost",
    "program:sendmail AND NOT _exists_:relay",
    "_exists_:relayip",
    "relayip:127.0.0.1",
    "size:[2000 TO *]",
    "size:{2039 TO 2262]",
    "size:<2040",
    "size:>=4000",
    "size:2039",
    "nrcpts:[1 TO 1]",
    "pid:[400 TO 1000}",
    "program:(sendmail OR postfix*)",
    "program:postfix/*",
    'from:"<maddingue@jupiter.maddingue.net>"',
    "to:*perl.org*",
    "to:*PERL.ORG*",
    "(stat:Sent* OR stat:Deferred*) AND host:Jupiter",
    "qid:j061* -stat:Sent*",
    "user unknown",
    '"user unknown"',
    "reject*",
    "*ject*",
    "auth* failure",
    "authentication OR refused",
    "failure AND NOT sshd",
    "@timestamp:[2026-01-06 TO 2026-01-06T12:00}",
    "@timestamp:2026-01-06",
    "@timestamp:[* TO 2026-01-05]",
    "@timestamp:{2026-02-20T04:05:39 TO *]",
    "tags:postfix",
    "tags:(sshd OR dovecot) AND Failed",
    "type:syslog AND invalid user",
    "message:Sent",
    "message:sen?",
    "127.0.0.1",
    "host:unknown AND NOT program:*",
    "dsn:2.0.0 AND mailer:esmtp",
    "_id:mail_extra.log\\:8",
    "msgid:*maddingue*",
    "ctladdr:*",
    "nosuchword",
    "sshd AND dovecot",
    # issue 9: values that do not fit their typed field (masked relay addresses, size=12k)
    "tags:_malformed_field",
    "_malformed:relayip",
    "_malformed:size AND _malformed:pid",
    "_exists_:_malformed",
    "NOT _exists_:size AND program:sendmail",
    "synthetic",
    '"123.456.789.1"',
    "mx2.laboris.fr",
    "relay:mx2.laboris.fr",
    "host:odd AND NOT size:[0 TO *]",           # a malformed size is in no range
    # Lucene regular expressions: anchored on the whole value, case-sensitive
    r"program:/postfix.*\/smtpd/",
    r"program:/postfix.*/",
    "program:/post/",                           # anchored: matches no whole value
    "program:/sm-.*|sendmail/",
    "qid:/[a-z][0-9]{2}.*/",
    "status:/(sent|deferred) .*/",
    r"host:/[A-Z][a-z]+\d*/",
    "relay:/[a-z0-9.\\-]+\\.(com|org)/",
    "stat:/Sent.*/ AND NOT relay:/local.*/",
    "message.keyword:/.*[Uu]ser unknown.*/",
]

TIME_WINDOWS = [
    (None, None),
    (datetime(2026, 1, 6, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)),
]


@pytest.fixture(scope="module")
def events():
    return corpus_events()


@pytest.fixture(scope="module", params=["as written", "maintained"])
def sqlite_store(events, tmp_path_factory, request):
    """The embedded store as the writers leave it, and after its maintenance (the per-hour
    counts, and the value indexes every query and top field of this module asked for)."""
    sink = SqliteStore("sqlite:///" + str(tmp_path_factory.mktemp("equiv") / "events.db"))
    sink.prepare()
    outcomes = sink.write(events)
    assert all(o.status is Status.INDEXED for o in outcomes), \
        [o.reason for o in outcomes if o.status is not Status.INDEXED][:3]
    if request.param == "maintained":
        for query in QUERIES:
            store_search(sink, SearchRequest(query=query))  # notes the fields it wants indexed
        for field in ("relay", "stat", "nrcpts", "program", "size", "qid", "tags"):
            sink.top(SearchRequest(), field)
        assert len(sink.wanted_fields()) >= 5
        while sink.maintain():
            pass
        assert sink.wanted_fields() == []
    yield sink
    sink.close()


def _ids(result) -> set[str]:
    return {e["_id"] for e in result.events}


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES)
def test_embedded_store_matches_the_documented_semantics(query, events, sqlite_store):
    q = lucene.compile_query(query)
    for start, end in TIME_WINDOWS:
        expected = {e.id for e in events if matches(q, e) and
                    (start is None or timestamp_ms(e.doc["@timestamp"]) >= start.timestamp() * 1000)
                    and (end is None or timestamp_ms(e.doc["@timestamp"]) < end.timestamp() * 1000)}
        result = store_search(sqlite_store, SearchRequest(query=query, start=start, end=end,
                                                   limit=len(events)))
        assert result.total == len(expected), query
        assert _ids(result) == expected, query


def test_the_query_set_is_not_trivial(events):
    """Most queries match something and none matches everything, so equal hits mean a lot."""
    counts = {query: sum(matches(lucene.compile_query(query), e) for e in events)
              for query in QUERIES}
    assert counts["*"] == len(events) > 1000
    assert sum(1 for n in counts.values() if 0 < n < len(events)) >= len(QUERIES) - 8
    assert counts["develooper"] == 0 and counts["mx.develooper.com"] > 0
    assert counts["SENT"] == counts["sent"] > 0
    assert counts["qid:J061BW9V000809"] == 0 and counts["qid:j061bW9V000809"] == 2


# ------------------------------------------------------------------ Elasticsearch

@pytest.fixture(scope="module")
def es_store(es_url, events):
    """The lead's ElasticsearchStore, loaded with the corpus; yields (sink, ids it accepted)."""
    from logpipe.store.elasticsearch import ElasticsearchStore
    from tests.fixtures.elasticsearch import cleaned_es

    with cleaned_es(es_url, timeout=120) as client:
        sink = ElasticsearchStore(es_url, index="logpipe-equiv-%Y.%m.%d", client=client)
        sink.prepare()
        outcomes = sink.write(events)
        accepted = {e.id for e, o in zip(events, outcomes) if o.status is Status.INDEXED}
        rejected = [o.reason for o in outcomes if o.status is not Status.INDEXED]
        assert len(accepted) == len(events), rejected[:3]
        sink.refresh()
        yield sink


@pytest.mark.integration
def test_elasticsearch_and_the_embedded_store_give_the_same_hits(es_store, sqlite_store,
                                                                  events):
    differences = []
    for query in QUERIES:
        for start, end in TIME_WINDOWS:
            request = SearchRequest(query=query, start=start, end=end, limit=len(events))
            es = store_search(es_store, request)
            lite = store_search(sqlite_store, request)
            if es.total != lite.total or _ids(es) != _ids(lite):
                differences.append((query, start, es.total, lite.total,
                                    sorted(_ids(es) ^ _ids(lite))[:5]))
            # newest first on both; equal timestamps may come in any order
            assert [e["@timestamp"] for e in es.events] == \
                   [e["@timestamp"] for e in lite.events], query
            # ascending, limited
            request = SearchRequest(query=query, start=start, end=end, limit=7, order="asc")
            assert [e["@timestamp"] for e in store_search(es_store, request).events] == \
                   [e["@timestamp"] for e in store_search(sqlite_store, request).events], query
    assert not differences, differences


@pytest.mark.integration
@pytest.mark.parametrize("query,interval", [("*", "1d"), ("program:sendmail", "1h"),
                                            ("failure OR failed", "7d"), ("sent", "30m"),
                                            ("nosuchword", "1h")])
def test_histograms_agree(es_store, sqlite_store, query, interval):
    request = SearchRequest(query=query)
    lite = sqlite_store.histogram(request, interval)
    assert lite == es_store.histogram(request, interval)
    assert sum(n for _, n in lite) == store_search(sqlite_store, request).total


@pytest.mark.integration
@pytest.mark.parametrize("query,interval", [("*", "6h"), ("program:sendmail", "1d"),
                                            ("program:sendmail AND NOT host:nosuchhost", "1d"),
                                            ("@timestamp:[2026-01-10 TO 2026-01-20]", "1h")])
def test_histograms_agree_in_a_time_window(es_store, sqlite_store, query, interval):
    """Index-range counting (everything, program:..., time ranges) and GROUP BY (the rest) give
    Elasticsearch's buckets inside a window too."""
    _, (start, end) = TIME_WINDOWS
    request = SearchRequest(query=query, start=start, end=end)
    lite = sqlite_store.histogram(request, interval)
    assert lite == es_store.histogram(request, interval)
    assert sum(n for _, n in lite) == store_search(sqlite_store, request).total


@pytest.mark.integration
@pytest.mark.parametrize("query,field", [("*", "program"), ("*", "host"), ("*", "tags"),
                                         ("program:sendmail", "relay"), ("*", "stat"),
                                         ("*", "size"), ("*", "nrcpts"),
                                         ("_exists_:qid", "qid"), ("nosuchword", "host")])
def test_top_values_agree(es_store, sqlite_store, query, field):
    request = SearchRequest(query=query)
    lite = sqlite_store.top(request, field, 8)
    assert lite == es_store.top(request, field, 8)
    if query != "nosuchword":
        assert lite and lite[0][1] >= lite[-1][1]


@pytest.mark.integration
def test_malformed_values_are_stored_as_text_and_tagged_the_same_on_both(es_store, sqlite_store):
    """Masked relay addresses and non-numbers in numeric fields: stored (nothing dead-lettered:
    both fixtures assert every event INDEXED), the value kept as text in the document, the field
    named in _malformed, the event tagged _malformed_field; identical documents on both."""
    request = SearchRequest(query="tags:_malformed_field", limit=100, order="asc")
    es, lite = store_search(es_store, request), store_search(sqlite_store, request)
    assert es.total == lite.total == 5
    by_id = {e["_id"]: e for e in lite.events}
    for doc in es.events:
        mine = by_id[doc["_id"]]
        assert {k: v for k, v in doc.items() if not k.startswith("_")} == \
            {k: v for k, v in mine.items() if not k.startswith("_")}
        assert doc[MALFORMED_FIELD] == mine[MALFORMED_FIELD]
        assert MALFORMED_TAG in doc["tags"]
    masked = [e for e in lite.events if "relayip" in e.get(MALFORMED_FIELD, [])]
    assert len(masked) == 2 and all(e["relayip"] == "123.456.789.1" for e in masked)
    odd = by_id["synthetic:0"]
    assert (odd["size"], odd["pid"], odd[MALFORMED_FIELD]) == ("12k", "abc", ["pid", "size"])
    assert by_id["synthetic:2"]["size"] == "true"  # a boolean is no number: kept as its text
    assert by_id["synthetic:1"][MALFORMED_FIELD] == ["size"]  # pid 77 fits


@pytest.mark.integration
def test_bad_queries_fail_the_same_way_on_both(es_store, sqlite_store):
    from logpipe.common.errors import QueryError

    for query in ["a AND (b", "foo~", '"a b"~2', "/regex/", "message:/regex/", "message:[a TO b]",
                  "size:", "program:/a@b/", "program:/(a/", "program:/^post.*/"]:
        for store in (es_store, sqlite_store):
            with pytest.raises(QueryError):
                store_search(store, SearchRequest(query=query))


@pytest.mark.integration
def test_page_totals_are_tracked_alike(es_store, sqlite_store, monkeypatch):
    """A page's total is exact up to the tracking limit and "at least the limit" past it, on
    both stores (Elasticsearch's track_total_hits; a limit of 40 here for the small corpus)."""
    from logpipe.store.elasticsearch import reader as es_reader
    from logpipe.store.sqlite import paging as lite_reader

    monkeypatch.setattr(es_reader, "TRACK_TOTAL_HITS", 40)
    monkeypatch.setattr(lite_reader, "TRACK_TOTAL_HITS", 40)
    seen = set()
    for query in QUERIES:
        request = SearchRequest(query=query, limit=5)
        es, lite = es_store.search_page(request), sqlite_store.search_page(request)
        assert (es.total, es.total_relation) == (lite.total, lite.total_relation), query
        exact = sqlite_store.count(request)
        assert lite.total == (exact if exact <= 40 else 40), query
        assert lite.total_relation == ("eq" if exact <= 40 else "gte"), query
        seen.add(lite.total_relation)
        assert [e["@timestamp"] for e in es.hits] == [e["@timestamp"] for e in lite.hits], query
    assert seen == {"eq", "gte"}
