"""Grok expression -> Python ``regex`` pattern.

A grok expression is a regular expression in Oniguruma syntax (what Logstash uses) with
``%{NAME}``, ``%{NAME:field}`` and ``%{NAME:field:int|float}`` references to named patterns.
Compilation expands references recursively and translates the Oniguruma constructs that the
Python ``regex`` module spells differently:

* every named capture -- ``(?<field>...)``, ``(?'field'...)`` and ``%{NAME:field}`` -- becomes an
  internal group ``gN``; a table maps groups back to field names and conversions, so field names
  may be anything Logstash allows (``@ts``, ``[a][b]``, ``foo-bar``) and may repeat (the branch
  that matched gives the value);
* plain ``(...)`` become non-capturing: with named groups present Oniguruma does not capture them
  either, and grok reports only named captures (kept when the pattern has numbered backrefs);
* nested sets and POSIX brackets (``[[[:alnum:]]_%!-]``) are flattened; ``\\h`` is a hex digit;
  Ruby's ``(?m)`` (dot matches newline) becomes ``(?s)``; ``\\z`` is the absolute end;
* a global flag group in the middle, ``(?i)``, is scoped to the end of its enclosing group.

Every output piece remembers which source (the user's expression, or a definition in a pattern
file) and which position it came from, so an error names the pattern, the position, the file and
the line.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

import regex

from logpipe.common.errors import GrokError
from logpipe.indexer.grok.library import Library

_REF = re.compile(r"%\{([A-Za-z0-9_.\-]+)(?::([^:}]+))?(?::([A-Za-z]+))?\}")
_PLAIN = re.compile(r"[^%\\\[()]+")
_CONVERSIONS = {"int", "float"}
_POSIX = {"alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
          "punct", "space", "upper", "xdigit", "word"}
_BACKREF = re.compile(r"\\[1-9]")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a piece of pattern text came from."""

    text: str
    path: str | None = None
    line: int | None = None
    name: str | None = None  # the definition's name, None for the user's expression


@dataclass(slots=True)
class Capture:
    group: str        # internal group name in the compiled regex
    field: str        # the field name the user wrote
    conv: str | None  # 'int', 'float' or None


