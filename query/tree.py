"""The intermediate form of a query: what it means, independent of any store.

:func:`query.lucene.compile_query` builds it from the Lucene syntax; each store's reader
translates it (``store/elasticsearch/reader.py`` to the query DSL, ``store/sqlite/reader.py`` to
a WHERE clause), so the stores cannot drift apart on what a query means.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

TIME_FIELD = "@timestamp"
TEXT_FIELD = "message"
TEXT_KEYWORD = "message.keyword"


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
class Regexp:
    """A Lucene regular expression over the whole value of a field (``program:/post.*/``):
    ``source`` as written (Elasticsearch's ``regexp`` query), ``python`` the same expression
    for Python's ``regex`` module, to ``fullmatch`` with DOTALL (query/regexp.py)."""
    field: str
    source: str
    python: str


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


# The range of a 64-bit signed integer (an Elasticsearch long, a SQLite INTEGER): the one
# definition every store checks its numbers against.
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def numeric(value: str) -> int | float | None:
    """The number a query value spells, or None. Only numbers a store can hold count: a 64-bit
    integer or a finite float (``99999999999999999999`` or ``1e999`` is text; the compiler
    refuses such a range bound)."""
    if re.fullmatch(r"[+-]?\d+", value):
        if len(value) > 20:
            return None
        n = int(value)
        return n if INT64_MIN <= n <= INT64_MAX else None
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", value):
        f = float(value)
        return f if math.isfinite(f) else None
    return None
