"""The embedded store's query translation: the query's intermediate form (:mod:`query.tree`)
as a SQL condition over the ``events`` table (and its full-text index).

Nothing a query says reaches SQL text: field names become bound JSON paths (or one of a fixed set
of column names), values are bound parameters, full-text terms go into a bound FTS5 expression in
which every token is quoted. Which plan runs a condition (keyset pages, histograms, top values) is
:mod:`store.sqlite.reader`'s.
"""

from __future__ import annotations

from datetime import datetime


from logpipe.common.errors import QueryError
from logpipe.query.analyzer import analyze
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    TEXT_FIELD,
    TEXT_KEYWORD,
    TIME_FIELD,
    All,
    And,
    Exists,
    Not,
    Nothing,
    Or,
    Range,
    Regexp,
    Term,
    Text,
    TextWildcard,
    TimeRange,
    Wildcard,
    numeric,
)
from logpipe.store.sqlite.schema import (
    FTS_TABLE,
    FTS_VOCAB,
    SQL_COLUMNS,
    json_index_name,
    json_literal_path,
    json_value_sql,
)


def json_path(field: str) -> str:
    """The SQLite JSON path of a top-level key (names may contain '.', '@', spaces...)."""
    if '"' in field:
        raise QueryError(f"invalid field name {field!r}")
    return '$."' + field + '"'


def fts_phrase(tokens) -> str:
    """A safe FTS5 phrase expression: every token double-quoted."""
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def to_sql(tree, now: datetime | None = None,
           indexed: frozenset = frozenset()) -> tuple[str, list]:
    """``(where_sql, params)`` for the embedded store's ``events`` table; ``indexed`` names the
    JSON fields that have a promoted-by-use index (schema.json_index_sql)."""
    params: list = []
    sql = sql_query(compile_query(tree, now), params, indexed)
    return sql, params


def value_fields(q) -> set[str]:
    """The JSON document fields whose values a compiled query compares (term, wildcard,
    range): the ones an index on the value would serve."""
    if isinstance(q, (And, Or)):
        return set().union(*(value_fields(i) for i in q.items)) if q.items else set()
    if isinstance(q, Not):
        return value_fields(q.item)
    if isinstance(q, (Term, Wildcard, Range)) and q.field != "_id":
        return {doc_field(q.field)}
    return set()


def fts_match(q, params: list) -> str:
    """The right-hand side of ``events_fts MATCH`` for a full-text node (its parameters
    appended to ``params``)."""
    if isinstance(q, Text):
        params.append(fts_phrase(q.tokens))
        return "?"
    pat = q.pattern
    prefix = pat.prefix()
    if pat.is_prefix_only() and analyze(prefix) == [prefix]:
        params.append(fts_phrase([prefix]) + "*")
        return "?"
    # expand the pattern over the index's vocabulary, inside SQLite
    params.append(pat.glob())
    return (f"(SELECT COALESCE(group_concat('\"' || term || '\"', ' OR '), '\"\"') "
            f"FROM {FTS_VOCAB} WHERE term GLOB ?)")


def fts_match_all(items, params: list) -> str:
    """The right-hand side of ``events_fts MATCH`` for all of several full-text nodes."""
    if len(items) == 1:
        return fts_match(items[0], params)
    start = len(params)
    matches = [fts_match(i, params) for i in items]
    if all(m == "?" for m in matches):
        params[start:] = ["(" + ") AND (".join(params[start:]) + ")"]
        return "?"
    return "('(' || " + " || ') AND (' || ".join(matches) + " || ')')"


def fts_membership(match: str, params: list, rowids: tuple[int, int] | None,
                   column: str = "events.rowid") -> str:
    """``column IN`` the full-text matches (only those in the rowid range ``rowids``)."""
    if rowids is None:
        return f"{column} IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH {match})"
    params.extend(rowids)
    return (f"{column} IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH {match} "
            f"AND rowid >= ? AND rowid <= ?)")