@dataclass
class Compiled:
    """One grok expression, ready to match."""

    expr: str
    pattern: str                      # translated regex text
    compiled_regex: Any               # regex.Pattern, or None until first needed (see regex)
    captures: list[Capture] = field(default_factory=list)
    fast: Any = None                  # the same pattern compiled by the stdlib's re, when it
                                      # means exactly the same there (faster matching)
    flags: int = regex.MULTILINE

    @property
    def regex(self):
        """The pattern compiled by the regex module (supports timeout=). When the stdlib's re
        compiled it, this waits until something needs it: compiling with regex costs most of
        a big type's start-up, and the main-thread matcher never uses it."""
        if self.compiled_regex is None:
            self.compiled_regex = regex.compile(self.pattern, self.flags)
        return self.compiled_regex

    @property
    def groups(self) -> int:
        return (self.fast or self.regex).groups

    @property
    def groupindex(self):
        return (self.fast or self.regex).groupindex

    @property
    def fields(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.captures:
            seen.setdefault(c.field, None)
        return list(seen)


class _Translator:
    def __init__(self, library: Library, keep_numbered: bool = False):
        self.lib = library
        self.keep_numbered = keep_numbered
        self.out: list[str] = []
        self.offsets: list[int] = []       # output offset where each piece starts
        self.origins: list[tuple[Source, int]] = []
        self.length = 0
        self.captures: list[Capture] = []
        self.group_of_field: dict[str, str] = {}

    # -- output with a source map ------------------------------------------------------------
    def emit(self, text: str, src: Source, pos: int) -> None:
        if not text:
            return
        self.out.append(text)
        self.offsets.append(self.length)
        self.origins.append((src, pos))
        self.length += len(text)

    def origin_of(self, offset: int) -> tuple[Source, int]:
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0:
            return self.origins[0] if self.origins else (Source(""), 0)
        return self.origins[i]

    def new_group(self, fieldname: str, conv: str | None) -> str:
        name = f"g{len(self.captures)}"
        self.captures.append(Capture(name, fieldname, conv))
        self.group_of_field[fieldname] = name
        return name

    # -- translation -------------------------------------------------------------------------
    def translate(self, src: Source, stack: tuple[str, ...]) -> None:
        text = src.text
        n = len(text)
        i = 0
        groups: list[int] = []  # per open group: extra ')' to emit when it closes
        top_extra = 0

        def err(msg: str, pos: int) -> GrokError:
            return GrokError(msg, src.text, pos, src.path, src.line) if src.path else \
                GrokError(msg, src.text, pos)

        while i < n:
            m = _PLAIN.match(text, i)
            if m:
                self.emit(m.group(), src, i)
                i = m.end()
                continue
            c = text[i]
            if c == "%":
                if text.startswith("%{", i):
                    i = self._reference(src, i, stack, err)
                else:
                    self.emit("%", src, i)
                    i += 1
            elif c == "\\":
                if i + 1 >= n:
                    raise err("trailing backslash", i)
                d = text[i + 1]
                if d == "h":
                    self.emit("[0-9a-fA-F]", src, i)
                elif d == "H":
                    self.emit("[^0-9a-fA-F]", src, i)
                elif d == "z":
                    self.emit("\\Z", src, i)
                elif d == "Z":
                    self.emit("(?=\\n?\\Z)", src, i)
                elif d == "k" and i + 2 < n and text[i + 2] in "<'":
                    close = ">" if text[i + 2] == "<" else "'"
                    end = text.find(close, i + 3)
                    if end < 0:
                        raise err("unterminated \\k<name> back-reference", i)
                    ref = text[i + 3:end]
                    group = self.group_of_field.get(ref)
                    if group is None:
                        raise err(f"back-reference to unknown group {ref!r}", i)
                    self.emit(f"(?P={group})", src, i)
                    i = end + 1
                    continue
                else:
                    self.emit(text[i:i + 2], src, i)
                i += 2
            elif c == "[":
                out, i2 = self._set(text, i, err)
                self.emit(out, src, i)
                i = i2
            elif c == "(":
                i = self._open_group(src, i, groups, err)
                if i < 0:  # mid-pattern global flags at top level: scope to the end
                    i = -i
                    top_extra += 1
            else:  # ')'
                if not groups:
                    raise err("unbalanced ')'", i)
                extra = groups.pop()
                self.emit(")" * (extra + 1), src, i)
                i += 1
        if groups:
            raise err("missing ')'", n)
        if top_extra:
            self.emit(")" * top_extra, src, n)

    def _open_group(self, src: Source, i: int, groups: list[int], err) -> int:
        text = src.text
        if text.startswith("(?#", i):
            end = text.find(")", i)
            if end < 0:
                raise err("unterminated comment group (?#...)", i)
            return end + 1
        for opener, close in (("(?<", ">"), ("(?'", "'"), ("(?P<", ">")):
            if text.startswith(opener, i):
                start = i + len(opener)
                if opener == "(?<" and start < len(text) and text[start] in "=!":
                    break  # lookbehind
                end = text.find(close, start)
                name = text[start:end] if end >= 0 else ""
                if end < 0 or not name or not re.fullmatch(r"[A-Za-z_@\[][A-Za-z0-9_\-.@\[\]]*", name):
                    raise err("bad group name", i)
                group = self.new_group(name, None)
                self.emit(f"(?P<{group}>", src, i)
                groups.append(0)
                return end + 1
        if text.startswith("(?", i):
            m = re.compile(r"\(\?([imxsuaL]*)(?:-([imxs]*))?([:)])").match(text, i)
            if m and (m.group(1) or m.group(2) is not None):
                on = m.group(1).replace("m", "s")
                off = (m.group(2) or "").replace("m", "s")
                flags = on + ("-" + off if off else "")
                if m.group(3) == ":":
                    self.emit(f"(?{flags}:", src, i)
                    groups.append(0)
                    return m.end()
                # (?i) in the middle: applies to the end of the enclosing group
                self.emit(f"(?{flags}:", src, i)
                if groups:
                    groups[-1] += 1
                    return m.end()
                return -m.end()
            # (?:  (?=  (?!  (?<=  (?<!  (?>  (?|  and anything else regex understands
            self.emit("(?", src, i)
            groups.append(0)
            return i + 2
        self.emit("(" if self.keep_numbered else "(?:", src, i)
        groups.append(0)
        return i + 1

    def _set(self, text: str, i: int, err) -> tuple[str, int]:
        """Translate a character class starting at text[i] == '['; returns (text, end)."""
        start = i
        n = len(text)
        i += 1
        negate = i < n and text[i] == "^"
        if negate:
            i += 1
        items: list[str] = []
        first = True
        while True:
            if i >= n:
                raise err("unclosed character class '['", start)
            c = text[i]
            if c == "]" and not first:
                i += 1
                break
            if c == "[":
                if text.startswith("[:", i):
                    end = text.find(":]", i + 2)
                    name = text[i + 2:end].lstrip("^") if end >= 0 else ""
                    if end < 0 or name not in _POSIX:
                        raise err(f"unknown POSIX class [:{name}:]", i)
                    items.append(text[i:end + 2])
                    i = end + 2
                else:
                    inner, i2 = self._set(text, i, err)
                    if inner.startswith("[^"):
                        raise err("negated nested character class is not supported", i)
                    items.append(inner[1:-1])
                    i = i2
            elif c == "\\":
                if i + 1 >= n:
                    raise err("trailing backslash in character class", i)
                d = text[i + 1]
                items.append("0-9a-fA-F" if d == "h" else text[i:i + 2])
                i += 2
            elif c == "&" and text.startswith("&&", i):
                raise err("character class intersection '&&' is not supported", i)
            elif c == "]":
                items.append("\\]")
                i += 1
            else:
                items.append(c)
                i += 1
            first = False
        return "[" + ("^" if negate else "") + "".join(items) + "]", i

    def _reference(self, src: Source, i: int, stack: tuple[str, ...], err) -> int:
        text = src.text
        m = _REF.match(text, i)
        if m is None:
            end = text.find("}", i)
            if end < 0:
                raise err("unclosed %{ reference", i)
            raise err(f"malformed reference {text[i:end + 1]!r} (use %{{NAME}}, %{{NAME:field}} "
                      f"or %{{NAME:field:int}})", i)
        name, fieldname, conv = m.group(1), m.group(2), m.group(3)
        if conv is not None and conv not in _CONVERSIONS:
            raise err(f"unknown conversion ':{conv}' (use :int or :float)", i)
        definition = self.lib.get(name)
        if definition is None:
            raise err(f"unknown pattern %{{{name}}}", i)
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + (name,))
            raise err(f"reference cycle: {cycle}", i)
        if len(stack) > 100:
            raise err("references nested too deeply", i)
        if fieldname:
            group = self.new_group(fieldname, conv)
            self.emit(f"(?P<{group}>", src, i)
        else:
            self.emit("(?:", src, i)
        self.translate(Source(definition.regex, definition.path, definition.line, name),
                       stack + (name,))
        self.emit(")", src, m.end() - 1)
        return m.end()


