"""Lucene / Kibana query syntax, translated for both stores.

``parse(text)`` gives a luqum tree (or a :class:`QueryError` that shows the position);
``to_es(tree)`` gives an Elasticsearch query DSL dict; ``to_sql(tree)`` gives a WHERE clause for the
embedded store plus its parameters. Both go through one intermediate form (:func:`compile_query`),
so the two stores cannot drift apart on what a query means.

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
* Not supported, a clear error on both stores: fuzzy ``foo~``, proximity ``"a b"~2``, regular
  expressions ``/.../``, ranges on ``message``, field-name wildcards. A boost ``^2`` is accepted
  and ignored (results are sorted by time, not by score).
* Known divergence: a wildcard on a numeric or ip field is an error on Elasticsearch and a match
  on the value's text on the embedded store.

Nothing a query says reaches SQL text: field names become bound JSON paths (or one of a fixed set
of column names), values are bound parameters, full-text terms go into a bound FTS5 expression in
which every token is quoted.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from luqum import tree as T
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.thread import parse as _luqum_parse

from common.errors import QueryError

TIME_FIELD = "@timestamp"
TEXT_FIELD = "message"
TEXT_KEYWORD = "message.keyword"

# --------------------------------------------------------------------------------------------
# the message analyzer (Elasticsearch "standard": UAX#29 word boundaries, lower-cased)
# --------------------------------------------------------------------------------------------

# A token is a run of word characters, continued across a MidLetter (':', '.', "'", ...) between
# two letters and across a MidNum (',', ';', '.', "'", ...) between two digits (UAX#29 rules WB6/7
# and WB11/12); '_' joins (WB13); a Han ideograph or a Hiragana character is a token on its own.
_IDEO = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_MARKS = "\u0300-\u036f"
_MIDLETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a"
_MIDNUMLET = ".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
_MIDNUM = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_X = f"(?:[^\\W{_IDEO}][{_MARKS}]*)"
_TOKEN_RE = re.compile(
    f"[{_IDEO}]"
    f"|(?=_*[^\\W_{_IDEO}]){_X}+"
    f"(?:(?:(?<=[^\\W\\d_{_IDEO}])[{_MIDLETTER}{_MIDNUMLET}](?=[^\\W\\d_{_IDEO}])"
    f"|(?<=\\d)[{_MIDNUM}{_MIDNUMLET}](?=\\d)){_X}+)*")
# the same rules for ASCII text, without the Unicode classes: three times faster
_ASCII_TOKEN_RE = re.compile(
    r"(?:[a-z0-9]|_+[a-z0-9])[a-z0-9_]*"
    r"(?:(?:(?<=[a-z])[.:'](?=[a-z])|(?<=[0-9])[.,;'](?=[0-9]))[a-z0-9_]+)*")
# characters that can sit inside a token besides letters, digits and marks (the FTS5 tokenchars)
TOKEN_EXTRA_CHARS = "_" + "".join(sorted(set(_MIDLETTER + _MIDNUMLET + _MIDNUM)))
MAX_TOKEN_LENGTH = 255
# Lucene lower-cases code point by code point (simple case mapping): no final sigma, no 'i̇'
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


# What the embedded store hands to its FTS5 tokenizer (unicode61, the extra characters above as
# token characters). For ASCII text it is the text itself with every '.', ':', "'", ',', ';' that
# does not join a token turned into a space: one C-speed pass instead of a Python token list;
# FTS5 then finds exactly the tokens analyze() gives (plus runs of bare '_', which no query can
# ask for). Other text gets analyze()'s tokens, space-separated.
_BAD_MID_RE = re.compile(r"[.:',;](?!(?<=[A-Za-z][.:'])[A-Za-z])(?!(?<=[0-9][.,;'])[0-9])")
_LONG_RUN_RE = re.compile(r"[A-Za-z0-9_.:',;]{%d}" % (MAX_TOKEN_LENGTH + 1))
ANALYZER_VERSION = "uax29-1"


def fts_text(text: str) -> str:
    if text.isascii() and (len(text) <= MAX_TOKEN_LENGTH or not _LONG_RUN_RE.search(text)):
        return _BAD_MID_RE.sub(" ", text)
    return " ".join(analyze(text))


def analyze(text: str) -> list[str]:
    """The tokens of a message, as Elasticsearch's standard analyzer makes them."""
    if text.isascii():
        tokens = _ASCII_TOKEN_RE.findall(text.lower())
    else:
        tokens = _TOKEN_RE.findall(text.translate(_SIMPLE_LOWER).lower())
    if any(len(t) > MAX_TOKEN_LENGTH for t in tokens):
        tokens = [t[i:i + MAX_TOKEN_LENGTH] for t in tokens
                  for i in range(0, len(t), MAX_TOKEN_LENGTH)]
    return tokens