def sql_query(q, params: list, indexed: frozenset = frozenset(),
              rowids: tuple[int, int] | None = None) -> str:
    """``rowids``: (lo, hi), the events the condition is checked on lie in that rowid range (a
    walk along the time index): full-text conditions then read only that part of the index."""
    if isinstance(q, All):
        return "1"
    if isinstance(q, Nothing):
        return "0"
    if isinstance(q, And):
        texts = [i for i in q.items if isinstance(i, (Text, TextWildcard))]
        if len(texts) < 2:
            return "(" + " AND ".join(sql_query(i, params, indexed, rowids) for i in q.items) + ")"
        # the full-text parts as one FTS5 expression: the index intersects them itself, where
        # one IN (...) each would collect every part's matches
        parts = [fts_membership(fts_match_all(texts, params), params, rowids)]
        parts += [sql_query(i, params, indexed, rowids) for i in q.items if i not in texts]
        return "(" + " AND ".join(parts) + ")"
    if isinstance(q, Or):
        return "(" + " OR ".join(sql_query(i, params, indexed, rowids) for i in q.items) + ")"
    if isinstance(q, Not):
        # two-valued logic: a missing field makes a comparison NULL, and NOT NULL is NULL
        return f"(NOT COALESCE({sql_query(q.item, params, indexed, rowids)}, 0))"
    if isinstance(q, (Text, TextWildcard)):
        return fts_membership(fts_match(q, params), params, rowids)
    if isinstance(q, TimeRange):
        parts = []
        if q.start is not None:
            parts.append("events.ts >= ?")
            params.append(q.start)
        if q.end is not None:
            parts.append("events.ts < ?")
            params.append(q.end)
        return "(" + " AND ".join(parts) + ")" if parts else "events.ts IS NOT NULL"
    if isinstance(q, Exists):
        if q.field == TIME_FIELD:
            return "events.ts IS NOT NULL"
        if q.field in SQL_COLUMNS:
            return f"events.{SQL_COLUMNS[q.field]} IS NOT NULL"
        path = json_path(doc_field(q.field))
        params.extend([path, path, path])
        return ("(COALESCE(json_type(events.doc, ?), 'null') <> 'null' AND NOT "
                "(json_type(events.doc, ?) = 'array' AND json_array_length(events.doc, ?) = 0))")
    if isinstance(q, Term):
        if q.field == "_id":
            params.append(q.value)
            return "events.id = ?"
        n = numeric(q.value)
        if n is None:
            return _value_cond(q.field, "{v} = ?", [q.value], params, indexed)
        return _value_cond(q.field, "{v} IN (?, ?)", [q.value, n], params, indexed)
    if isinstance(q, Wildcard) and q.field not in SQL_COLUMNS and doc_field(q.field) in indexed:
        return _indexed_wildcard(doc_field(q.field), q.pattern, params)
    if isinstance(q, Wildcard):
        prefix = q.pattern.prefix()
        # a range on the literal prefix lets SQLite use the column's (or value) index; on a JSON
        # value only when no number can match (a number's text starts with a digit or sign)
        if prefix and (q.field in SQL_COLUMNS or doc_field(q.field) in indexed
                       and prefix[0] not in "0123456789+-."):
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            return _value_cond(q.field, "({v} >= ? AND {v} < ? AND {v} GLOB ?)",
                               [prefix, upper, q.pattern.glob()], params, indexed)
        return _value_cond(q.field, "{v} GLOB ?", [q.pattern.glob()], params, indexed)
    if isinstance(q, Range):
        return _range_cond(q, params, indexed)
    if isinstance(q, Regexp):
        # every value read and matched by lp_regexp (store/sqlite/functions.py), string values
        # only; no value index serves a regexp
        return _value_cond(q.field, "lp_regexp(?, {v})", [q.python], params)
    raise TypeError(f"unknown query node {q!r}")


def doc_field(field: str) -> str:
    """The field a keyword query on the text field reads (``message.keyword`` -> ``message``)."""
    return TEXT_FIELD if field == TEXT_KEYWORD else field


def _value_cond(field: str, template: str, values: list, params: list,
                indexed: frozenset = frozenset()) -> str:
    """A condition on a field's value; for a JSON field that holds a list, any element.

    ``json_each`` on a scalar yields that one value, on a list its elements, on a missing key
    nothing: one bound path serves every case. A field with a value index is looked up there
    (:func:`_indexed_cond`), with the same meaning."""
    if field in SQL_COLUMNS:
        params.extend(values)
        return template.format(v=f"events.{SQL_COLUMNS[field]}")
    if doc_field(field) in indexed:
        return _indexed_cond(doc_field(field), [(template, values)], template, values, params)
    params.append(json_path(doc_field(field)))
    params.extend(values)
    return (f"EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS je "
            f"WHERE {template.format(v='je.value')})")


