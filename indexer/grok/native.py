"""Grok searches by PCRE2's JIT (the optional C module ``_pcre``), with Python's answers.

A grok pattern that the stdlib's ``re`` compiles (:attr:`Compiled.fast`) is translated here into
PCRE2's syntax and compiled by ``_pcre.Pattern``, whose ``groups(line)`` gives what
``re.search(line).groups()`` gives (or None), several times faster: the failing searches of a
type's other patterns and the many-group sendmail patterns were a fifth of a worker's CPU.

The two engines are both Perl-style backtrackers; they agree where this module lets PCRE2 run:

* **lines**: ASCII only, no newline (checked in C per line). Everything else goes to the
  pattern's fallback, ``re`` itself under the grok watchdog, as does a line PCRE2 gives up on
  (its match limit or JIT stack): so a hostile line still gets the watchdog's time budget.
* **patterns**: what both read the same way, translated: Python's ``\\s`` also means
  ``\\x1c-\\x1f`` (``str.isspace``), ``\\v`` is one character, ``\\Z`` is PCRE2's ``\\z``,
  ``\\uXXXX``/``\\UXXXXXXXX`` are ``\\x{...}``, ``{,n}`` is ``{0,n}``, a ``[`` in a class is a
  plain character. A pattern this module cannot vouch for (``\\S`` in a class, ``\\N{...}``,
  the ``a``/``L``/``u`` flags, verbose mode, case folding on non-ASCII text) keeps ``re``.

When every pattern of a type runs on PCRE2, :func:`pattern_set` moves the type's dispatch into C
too (``_pcre.PatternSet``: the required-literal tests and first match wins, as matcher.py's
generated dispatch, which still answers the lines PCRE2 does not take).

``LOGPIPE_GROK_NATIVE=0`` turns it off (benchmarks compare both; equivalence tests in
``tests/test_grok_native.py`` run the corpora through both).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

try:
    from logpipe.indexer.grok import _pcre
except ImportError:  # built without libpcre2's headers, or on a platform without a compiler
    _pcre = None  # type: ignore[assignment]


class NotTranslatable(ValueError):
    """A pattern whose meaning in PCRE2 this module cannot vouch for: it stays with ``re``."""


def available() -> bool:
    return _pcre is not None and os.environ.get("LOGPIPE_GROK_NATIVE", "1") != "0"


def engine() -> str:
    """What runs grok's searches in this process, for the indexer's start line:
    ``pcre2-<version>-jit`` (or ``-nojit``: the library has no JIT here, PCRE2 interprets), else
    ``re`` with the reason."""
    if _pcre is None:
        return "re (the PCRE2 module is not built: libpcre2-dev at install)"
    if not available():
        return "re (LOGPIPE_GROK_NATIVE=0)"
    version = _pcre.VERSION.split()[0] if _pcre.VERSION else "?"
    return f"pcre2-{version}-{'jit' if _pcre.JIT else 'nojit'}"


_HEX = set("0123456789abcdefABCDEF")
_INLINE_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")
_UP_TO = re.compile(r"\{,(\d+)\}")   # Python's {,n}
_SPACE_EXTRA = r"\x1c-\x1f"   # str.isspace()'s ASCII characters that PCRE2's \s lacks


def _take_hex(src: str, at: int, count: int) -> tuple[str, int]:
    digits = src[at:at + count]
    if len(digits) != count or not set(digits) <= _HEX:
        raise NotTranslatable(f"bad escape at {at}")
    return "\\x{" + digits + "}", at + count


def translate(pattern: str, flags: int = 0) -> str:
    """``pattern`` (Python ``re`` syntax, compiled with ``flags``) in PCRE2's syntax, meaning the
    same on ASCII lines without a newline; :class:`NotTranslatable` otherwise."""
    if flags & (re.VERBOSE | re.ASCII | re.LOCALE):
        raise NotTranslatable("verbose, ASCII or locale mode")
    caseless = bool(flags & re.IGNORECASE)
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = -1   # index in `out` where the current class's body begins
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise NotTranslatable("trailing backslash")
            nxt = pattern[i + 1]
            i += 2
            if nxt == "s":
                out.append(r"\s" + _SPACE_EXTRA if in_class else r"[\s" + _SPACE_EXTRA + "]")
            elif nxt == "S":
                if in_class:
                    raise NotTranslatable(r"\S inside a character class")
                out.append(r"[^\s" + _SPACE_EXTRA + "]")
            elif nxt == "v":
                out.append(r"\x0b")
            elif nxt == "Z" and not in_class:
                out.append(r"\z")
            elif nxt == "u":
                text, i = _take_hex(pattern, i, 4)
                out.append(text)
            elif nxt == "U":
                text, i = _take_hex(pattern, i, 8)
                out.append(text)
            elif nxt == "x":
                text, i = _take_hex(pattern, i, 2)
                out.append(text)
            elif nxt == "N":
                raise NotTranslatable(r"\N{...}")
            elif nxt.isascii() and nxt.isalnum() and nxt not in "abBdDwWfnrtAZ0123456789":
                raise NotTranslatable(f"escape \\{nxt}")
            else:
                out.append("\\" + nxt)
            continue
        if in_class:
            if ch == "]" and len(out) > class_start:
                in_class = False
                out.append("]")
            elif ch == "[":
                out.append(r"\[")
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "[":
            out.append("[")
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            class_start = len(out)
            if i < n and pattern[i] == "]":   # a leading ] is a plain character in both
                out.append(r"\]")
                i += 1
            in_class = True
            continue
        if ch == "(" and pattern.startswith("(?", i):
            m = _INLINE_FLAGS.match(pattern, i)
            if m and (m.group(1) or m.group(2)):
                used = m.group(1) + (m.group(2) or "")
                if set(used) & set("aLux"):
                    raise NotTranslatable("inline flags a, L, u or x")
                if "i" in (m.group(1) or ""):
                    caseless = True
        if ch == "{":
            m = _UP_TO.match(pattern, i)
            if m:
                out.append("{0," + m.group(1) + "}")
                i = m.end()
                continue
        out.append(ch)
        i += 1
    if in_class:
        raise NotTranslatable("unterminated character class")
    if caseless and not pattern.isascii():
        raise NotTranslatable("case folding with non-ASCII characters")
    return "".join(out)


def _pcre_flags(flags: int) -> int:
    assert _pcre is not None
    return ((_pcre.MULTILINE if flags & re.MULTILINE else 0)
            | (_pcre.IGNORECASE if flags & re.IGNORECASE else 0)
            | (_pcre.DOTALL if flags & re.DOTALL else 0))


# a field's groups and their conversions: ((group number, conversion), ...), where a conversion
# is 0 (none) or 1 + its index in the converters given with them
FieldSpec = tuple[tuple[str, tuple[tuple[int, int], ...]], ...]


def native_pattern(fast: re.Pattern) -> Any | None:
    """``fast`` compiled by PCRE2 (see the module), answering for lines it leaves to ``re``
    through ``re`` itself; None where the C module is missing or turned off, or the pattern does
    not translate."""
    if not available():
        return None
    try:
        compiled = _pcre.Pattern(translate(fast.pattern, fast.flags),  # type: ignore[union-attr]
                                 _pcre_flags(fast.flags), re_groups(fast.search))
    except (NotTranslatable, ValueError):
        return None
    if compiled.group_count != fast.groups:   # read differently: keep re
        return None
    return compiled


def captures_search(fast: re.Pattern, spec: FieldSpec,
                    converters: tuple[Callable, ...]) -> Callable[[str], dict | None] | None:
    """``line -> captures`` by PCRE2: for each field of ``spec``, in its order, the value of its
    one group that took part (converted when the spec says so), or the list of them when several
    did; fields whose groups took no part are left out. None when PCRE2 cannot run it (the
    caller then reads ``re``'s groups with its own extractor, which builds the same dict)."""
    compiled = native_pattern(fast)
    if compiled is None:
        return None
    compiled.set_fields(spec, converters)
    return compiled.captures


def re_groups(search: Callable) -> Callable[[str], tuple | None]:
    """``line -> search(line).groups() or None``; its frames are ones the grok watchdog may
    interrupt (:data:`RE_GROUPS_CODE`)."""
    def groups_of(line: str) -> tuple | None:
        m = search(line)
        return None if m is None else m.groups()
    return groups_of


RE_GROUPS_CODE = re_groups(len).__code__


def pattern_set(entries: list[tuple[Callable, Any, tuple]], fallback: Callable[[str], tuple],
                failure: str) -> Callable[[str], tuple] | None:
    """``line -> (captures, tags)`` for a type whose every pattern runs on PCRE2
    (:func:`captures_search` gave each its search): the patterns tried in order in C, each
    skipped when a clause of its required literals has none in the line, as the generated
    dispatch does; lines PCRE2 does not take go to ``fallback``, that dispatch. None when some
    pattern does not run on PCRE2."""
    patterns = [getattr(search, "__self__", None) for search, _, _ in entries]
    if _pcre is None or not all(isinstance(p, _pcre.Pattern) for p in patterns):
        return None
    return _pcre.PatternSet(tuple((p, tuple(tuple(c) for c in req))
                                  for p, (_, _, req) in zip(patterns, entries)),
                            fallback, failure).match