# --------------------------------------------------------------------------------------------
# the intermediate form
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class Nothing:
    pass


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: object


@dataclass(frozen=True)
class Text:
    """Tokens of ``message`` in sequence (one token: a word; several: a phrase). ``text`` is
    what the user wrote: Elasticsearch analyzes it itself."""
    tokens: tuple
    text: str = ""


@dataclass(frozen=True)
class Pattern:
    """A wildcard pattern: parts are literal strings, '*' (any run) or '?' (one character)."""
    parts: tuple  # of ("lit", str) | ("*",) | ("?",)

    def lower(self) -> "Pattern":
        return Pattern(tuple((p[0], p[1].lower()) if p[0] == "lit" else p for p in self.parts))

    def prefix(self) -> str:
        """The literal text before the first wildcard."""
        out = []
        for p in self.parts:
            if p[0] != "lit":
                break
            out.append(p[1])
        return "".join(out)

    def is_prefix_only(self) -> bool:
        """'abc*': a literal followed by one trailing star."""
        return (len(self.parts) == 2 and self.parts[0][0] == "lit" and self.parts[1][0] == "*")

    def glob(self) -> str:
        """SQLite GLOB syntax (case-sensitive; '[' '*' '?' made literal with brackets)."""
        out = []
        for p in self.parts:
            if p[0] == "lit":
                out.append("".join(f"[{c}]" if c in "[*?" else c for c in p[1]))
            else:
                out.append(p[0])
        return "".join(out)

    def es(self) -> str:
        """Lucene WildcardQuery syntax ('\\' escapes)."""
        out = []
        for p in self.parts:
            if p[0] == "lit":
                out.append("".join("\\" + c if c in "*?\\" else c for c in p[1]))
            else:
                out.append(p[0])
        return "".join(out)


@dataclass(frozen=True)
class TextWildcard:
    """One token of ``message`` matches the (lower-cased) pattern."""
    pattern: Pattern


@dataclass(frozen=True)
class Term:
    field: str
    value: str


@dataclass(frozen=True)
class Wildcard:
    field: str
    pattern: Pattern


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class Range:
    """A range on a non-time field; a bound is None when open."""
    field: str
    low: str | None
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class TimeRange:
    """``start <= @timestamp < end`` in epoch milliseconds; None when open."""
    start: int | None
    end: int | None


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------

_POSITION_RE = re.compile(r"position (\d+)")


def parse(query: str):
    """A luqum tree for a Lucene query; QueryError (with the position) when it is not valid."""
    text = query if query is not None else ""
    if not text.strip():
        text = "*"
    try:
        return _luqum_parse(text)
    except (ParseSyntaxError, IllegalCharacterError, ParseError) as exc:
        msg = str(exc)
        m = _POSITION_RE.search(msg)
        pos = int(m.group(1)) if m else len(text)
        if "unexpected end" in msg:
            what = "the query ends too early (an unclosed parenthesis, quote or bracket?)"
        elif isinstance(exc, IllegalCharacterError):
            what = f"illegal character {text[pos:pos + 1]!r}"
        else:
            token = re.search(r"unexpected\s+'(.*)' at", msg)
            what = f"unexpected {token.group(1)!r}" if token else "syntax error"
        raise QueryError(f"invalid query: {what} at position {pos}", text, pos) from None
    except RecursionError:
        raise QueryError("invalid query: nested too deeply", text, 0) from None


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
            raise self.error("regular expressions (/.../) are not supported", item)
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
            return Term(field, _unescape(item.value))
        if all(p[0] == "*" for p in pattern.parts):
            return Exists(field)
        return Wildcard(field, pattern)

    def phrase(self, item, field):
        value = _unescape(item.value[1:-1])
        if field is None or field == TEXT_FIELD:
            tokens = analyze(value)
            return Text(tuple(tokens), value) if tokens else Nothing()
        if field == TIME_FIELD:
            return self.time_point(value, item)
        return Term(field, value)

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
        if isinstance(item, T.Prohibit):  # a negative number: [-5 TO 5]
            inner = self.bound(item.a)
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
            raise self.error(f"invalid time {value!r}: {exc}", item) from None