def translate(expr: str, library: Library, source: Source | None = None,
              keep_numbered: bool = False) -> _Translator:
    t = _Translator(library, keep_numbered)
    t.translate(source or Source(expr), ())
    return t


def compile_grok(expr: str, library: Library, flags: int = regex.MULTILINE,
                 path: str | None = None, line: int | None = None) -> Compiled:
    """Compile one grok expression; a broken one raises GrokError with pattern and position."""
    src = Source(expr, path, line)
    t = translate(expr, library, src)
    text = "".join(t.out)
    if _BACKREF.search(text):
        t = translate(expr, library, src, keep_numbered=True)
        text = "".join(t.out)
    fast = _stdlib_compile(text, flags)
    if fast is not None:
        # re accepted it, so it is well formed; the regex module compiles it when needed
        return Compiled(expr, text, None, t.captures, fast, flags)
    try:
        compiled = regex.compile(text, flags)
    except regex.error as exc:
        pos = exc.pos if exc.pos is not None else 0
        origin, at = t.origin_of(pos)
        # offset inside the piece that failed, mapped back onto the source text
        piece = bisect.bisect_right(t.offsets, pos) - 1
        delta = pos - t.offsets[piece] if piece >= 0 else 0
        position = min(at + delta, len(origin.text))
        what = f"bad regex in %{{{origin.name}}}" if origin.name else "bad regex"
        raise GrokError(f"{what}: {exc.msg}", origin.text, position, origin.path,
                        origin.line) from None
    return Compiled(expr, text, compiled, t.captures, None, flags)


# constructs whose meaning differs between the regex module and the stdlib's re (or that re
# does not know): POSIX brackets, \p{..}, \X, \G, \K, branch reset, version flags
_REGEX_ONLY = re.compile(r"\\[pPXGKmMN]|\(\?[|V]|\[:\^?[a-z]+:\]|\(\?[a-zA-Z-]*[bedfLrV]")


