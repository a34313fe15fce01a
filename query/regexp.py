"""Lucene regular expressions (``field:/.../``): the subset both stores mean the same way.

Elasticsearch runs a ``regexp`` query (Lucene's automaton regexps: no backtracking); the
embedded store and the in-memory evaluation (routes) run the same expression translated here
to a Python ``regex`` pattern, under a time bound. The subset:

* the whole value must match (Lucene regexps are anchored: ``/post/`` does not match
  ``postfix``; write ``/post.*/``); ``^`` and ``$`` are not anchors in Lucene, so they are
  refused unescaped here (write ``\\^``, ``\\$`` for the characters);
* ``.`` any character (newlines included), ``?`` ``*`` ``+`` ``{n}`` ``{n,}`` ``{n,m}``,
  ``|``, ``( )`` grouping, ``[abc]`` ``[a-z]`` ``[^a-z]`` classes, ``"literal text"``, ``\\c``
  for a literal character (``\\/`` ``\\.`` ``\\*``), ``\\d`` ``\\s`` ``\\w`` and their negations
  (ASCII: ``[0-9]``, ``[ \\t\\n\\r]``, ``[A-Za-z0-9_]``);
* case-sensitive, on string values (a number field is not matched);
* Lucene's optional operators ``@`` ``#`` ``&`` ``~`` ``<n-m>`` are refused with an error (escape
  them, ``\\@``, to mean the character), so no store reads them differently.
"""

from __future__ import annotations

import functools
import re

from logpipe.query.errors import QueryError

_SHORTHAND = {"d": "[0-9]", "D": "[^0-9]", "s": "[ \\t\\n\\r]", "S": "[^ \\t\\n\\r]",
              "w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]"}
_REFUSED = {"@": "@ (any string)", "#": "# (the empty language)", "&": "& (intersection)",
            "~": "~ (complement)", "<": "<n-m> (numeric interval)", ">": "<n-m> (numeric interval)",
            "^": "^ (not an anchor in Lucene: the whole value always has to match)",
            "$": "$ (not an anchor in Lucene: the whole value always has to match)"}
_QUANT = re.compile(r"\{(\d+)(,(\d*))?\}")


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def translate(source: str, query: str | None = None, offset: int = 0) -> str:
    """The Python ``regex`` pattern (to ``fullmatch`` with DOTALL) for a Lucene regexp;
    :class:`QueryError` with the position for what the subset does not hold."""

    def error(message: str, at: int) -> QueryError:
        pos = offset + at
        return QueryError(f"invalid regular expression /{source}/: {message} (position {pos})",
                          query, pos)

    out: list[str] = []
    depth = 0
    i, n = 0, len(source)
    can_repeat = False
    while i < n:
        c = source[i]
        if c == "\\":
            if i + 1 >= n:
                raise error("a trailing \\ escapes nothing", i)
            nxt = source[i + 1]
            out.append(_SHORTHAND.get(nxt) or re.escape(nxt))
            i += 2
            can_repeat = True
        elif c == '"':
            end = source.find('"', i + 1)
            if end < 0:
                raise error('a "quoted literal" is not closed', i)
            out.append("(?:" + re.escape(source[i + 1:end]) + ")")
            i = end + 1
            can_repeat = True
        elif c == "[":
            j = i + 1
            parts = ["["]
            if j < n and source[j] == "^":
                parts.append("^")
                j += 1
            body = len(parts)
            while j < n and source[j] != "]":
                ch = source[j]
                if ch == "\\":
                    if j + 1 >= n:
                        raise error("a trailing \\ escapes nothing", j)
                    esc = source[j + 1]
                    short = _SHORTHAND.get(esc)
                    if short is None:
                        parts.append(_class_char(esc))
                    elif short.startswith("[^"):
                        raise error(f"\\{esc} inside [...] is not supported", j)
                    else:
                        parts.append(short[1:-1])
                    j += 2
                elif ch == "-" and len(parts) > body:
                    if j + 1 < n and source[j + 1] == "]":
                        # Lucene reads "-]" as a range up to "]" and the class as not closed
                        raise error("a - at the end of a [class] starts a range in Lucene; "
                                    "write \\- for the character", j)
                    parts.append("-")
                    j += 1
                elif ch == "[":
                    raise error("a [ inside a class must be escaped (\\[)", j)
                else:
                    parts.append(_class_char(ch))
                    j += 1
            if j >= n:
                raise error("a [character class] is not closed", i)
            if len(parts) == body:
                raise error("an empty [] character class", i)
            parts.append("]")
            out.append("".join(parts))
            i = j + 1
            can_repeat = True
        elif c == "(":
            depth += 1
            out.append("(?:")
            i += 1
            can_repeat = False
        elif c == ")":
            if depth == 0:
                raise error("a ) without its (", i)
            depth -= 1
            out.append(")")
            i += 1
            can_repeat = True
        elif c == "|":
            out.append("|")
            i += 1
            can_repeat = False
        elif c in "?*+":
            if not can_repeat:
                raise error(f"{c} repeats nothing (or repeats a repetition: group it, (a*)+)", i)
            out.append(c)
            i += 1
            can_repeat = False
        elif c == "{":
            m = _QUANT.match(source, i)
            if m is None:
                raise error("a repetition is {n}, {n,} or {n,m}", i)
            if not can_repeat:
                raise error(f"{m.group()} repeats nothing (or repeats a repetition: group it)", i)
            low, high = m.group(1), m.group(3)
            if high and int(high) < int(low):
                raise error(f"{m.group()}: the upper bound is below the lower", i)
            if int(low) > 1000 or (high and int(high) > 1000):
                raise error(f"{m.group()}: at most 1000 repetitions", i)
            out.append(m.group())
            i = m.end()
            can_repeat = False
        elif c in _REFUSED:
            raise error(f"Lucene's operator {_REFUSED[c]} is not supported; "
                        f"write \\{c} for the character", i)
        elif c == "}" or c == "]":
            raise error(f"a {c} must be escaped (\\{c})", i)
        elif c == ".":
            out.append(".")
            i += 1
            can_repeat = True
        else:
            out.append(re.escape(c))
            i += 1
            can_repeat = True
    if depth:
        raise error("a ( is not closed", n)
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compiled(pattern: str):
    """The compiled Python pattern (the ``regex`` module: it takes a timeout)."""
    import regex
    return regex.compile(pattern, regex.DOTALL | regex.VERSION0)


# how long one value may take (a regexp that backtracks catastrophically stops here)
VALUE_TIMEOUT = 0.5


class RegexpTimeout(Exception):
    """A regular expression took longer than its bound on one value."""


def fullmatch(pattern: str, value: str, timeout: float = VALUE_TIMEOUT) -> bool:
    try:
        return compiled(pattern).fullmatch(value, timeout=timeout) is not None
    except TimeoutError:
        raise RegexpTimeout(f"the regular expression took longer than {timeout:g} s on one "
                            f"value ({len(value)} characters); simplify it (nested repetitions "
                            f"such as (a+)+ backtrack without end)") from None


__all__ = ["translate", "compiled", "fullmatch", "RegexpTimeout", "VALUE_TIMEOUT"]