def _and(items):
    flat = []
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
    flat = []
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
    """The intermediate form of a query string or luqum tree."""
    if isinstance(query, str) or query is None:
        text = query or "*"
        tree = parse(text)
    else:
        tree = query
        text = str(query)
    return _Compiler(text, now).node(tree, None)


# --------------------------------------------------------------------------------------------
# time: ISO 8601, date math, intervals, durations
# --------------------------------------------------------------------------------------------

_ISO_RE = re.compile(r"""
    (?P<y>\d{4})
    (?:-(?P<mo>\d{1,2})
      (?:-(?P<d>\d{1,2})
        (?:[T\s](?P<h>\d{1,2})
          (?::(?P<mi>\d{2})
            (?::(?P<s>\d{2})
              (?:[.,](?P<f>\d{1,9}))?
            )?
          )?
        )?
      )?
    )?
    \s*(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?
""", re.VERBOSE)
_MATH_RE = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_UNIT_ORDER = ["y", "M", "d", "h", "m", "s", "ms"]


def _to_ms(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def _add(dt: datetime, n: int, unit: str) -> datetime:
    if unit in ("y", "M"):
        months = dt.month - 1 + n * (12 if unit == "y" else 1)
        year, month = dt.year + months // 12, months % 12 + 1
        day = min(dt.day, calendar.monthrange(year, month)[1])
        return dt.replace(year=year, month=month, day=day)
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return dt + timedelta(seconds=n * seconds)


def _floor(dt: datetime, unit: str) -> datetime:
    if unit == "y":
        return dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("h", "H"):
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return dt.replace(second=0, microsecond=0)
    return dt.replace(microsecond=0)


def _parse_iso(text: str) -> tuple[datetime, str]:
    """An ISO 8601 date or time and its precision unit ('y', 'M', 'd', 'h', 'm', 's', 'ms')."""
    m = _ISO_RE.fullmatch(text.strip())
    if not m:
        raise ValueError("expected an ISO 8601 date like 2026-11-28T10:00:00Z or now-1h")
    g = m.groupdict()
    unit = "y"
    for key, u in (("mo", "M"), ("d", "d"), ("h", "h"), ("mi", "m"), ("s", "s"), ("f", "ms")):
        if g[key] is not None:
            unit = u
    frac = (g["f"] or "0")[:6].ljust(6, "0")
    tz = timezone.utc
    if g["tz"] and g["tz"] not in ("Z", "z"):
        sign = -1 if g["tz"][0] == "-" else 1
        digits = g["tz"][1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    dt = datetime(int(g["y"]), int(g["mo"] or 1), int(g["d"] or 1), int(g["h"] or 0),
                  int(g["mi"] or 0), int(g["s"] or 0), int(frac), tzinfo=tz)
    return dt.astimezone(timezone.utc), unit


def time_period(text: str, now: datetime | None = None) -> tuple[int, int]:
    """``[start, end)`` in epoch ms that a time value covers: ``2026-11-28`` is that whole day,
    ``now-1h`` one millisecond, ``now/d`` today. Raises ValueError when it is not a time."""
    text = text.strip()
    now = now or datetime.now(timezone.utc)
    if text.startswith("now"):
        base, unit, rest = now, "ms", text[3:]
    else:
        iso, sep, rest = text.partition("||")
        if not sep:
            iso, rest = text, ""
        base, unit = _parse_iso(iso)
    pos = 0
    while pos < len(rest):
        m = _MATH_RE.match(rest, pos)
        if not m:
            raise ValueError(f"bad date math {rest[pos:]!r} (use e.g. now-1h, now-7d, now/d)")
        if m.group(4):
            unit = m.group(4)
            base = _floor(base, unit)
        else:
            n = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
            base = _add(base, n, m.group(3))
        pos = m.end()
    start = base
    if unit == "ms":
        return _to_ms(start), _to_ms(start) + 1
    end = _add(start, 1, unit) if unit in ("y", "M", "w", "d", "h", "H", "m", "s") else start
    return _to_ms(start), _to_ms(end)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A point in time (the start of a partial date); ValueError when not a time."""
    start, _ = time_period(text, now)
    return datetime.fromtimestamp(start / 1000, timezone.utc)


_INTERVAL_RE = re.compile(r"(\d+)\s*(ms|s|m|h|d|w)")
_INTERVAL_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                "w": 7 * 86_400_000}


def parse_interval(text: str) -> int:
    """A fixed interval ('30s', '5m', '1h', '1d', '1w') in milliseconds."""
    m = _INTERVAL_RE.fullmatch(str(text).strip())
    if not m or int(m.group(1)) <= 0:
        raise QueryError(f"invalid interval {text!r}: use a number and a unit, e.g. 30s, 5m, "
                         "1h, 1d, 1w")
    return int(m.group(1)) * _INTERVAL_MS[m.group(2)]


MAX_BUCKETS = 20000


def fill_buckets(rows, step: int) -> list[tuple[datetime, int]]:
    """(bucket ms, count) rows, sorted, as datetimes with the empty buckets between filled in."""
    counts = {int(b): int(c) for b, c in rows}
    if not counts:
        return []
    first, last = min(counts), max(counts)
    if (last - first) // step > MAX_BUCKETS:
        raise QueryError(f"the histogram would have {(last - first) // step + 1} buckets: "
                         "use a larger interval or a shorter time range")
    return [(datetime.fromtimestamp(b / 1000, timezone.utc), counts.get(b, 0))
            for b in range(first, last + step, step)]


def es_interval(ms: int) -> str:
    """An Elasticsearch fixed_interval for a number of milliseconds."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_DURATION_RE = re.compile(r"(\d+)\s*(s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '2w' as a timedelta (for retention)."""
    m = _DURATION_RE.fullmatch(str(text).strip())
    if not m:
        raise QueryError(f"invalid age {text!r}: use a number and a unit, e.g. 30d, 12h, 2w")
    return timedelta(milliseconds=int(m.group(1)) * _INTERVAL_MS[m.group(2)])


def numeric(value: str) -> int | float | None:
    """The number a query value spells, or None."""
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", value):
        return float(value)
    return None


# --------------------------------------------------------------------------------------------
# Elasticsearch
# --------------------------------------------------------------------------------------------

def to_es(tree, now: datetime | None = None) -> dict:
    """The Elasticsearch query DSL for a query (a string or a luqum tree)."""
    return es_query(compile_query(tree, now))


def es_query(q) -> dict:
    if isinstance(q, All):
        return {"match_all": {}}
    if isinstance(q, Nothing):
        return {"match_none": {}}
    if isinstance(q, And):
        return {"bool": {"filter": [es_query(i) for i in q.items]}}
    if isinstance(q, Or):
        return {"bool": {"should": [es_query(i) for i in q.items], "minimum_should_match": 1}}
    if isinstance(q, Not):
        return {"bool": {"must_not": [es_query(q.item)]}}
    if isinstance(q, Text):
        return {"match_phrase": {TEXT_FIELD: {"query": q.text or " ".join(q.tokens)}}}
    if isinstance(q, TextWildcard):
        return {"wildcard": {TEXT_FIELD: {"value": q.pattern.es()}}}
    if isinstance(q, Term):
        if q.field == "_id":
            return {"ids": {"values": [q.value]}}
        # match on a keyword field is an exact term; lenient: no error for "abc" on a number
        return {"match": {q.field: {"query": q.value, "lenient": True}}}
    if isinstance(q, Wildcard):
        return {"wildcard": {q.field: {"value": q.pattern.es()}}}
    if isinstance(q, Exists):
        return {"exists": {"field": q.field}}
    if isinstance(q, TimeRange):
        spec: dict = {"format": "epoch_millis"}
        if q.start is not None:
            spec["gte"] = q.start
        if q.end is not None:
            spec["lt"] = q.end
        return {"range": {TIME_FIELD: spec}}
    if isinstance(q, Range):
        spec = {}
        if q.low is not None:
            spec["gte" if q.include_low else "gt"] = _es_bound(q.low)
        if q.high is not None:
            spec["lte" if q.include_high else "lt"] = _es_bound(q.high)
        return {"range": {q.field: spec}}
    raise TypeError(f"unknown query node {q!r}")


def _es_bound(value: str):
    n = numeric(value)
    return value if n is None else n


# --------------------------------------------------------------------------------------------
# SQLite (the embedded store)
# --------------------------------------------------------------------------------------------

# Fields the embedded store keeps in real, indexed columns (fixed identifiers, never user text).
# Everything else is read from the JSON document with a bound path.
SQL_COLUMNS = {"host": "host", "type": "type", "program": "program", "qid": "qid",
               "size": "size"}
FTS_TABLE = "events_fts"
FTS_VOCAB = "events_fts_vocab"


def json_path(field: str) -> str:
    """The SQLite JSON path of a top-level key (names may contain '.', '@', spaces...)."""
    if '"' in field:
        raise QueryError(f"invalid field name {field!r}")
    return '$."' + field + '"'


def fts_phrase(tokens) -> str:
    """A safe FTS5 phrase expression: every token double-quoted."""
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def to_sql(tree, now: datetime | None = None) -> tuple[str, list]:
    """``(where_sql, params)`` for the embedded store's ``events`` table."""
    params: list = []
    sql = sql_query(compile_query(tree, now), params)
    return sql, params


def sql_query(q, params: list) -> str:
    if isinstance(q, All):
        return "1"
    if isinstance(q, Nothing):
        return "0"
    if isinstance(q, And):
        return "(" + " AND ".join(sql_query(i, params) for i in q.items) + ")"
    if isinstance(q, Or):
        return "(" + " OR ".join(sql_query(i, params) for i in q.items) + ")"
    if isinstance(q, Not):
        # two-valued logic: a missing field makes a comparison NULL, and NOT NULL is NULL
        return f"(NOT COALESCE({sql_query(q.item, params)}, 0))"
    if isinstance(q, Text):
        params.append(fts_phrase(q.tokens))
        return f"events.rowid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?)"
    if isinstance(q, TextWildcard):
        pat = q.pattern
        prefix = pat.prefix()
        if pat.is_prefix_only() and analyze(prefix) == [prefix]:
            params.append(fts_phrase([prefix]) + "*")
            return f"events.rowid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?)"
        # expand the pattern over the index's vocabulary, inside SQLite
        params.append(pat.glob())
        return (f"events.rowid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH "
                f"(SELECT COALESCE(group_concat('\"' || term || '\"', ' OR '), '\"\"') "
                f"FROM {FTS_VOCAB} WHERE term GLOB ?))")
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
        path = json_path(_doc_field(q.field))
        params.extend([path, path, path])
        return ("(COALESCE(json_type(events.doc, ?), 'null') <> 'null' AND NOT "
                "(json_type(events.doc, ?) = 'array' AND json_array_length(events.doc, ?) = 0))")
    if isinstance(q, Term):
        if q.field == "_id":
            params.append(q.value)
            return "events.id = ?"
        n = numeric(q.value)
        if n is None:
            return _value_cond(q.field, "{v} = ?", [q.value], params)
        return _value_cond(q.field, "{v} IN (?, ?)", [q.value, n], params)
    if isinstance(q, Wildcard):
        prefix = q.pattern.prefix()
        if prefix and q.field in SQL_COLUMNS:
            # a range on the literal prefix lets SQLite use the column's index
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            return _value_cond(q.field, "({v} >= ? AND {v} < ? AND {v} GLOB ?)",
                               [prefix, upper, q.pattern.glob()], params)
        return _value_cond(q.field, "{v} GLOB ?", [q.pattern.glob()], params)
    if isinstance(q, Range):
        return _range_cond(q, params)
    raise TypeError(f"unknown query node {q!r}")


def _doc_field(field: str) -> str:
    return TEXT_FIELD if field == TEXT_KEYWORD else field


def _value_cond(field: str, template: str, values: list, params: list) -> str:
    """A condition on a field's value; for a JSON field that holds a list, any element.

    ``json_each`` on a scalar yields that one value, on a list its elements, on a missing key
    nothing: one bound path serves every case."""
    if field in SQL_COLUMNS:
        params.extend(values)
        return template.format(v=f"events.{SQL_COLUMNS[field]}")
    params.append(json_path(_doc_field(field)))
    params.extend(values)
    return (f"EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS je "
            f"WHERE {template.format(v='je.value')})")


def _range_cond(q: Range, params: list) -> str:
    # numbers compare with numbers, strings with strings (SQLite orders numbers < text < blob)
    branches: list[tuple[str, list]] = []
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
    return _value_cond(q.field, template, values, params)