def _stdlib_compile(text: str, flags: int):
    """The stdlib's re compiles most translated grok patterns and matches them faster than the
    regex module; None when the pattern uses anything re does not treat the same way."""
    if _REGEX_ONLY.search(text):
        return None
    reflags = (re.MULTILINE if flags & regex.MULTILINE else 0) | \
        (re.IGNORECASE if flags & regex.IGNORECASE else 0) | \
        (re.DOTALL if flags & regex.DOTALL else 0) | (re.VERBOSE if flags & regex.VERBOSE else 0)
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(text, reflags)
    except (re.error, Warning, RecursionError, OverflowError):
        return None


# --- prefilter: literals a line must contain for a pattern to have a chance -------------------

class _Lit:
    """Requirement analysis result: exact (the node always matches this one string) or CNF."""

    __slots__ = ("exact", "cnf")

    def __init__(self, exact: str | None = None, cnf: list[frozenset[str]] | None = None):
        self.exact = exact
        self.cnf = cnf or []

    def clauses(self) -> list[frozenset[str]]:
        if self.exact:
            return [frozenset([self.exact])]
        return self.cnf


class _NoPrefilter(Exception):
    pass


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "e": "\x1b"}
_QUANT = re.compile(r"\*|\+|\?|\{(\d*)(?:(,)(\d*))?\}")


class _Req:
    """A tiny parser over the translated (Python regex) text."""

    def __init__(self, text: str):
        self.t = text
        self.n = len(text)

    def alt(self, i: int) -> tuple[_Lit, int]:
        branches = []
        while True:
            lit, i = self.seq(i)
            branches.append(lit)
            if i < self.n and self.t[i] == "|":
                i += 1
                continue
            return self._merge_alt(branches), i

    @staticmethod
    def _merge_alt(branches: list[_Lit]) -> _Lit:
        if len(branches) == 1:
            return branches[0]
        options: set[str] = set()
        for b in branches:
            cl = b.clauses()
            if not cl:
                return _Lit(None, [])
            best = max(cl, key=lambda c: (min(map(len, c)), -len(c)))
            options |= best
        return _Lit(None, [frozenset(options)])

    def seq(self, i: int) -> tuple[_Lit, int]:
        t, n = self.t, self.n
        cnf: list[frozenset[str]] = []
        run: list[str] = []
        exact_ok = True

        def flush():
            if run:
                cnf.append(frozenset(["".join(run)]))
                run.clear()

        while i < n and t[i] not in "|)":
            atom, i = self.atom(i)
            q = _QUANT.match(t, i)
            lo = 1
            if q:
                i = q.end()
                if i < n and t[i] in "?+":
                    i += 1
                s = q.group()
                if s in ("*", "?"):
                    lo = 0
                elif s == "+":
                    lo = 1
                else:
                    lo = int(q.group(1) or 0)
                if s in ("*", "?", "+") or q.group(2) or lo != 1 or q.group(3):
                    exact_ok = False
                    if atom is not None and atom.exact is not None and lo >= 1:
                        flush()
                        cnf.append(frozenset([atom.exact]))
                        continue
                    if atom is not None and lo >= 1:
                        flush()
                        cnf.extend(atom.clauses())
                        continue
                    flush()
                    continue
            if atom is None:            # not a literal: breaks the run
                exact_ok = False
                flush()
            elif atom.exact is not None:
                run.append(atom.exact)
            else:
                exact_ok = False
                flush()
                cnf.extend(atom.cnf)
        if exact_ok:
            return _Lit("".join(run), []), i
        flush()
        return _Lit(None, cnf), i

    def atom(self, i: int) -> tuple[_Lit | None, int]:
        t, n = self.t, self.n
        c = t[i]
        if c == "\\":
            d = t[i + 1] if i + 1 < n else ""
            if d in _SIMPLE_ESCAPES:
                return _Lit(_SIMPLE_ESCAPES[d]), i + 2
            if d in "pPN" and i + 2 < n and t[i + 2] == "{":
                return None, t.index("}", i) + 1
            if d == "x":
                m = re.compile(r"\\x(?:([0-9a-fA-F]{2})|\{([0-9a-fA-F]+)\})").match(t, i)
                if m:
                    return _Lit(chr(int(m.group(1) or m.group(2), 16))), m.end()
                return None, i + 2
            if d.isalnum():
                if d == "0":
                    return None, i + 2
                return None, i + 2   # \d \w \s \b \1 ...
            return _Lit(d), i + 2
        if c == "[":
            return None, _skip_set(t, i)
        if c in ".^$":
            return None, i + 1
        if c == "(":
            if t.startswith("(?", i):
                k = t[i + 2] if i + 2 < n else ""
                if k == "P" and t.startswith("(?P<", i):
                    j = t.index(">", i) + 1
                    lit, j = self.alt(j)
                    return lit, j + 1
                if k == "P" and t.startswith("(?P=", i):
                    return None, t.index(")", i) + 1
                if k in ":>|":
                    lit, j = self.alt(i + 3)
                    return lit, j + 1
                if k in "=!" or t.startswith("(?<=", i) or t.startswith("(?<!", i):
                    start = i + (3 if k in "=!" else 4)
                    _, j = self.alt(start)
                    return _Lit(None, []), j + 1
                # flags: scoped or global - case folding would make literals unreliable
                m = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])").match(t, i)
                if m is None:
                    raise _NoPrefilter
                if "i" in (m.group(1) or ""):
                    raise _NoPrefilter
                if m.group(3) == ")":
                    return _Lit("", []), m.end()
                lit, j = self.alt(m.end())
                return lit, j + 1
            lit, j = self.alt(i + 1)
            return lit, j + 1
        return _Lit(c), i + 1


