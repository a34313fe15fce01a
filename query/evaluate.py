"""Whether one event matches a query: the intermediate form (:mod:`query.tree`) evaluated in
memory, with the meaning the stores give it -- ``field:value`` is an exact, case-sensitive match
on the whole value, wildcards match whole values, bare words and phrases are tokens of
``message`` (the analyzer's tokens, in sequence), ranges compare numbers as numbers. Fields may
be dotted paths into nested objects (``source.address``); a list matches when one element does.
The indexer's routing uses it, so routes and searches read a query the same way."""

from __future__ import annotations

import re
from datetime import datetime

from logpipe.query.analyzer import analyze
from logpipe.query.regexp import fullmatch
from logpipe.query.tree import (TEXT_FIELD, TIME_FIELD, All, And, Exists, Not, Nothing, Or, Pattern,
                        Range, Regexp, Term, Text, TextWildcard, TimeRange, Wildcard, numeric)

_MISSING = object()


def values(doc: dict, field: str) -> list:
    """The values of a field: a top-level key, else a dotted path into nested objects."""
    if field in doc:
        found = doc[field]
    else:
        found = doc
        for part in field.split("."):
            if not isinstance(found, dict) or part not in found:
                return []
            found = found[part]
    if found is None or found is _MISSING:
        return []
    return list(found) if isinstance(found, list) else [found]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _regex(pattern: Pattern) -> re.Pattern:
    out = []
    for part in pattern.parts:
        out.append(re.escape(part[1]) if part[0] == "lit" else (".*" if part[0] == "*" else "."))
    return re.compile("".join(out), re.S)


def _compare(value, bound: str) -> int | None:
    a, b = numeric(_text(value)), numeric(bound)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    sa = _text(value)
    return (sa > bound) - (sa < bound)


def _in_range(value, node: Range) -> bool:
    if node.low is not None:
        c = _compare(value, node.low)
        if c is None or c < 0 or (c == 0 and not node.include_low):
            return False
    if node.high is not None:
        c = _compare(value, node.high)
        if c is None or c > 0 or (c == 0 and not node.include_high):
            return False
    return True


def _epoch_ms(value) -> int | None:
    try:
        moment = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def _contains_run(tokens: list[str], run: tuple) -> bool:
    n = len(run)
    return any(tuple(tokens[i:i + n]) == run for i in range(len(tokens) - n + 1))


def matches(node, doc: dict) -> bool:
    if isinstance(node, All):
        return True
    if isinstance(node, Nothing):
        return False
    if isinstance(node, And):
        return all(matches(item, doc) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, doc) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, doc)
    if isinstance(node, Term):
        return any(_text(v) == node.value for v in values(doc, node.field))
    if isinstance(node, Wildcard):
        rx = _regex(node.pattern)
        return any(rx.fullmatch(_text(v)) for v in values(doc, node.field))
    if isinstance(node, Regexp):
        return any(isinstance(v, str) and fullmatch(node.python, v)
                   for v in values(doc, node.field))
    if isinstance(node, Exists):
        return bool(values(doc, node.field))
    if isinstance(node, Range):
        return any(_in_range(v, node) for v in values(doc, node.field))
    if isinstance(node, TimeRange):
        for v in values(doc, TIME_FIELD):
            ms = _epoch_ms(v)
            if ms is not None and (node.start is None or ms >= node.start) and \
                    (node.end is None or ms < node.end):
                return True
        return False
    if isinstance(node, Text):
        return any(_contains_run(analyze(_text(v)), tuple(node.tokens))
                   for v in values(doc, TEXT_FIELD))
    if isinstance(node, TextWildcard):
        rx = _regex(node.pattern)
        return any(rx.fullmatch(t) for v in values(doc, TEXT_FIELD) for t in analyze(_text(v)))
    raise TypeError(f"cannot evaluate query node {node!r}")
