"""Lucene / Kibana query syntax: parsing and compiling to the intermediate form.

``parse(text)`` gives a luqum tree (or a :class:`QueryError` that shows the position);
``compile_query(text)`` gives the intermediate form (:mod:`query.tree`), which each store's reader
translates (``store.elasticsearch.reader.to_es``, ``store.sqlite.reader.to_sql``), so the stores
cannot drift apart on what a query means.

Semantics (the same on both stores; ``tests/integration/test_store_equivalence.py`` checks them):

* ``field:value`` on any field but ``message``: exact, case-sensitive match of the whole value
  (ES keyword). A numeric-looking value also matches the number (``size:2039`` matches 2039 and
  "2039"). A field holding a list matches when any element matches.
* ``field:"a value"``: the same exact match; quotes only allow spaces and special characters.
* ``field:r4F*`` / ``field:r?F``: wildcard over the whole value, case-sensitive (``*`` any run,
  ``?`` one character; ``\\*`` is a literal star). ``field:*`` means the field exists.
* Bare words and ``message:...``: full-text match on ``message`` with the Elasticsearch standard
  analyzer's rules (Unicode word boundaries, lower-cased, so case-insensitive). A word that the
  analyzer splits into several tokens (``user@example.com``) must match them in sequence, like a
  phrase. ``"a phrase"`` matches the tokens in sequence. A wildcard word (``sen*``) matches any one
  token of the message. ``message.keyword:...`` is the exact whole-message match.
* ``field:[a TO b]``, ``{a TO b}``, mixed, ``*`` for an open end, ``field:>=a``: numeric values
  compare as numbers when the bounds are numbers; string values compare as strings (byte order),
  as Elasticsearch does on keyword fields. ``field:[* TO *]`` means the field exists.
* ``@timestamp:`` values and ranges take ISO 8601 dates (a date, ``2026-11-28T10:00``, a full
  timestamp; UTC unless an offset is given) or date math (``now``, ``now-1h``, ``now-7d/d``). A
  partial date covers its whole period: ``@timestamp:2026-11-28`` is that day and
  ``[* TO 2026-11-28]`` includes the whole day (as Elasticsearch rounds ``lte``).
* ``_exists_:field``; ``_id:ID``; ``*`` (or ``*:*``) matches everything.
* ``AND``, ``OR``, ``NOT``, ``+``/``-``, parentheses, ``field:(a OR b)``. Words next to each other
  without an operator are joined with AND (the Lucene default is OR; AND is what one means when
  narrowing logs). ``AND`` binds tighter than ``OR``.
* ``field:/regexp/``: a Lucene regular expression over the whole value, case-sensitive, on
  string values (``program:/postfix.*\\/smtpd/``); the subset is in :mod:`query.regexp`, and a
  regexp that backtracks without end on a value stops with a clear error.
* Not supported, a clear error on both stores: fuzzy ``foo~``, proximity ``"a b"~2``, regular
  expressions on ``message`` (tokens) or bare, ranges on ``message``, field-name wildcards. A boost ``^2`` is accepted
  and ignored (results are sorted by time, not by score).
* Known divergences: a wildcard on a numeric or ip field is an error on Elasticsearch and a match
  on the value's text on the embedded store; a regexp there is an error on Elasticsearch and
  matches nothing on the embedded store.

Nothing a query says reaches SQL text: field names become bound JSON paths (or one of a fixed set
of column names), values are bound parameters, full-text terms go into a bound FTS5 expression in
which every token is quoted.
"""


from __future__ import annotations

import decimal
import re
from datetime import datetime, timezone

from luqum import tree as T
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.thread import parse as _luqum_parse

from logpipe.query.analyzer import analyze
from logpipe.query.datemath import OUT_OF_RANGE, time_period
from logpipe.query.errors import QueryError
from logpipe.query.regexp import translate as translate_regexp
from logpipe.query.tree import (
    TEXT_FIELD,
    TIME_FIELD,
    All,
    And,
    Exists,
    Not,
    Nothing,
    Or,
    Pattern,
    Range,
    Regexp,
    Term,
    Text,
    TextWildcard,
    TimeRange,
    Wildcard,
    numeric,
)

# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------

_POSITION_RE = re.compile(r"position (\d+)")

# How deeply a query may nest groups and operators: parentheses, NOT / - / +, boosts, fields.
# Real queries stay far below; the bound keeps compiling (and each store's translation, which
# recurses over the tree) clear of Python's recursion limit.
MAX_DEPTH = 100
# What spells a number (query.tree.numeric says whether a store can hold it: 64-bit, finite).
_NUMBER_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_NESTING = (T.Group, T.FieldGroup, T.Not, T.Prohibit, T.Plus, T.Boost, T.SearchField)