def required_literals(pattern_text: str, flags: int = 0, max_clauses: int = 3,
                      min_len: int = 3) -> list[tuple[str, ...]]:
    """Substrings a line must contain for the pattern to match: a list of alternatives sets
    (each a tuple: at least one of them must occur). Empty when nothing useful is known."""
    if flags & regex.IGNORECASE:
        return []
    try:
        lit, end = _Req(pattern_text).alt(0)
    except (_NoPrefilter, ValueError, IndexError):
        return []
    if end != len(pattern_text):
        return []
    useful = [c for c in lit.clauses() if c and min(map(len, c)) >= min_len]
    useful.sort(key=lambda c: (-min(map(len, c)), len(c)))
    return [tuple(sorted(c, key=len, reverse=True)) for c in useful[:max_clauses]]


# --- pieces: the top-level tokens of a grok expression, for the debugger ----------------------

def split_pieces(expr: str) -> list[str]:
    """Split a grok expression into top-level pieces (references, groups, sets, escapes and
    single characters, each with its quantifier) whose concatenation is the expression."""
    pieces: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        start = i
        c = expr[i]
        if expr.startswith("%{", i):
            end = expr.find("}", i)
            i = n if end < 0 else end + 1
        elif c == "\\":
            i = min(n, i + 2)
            if i < n and expr[i - 1] in "pPk" and expr[i] in "{<'":
                close = {"{": "}", "<": ">", "'": "'"}[expr[i]]
                end = expr.find(close, i)
                i = n if end < 0 else end + 1
        elif c == "[":
            i = _skip_set(expr, i)
        elif c == "(":
            depth = 0
            while i < n:
                ch = expr[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "[":
                    i = _skip_set(expr, i)
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            i += 1
        q = _QUANT.match(expr, i)
        if q and not (expr[i:i + 1] == "{" and not q):
            i = q.end()
            if i < n and expr[i] in "?+":
                i += 1
        pieces.append(expr[start:i])
    return pieces


def _skip_set(text: str, i: int) -> int:
    """The end of the character class starting at ``text[i] == "["``: the one way the pieces
    splitter and the required-literals scan step over a class (escapes, POSIX ``[:name:]``,
    nested classes). Tolerant: an unterminated class or ``[:`` runs to the end of ``text`` (the
    debugger splits half-typed expressions; a scan that swallows more only knows fewer literals)."""
    n = len(text)
    j = i + 1
    if j < n and text[j] == "^":
        j += 1
    if j < n and text[j] == "]":
        j += 1
    while j < n and text[j] != "]":
        if text[j] == "\\":
            j += 2
        elif text.startswith("[:", j):
            end = text.find(":]", j)
            j = n if end < 0 else end + 2
        elif text[j] == "[":
            j = _skip_set(text, j)
        else:
            j += 1
    return min(n, j + 1)