# how each part of an indexed OR begins: the reader swaps it to read (rowid, ts) for a walk
PART_HEAD = "SELECT rowid FROM events INDEXED BY "


def _indexed_cond(field: str, scalar: list[tuple[str, list]], template: str, values: list,
                  params: list) -> str:
    """``_value_cond`` over the field's value index. ``scalar``: (condition, values) pairs on
    the indexed value, each a range the index answers alone (SQLite 3.40 reads the document
    again for any other test of an indexed expression); they hold for the scalar values
    (below every BLOB). Lists and objects (BLOBs in the index) are read element by element
    with ``template``, as json_each does."""
    x, path, index = json_value_sql(field, "events."), json_literal_path(field), \
        json_index_name(field)
    parts = []
    for cond, vals in scalar:
        parts.append(f"{PART_HEAD}{index} WHERE {cond.format(v=x)}")
        params.extend(vals)
    parts.append(f"{PART_HEAD}{index} WHERE {x} >= x'' AND EXISTS "
                 f"(SELECT 1 FROM json_each(events.doc, {path}) AS je WHERE "
                 f"{template.format(v='je.value')})")
    params.extend(values)
    return "events.rowid IN (" + " UNION ALL ".join(parts) + ")"


def _indexed_wildcard(field: str, pattern, params: list) -> str:
    """A wildcard over a value index: the strings that start with the literal prefix are an
    index range (the whole answer when the pattern is ``prefix*``; else the glob is checked in
    that range only); numbers are checked by their text when the prefix can start one."""
    prefix, glob = pattern.prefix(), pattern.glob()
    scalar: list[tuple[str, list]] = []
    if prefix and ord(prefix[-1]) < 0x10FFFF:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        if pattern.is_prefix_only():
            scalar.append(("{v} >= ? AND {v} < ?", [prefix, upper]))
        else:
            scalar.append(("{v} >= ? AND {v} < ? AND {v} GLOB ?", [prefix, upper, glob]))
        if prefix[0] in "0123456789+-.":
            scalar.append(("{v} < '' AND {v} GLOB ?", [glob]))
    else:
        scalar.append(("{v} < x'' AND {v} GLOB ?", [glob]))
    return _indexed_cond(field, scalar, "{v} GLOB ?", [glob], params)


def _range_cond(q: Range, params: list, indexed: frozenset = frozenset()) -> str:
    # numbers compare with numbers, strings with strings (SQLite orders numbers < text < blob)
    branches: list[tuple[str, list]] = []
    conds: list[str]
    vals: list[object]
    nlow = numeric(q.low) if q.low is not None else None
    nhigh = numeric(q.high) if q.high is not None else None
    if (q.low is None or nlow is not None) and (q.high is None or nhigh is not None):
        conds, vals = ["{v} < ''"], []
        if q.low is not None:
            conds.append("{v} >= ?" if q.include_low else "{v} > ?")
            vals.append(nlow)
        if q.high is not None:
            conds.append("{v} <= ?" if q.include_high else "{v} < ?")
            vals.append(nhigh)
        branches.append((" AND ".join(conds), vals))
    conds, vals = ["{v} >= ''", "{v} < x''"], []
    if q.low is not None:
        conds.append("{v} >= ?" if q.include_low else "{v} > ?")
        vals.append(q.low)
    if q.high is not None:
        conds.append("{v} <= ?" if q.include_high else "{v} < ?")
        vals.append(q.high)
    branches.append((" AND ".join(conds), vals))
    template = "(" + " OR ".join(f"({b})" for b, _ in branches) + ")"
    values = [v for _, vs in branches for v in vs]
    if doc_field(q.field) in indexed and q.field not in SQL_COLUMNS:
        # over the index: each branch as one lower and one upper bound, nothing left to check
        # row by row (a bound the other makes redundant goes)
        bounded = []
        for conds_text, vals in branches:
            conds = conds_text.split(" AND ")
            lower = [c for c in conds[len(conds) - len(vals):] if ">" in c]
            upper = [c for c in conds[len(conds) - len(vals):] if "<" in c]
            fixed = conds[:len(conds) - len(vals)]
            keep = [c for c in fixed if not (">" in c and lower or "<" in c and upper)]
            bounded.append((" AND ".join(keep + conds[len(conds) - len(vals):]), vals))
        return _indexed_cond(doc_field(q.field), bounded, template, values, params)
    return _value_cond(q.field, template, values, params, indexed)