def _unclosed_quote(text: str, pos: int) -> bool:
    """Whether the '"' at ``pos`` opens a phrase that no later unescaped '"' closes."""
    if text[pos:pos + 1] != '"':
        return False
    i = pos + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return False
        i += 1
    return True


def _check_depth(tree, text: str) -> None:
    """QueryError when the tree nests deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(tree, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _NESTING):
            depth += 1
            if depth > MAX_DEPTH:
                pos = getattr(item, "pos", None)
                where = f" at position {pos}" if pos is not None else ""
                raise QueryError(f"invalid query: nested more than {MAX_DEPTH} levels deep "
                                 f"(parentheses, NOT, -, +){where}")
        stack.extend((child, depth) for child in getattr(item, "children", ()))


def parse(query: str):
    """A luqum tree for a Lucene query; QueryError (with the position) when it is not valid."""
    text = query if query is not None else ""
    if not text.strip():
        text = "*"
    try:
        tree = _luqum_parse(text)
    except (ParseSyntaxError, IllegalCharacterError, ParseError) as exc:
        msg = str(exc)
        m = _POSITION_RE.search(msg)
        pos = int(m.group(1)) if m else len(text)
        if "unexpected end" in msg:
            what = "the query ends too early (an unclosed parenthesis, quote or bracket?)"
        elif isinstance(exc, IllegalCharacterError) and _unclosed_quote(text, pos):
            what = "unclosed quote"
        elif isinstance(exc, IllegalCharacterError) and text[pos:pos + 1] == "/":
            what = ("'/' starts a regular expression, which needs a field and a closing '/': "
                    "program:/postfix.*/ (escape a plain slash as \\/ or quote the value)")
        elif isinstance(exc, IllegalCharacterError):
            what = f"illegal character {text[pos:pos + 1]!r}"
        else:
            token = re.search(r"unexpected\s+'(.*)' at", msg)
            what = f"unexpected {token.group(1)!r}" if token else "syntax error"
        raise QueryError(f"invalid query: {what} at position {pos}", text, pos) from None
    except RecursionError:
        raise QueryError(f"invalid query: nested more than {MAX_DEPTH} levels deep") from None
    except decimal.InvalidOperation:  # luqum reads a boost with Decimal: '0^.'
        raise QueryError("invalid query: a boost (^) needs a number after it, e.g. ^2", text,
                         text.find("^")) from None
    _check_depth(tree, text)
    return tree


class _Compiler:
    def __init__(self, query: str, now: datetime | None):
        self.query = query
        self.now = now or datetime.now(timezone.utc)

    def error(self, message: str, item=None) -> QueryError:
        pos = getattr(item, "pos", None)
        if pos is None:
            return QueryError(message)
        return QueryError(f"{message} (position {pos})", self.query, pos)

    # ---------------------------------------------------------------- structure
    def node(self, item, field: str | None):
        if isinstance(item, (T.AndOperation, T.UnknownOperation)):
            return _and([self.node(op, field) for op in item.operands])
        if isinstance(item, T.OrOperation):
            return _or([self.node(op, field) for op in item.operands])
        if isinstance(item, (T.Not, T.Prohibit)):
            return _not(self.node(item.a, field))
        if isinstance(item, T.Plus):
            return self.node(item.a, field)
        if isinstance(item, (T.Group, T.FieldGroup)):
            return self.node(item.expr, field)
        if isinstance(item, T.Boost):
            return self.node(item.expr, field)
        if isinstance(item, T.SearchField):
            if field is not None:
                raise self.error(f"a field inside a field ({field}:{item.name}:...) "
                                 "is not supported", item)
            return self.search_field(item)
        if isinstance(item, T.Word):
            return self.word(item, field)
        if isinstance(item, T.Phrase):
            return self.phrase(item, field)
        if isinstance(item, (T.Range, T.From, T.To)):
            return self.range(item, field)
        if isinstance(item, T.Fuzzy):
            raise self.error("fuzzy queries (word~) are not supported", item)
        if isinstance(item, T.Proximity):
            raise self.error('proximity queries ("a b"~N) are not supported', item)
        if isinstance(item, T.Regex):
            return self.regexp(item, field)
        raise self.error(f"unsupported query element {str(item)!r}", item)

    def search_field(self, item):
        name = _unescape(item.name)
        if name == "_exists_":
            return self.exists_list(item.expr)
        if not name or '"' in name or any(ord(c) < 32 for c in name):
            raise self.error(f"invalid field name {name!r}", item)
        if "*" in name or "?" in name:
            if name == "*" and isinstance(item.expr, T.Word) and item.expr.value == "*":
                return All()
            raise self.error(f"wildcards in field names ({name}) are not supported", item)
        return self.node(item.expr, name)

    def exists_list(self, expr):
        if isinstance(expr, T.Word) and not expr.has_wildcard():
            return Exists(self.check_field(_unescape(expr.value), expr))
        if isinstance(expr, (T.Group, T.FieldGroup)):
            return self.exists_list(expr.expr)
        if isinstance(expr, T.OrOperation):
            return _or([self.exists_list(op) for op in expr.operands])
        if isinstance(expr, (T.AndOperation, T.UnknownOperation)):
            return _and([self.exists_list(op) for op in expr.operands])
        raise self.error("_exists_ takes a field name, e.g. _exists_:relay", expr)

    def check_field(self, name: str, item) -> str:
        if not name or '"' in name or any(ord(c) < 32 for c in name):
            raise self.error(f"invalid field name {name!r}", item)
        return name

    # ---------------------------------------------------------------- leaves
    def word(self, item, field):
        pattern = _pattern(item.value)
        if field is None or field == TEXT_FIELD:
            if pattern is None:
                value = _unescape(item.value)
                tokens = analyze(value)
                return Text(tuple(tokens), value) if tokens else Nothing()
            if all(p[0] == "*" for p in pattern.parts):
                return All() if field is None else Exists(TEXT_FIELD)
            return TextWildcard(pattern.lower())
        if field == TIME_FIELD:
            if pattern is not None:
                if all(p[0] == "*" for p in pattern.parts):
                    return Exists(TIME_FIELD)
                raise self.error("wildcards on @timestamp are not supported; use a range", item)
            return self.time_point(_unescape(item.value), item)
        if field == "_id":
            if pattern is not None:
                raise self.error("wildcards on _id are not supported", item)
            return Term("_id", _unescape(item.value))
        if pattern is None:
            return _term(field, _unescape(item.value))
        if all(p[0] == "*" for p in pattern.parts):
            return Exists(field)
        return _wildcard(field, pattern)

    def regexp(self, item, field):
        source = item.value[1:-1]
        if field is None or field in (TEXT_FIELD, TIME_FIELD, "_id"):
            where = "a bare /regexp/" if field is None else f"{field}:/regexp/"
            raise self.error(f"{where} is not supported: a regular expression matches the whole "
                             f"value of a field, e.g. program:/postfix.*/ (message.keyword:/.../ "
                             f"for the whole message)", item)
        pos = getattr(item, "pos", None)
        python = translate_regexp(source, self.query, (pos or 0) + 1)
        return Regexp(field, source, python)

    def phrase(self, item, field):
        value = _unescape(item.value[1:-1])
        if field is None or field == TEXT_FIELD:
            tokens = analyze(value)
            return Text(tuple(tokens), value) if tokens else Nothing()
        if field == TIME_FIELD:
            return self.time_point(value, item)
        return _term(field, value)

    def range(self, item, field):
        if field is None:
            raise self.error("a range needs a field, e.g. size:[1000 TO *]", item)
        if field in (TEXT_FIELD, "_id"):
            raise self.error(f"ranges on {field} are not supported", item)
        if isinstance(item, T.Range):
            low, high = self.bound(item.low), self.bound(item.high)
            inc_low, inc_high = item.include_low, item.include_high
        elif isinstance(item, T.From):
            low, high, inc_low, inc_high = self.bound(item.a), None, item.include, True
        else:
            low, high, inc_low, inc_high = None, self.bound(item.a), True, item.include
        if field == TIME_FIELD:
            start = end = None
            if low is not None:
                lo = self.time_period(low, item)
                start = lo[0] if inc_low else lo[1]
            if high is not None:
                hi = self.time_period(high, item)
                end = hi[1] if inc_high else hi[0]
            if start is None and end is None:
                return Exists(TIME_FIELD)
            return TimeRange(start, end)
        if low is None and high is None:
            return Exists(field)
        return Range(field, low, high, inc_low, inc_high)

    def bound(self, item) -> str | None:
        value = self._bound(item)
        if value is not None and _NUMBER_RE.fullmatch(value) and numeric(value) is None:
            raise QueryError(f"invalid query: the number {value[:40]}{'...' if len(value) > 40 else ''} "
                             f"in a range is out of range (a range compares 64-bit integers, "
                             f"-2^63 to 2^63-1, or finite floats) at position "
                             f"{getattr(item, 'pos', None)}")
        return value

    def _bound(self, item) -> str | None:
        if isinstance(item, T.Prohibit):  # a negative number: [-5 TO 5]
            inner = self._bound(item.a)
            return None if inner is None else "-" + inner
        if isinstance(item, T.Phrase):
            return _unescape(item.value[1:-1])
        if isinstance(item, T.Word):
            if item.value == "*":
                return None
            return _unescape(item.value)
        raise self.error(f"invalid range bound {str(item)!r}", item)

    def time_point(self, value: str, item):
        start, end = self.time_period(value, item)
        return TimeRange(start, end)

    def time_period(self, value: str, item) -> tuple[int, int]:
        try:
            return time_period(value, self.now)
        except ValueError as exc:
            if OUT_OF_RANGE in str(exc):  # one line: the value says it all
                raise QueryError(f"invalid time {value!r}: {exc} (position "
                                 f"{getattr(item, 'pos', None)})") from None
            raise self.error(f"invalid time {value!r}: {exc}", item) from None


def _and(items):
    flat: list = []
    for it in items:
        if isinstance(it, All):
            continue
        if isinstance(it, Nothing):
            return Nothing()
        flat.extend(it.items if isinstance(it, And) else [it])
    if not flat:
        return All()
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(items):
    flat: list = []
    for it in items:
        if isinstance(it, Nothing):
            continue
        if isinstance(it, All):
            return All()
        flat.extend(it.items if isinstance(it, Or) else [it])
    if not flat:
        return Nothing()
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _not(item):
    if isinstance(item, All):
        return Nothing()
    if isinstance(item, Nothing):
        return All()
    if isinstance(item, Not):
        return item.item
    return Not(item)


_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def _unescape(value: str) -> str:
    return _ESCAPE_RE.sub(r"\1", value)


def _pattern(value: str) -> Pattern | None:
    """The wildcard pattern of a raw (escaped) word, or None when it has no wildcard."""
    parts: list = []
    lit: list[str] = []
    wild = False
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            lit.append(value[i + 1])
            i += 2
            continue
        if c in "*?":
            wild = True
            if lit:
                parts.append(("lit", "".join(lit)))
                lit = []
            if not (c == "*" and parts and parts[-1] == ("*",)):
                parts.append((c,))
        else:
            lit.append(c)
        i += 1
    if not wild:
        return None
    if lit:
        parts.append(("lit", "".join(lit)))
    return Pattern(tuple(parts))


def compile_query(query, now: datetime | None = None):
    """The intermediate form of a query string or luqum tree. Any query, however wrong, gives
    either that or a QueryError."""
    if isinstance(query, str) or query is None:
        text = query or "*"
        tree = parse(text)
    else:
        tree = query
        _check_depth(tree, "")
        text = str(query)
    try:
        return _Compiler(text, now).node(tree, None)
    except RecursionError:  # the depth bound keeps clear of it; this is the last resort
        raise QueryError(f"invalid query: nested more than {MAX_DEPTH} levels deep") from None


# Mail address fields as the logs write them: sendmail's ``to=<dave@example.org>``, postfix's
# bare address. A query value matches either way (issue 23): ``to:dave@example.org`` also finds
# ``<dave@example.org>``, and ``to:"<dave@example.org>"`` the bare one.
ADDRESS_FIELDS = ("to", "from", "ctladdr", "orig_to")
_ADDRESS = re.compile(r"<?([^<>\s,]*@[^<>\s,]+)>?")


def _term(field: str, value: str):
    if field in ADDRESS_FIELDS:
        m = _ADDRESS.fullmatch(value)
        if m:
            bare = m.group(1)
            return Or((Term(field, bare), Term(field, f"<{bare}>")))
    return Term(field, value)


def _wildcard(field: str, pattern: Pattern):
    """``from:*@example.com`` also matches ``<bob@example.com>``: the bracketed spelling."""
    parts = pattern.parts
    if field not in ADDRESS_FIELDS or not parts:
        return Wildcard(field, pattern)
    head = parts if parts[0][0] != "lit" else (("lit", "<" + parts[0][1].lstrip("<")),) + parts[1:]
    if head[-1][0] == "lit":
        head = head[:-1] + (("lit", head[-1][1].rstrip(">") + ">"),)
    variant = Pattern(tuple(head))
    if variant == pattern:
        return Wildcard(field, pattern)
    return Or((Wildcard(field, pattern), Wildcard(field, variant)))
