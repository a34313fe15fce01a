"""``logpipe import-logstash``: turn a Logstash config into a logpipe pipeline config (TOML).

What is understood: grok (``pattern =>`` and ``match =>`` in all their shapes, ``patterns_dir``,
``pattern_definitions``, ``ecs_compatibility``, the ``type =>`` of the block, an enclosing ``if [type] == "x"``, or the
input's type), date (``match => [field, formats...]``, ``timezone``, ``target``), mutate (``add_field``,
``remove_field``, ``rename``, ``convert``, ``add_tag``, and as a filter ``gsub``, ``lowercase``,
``uppercase``, ``strip``, ``split``), kv, dissect, json and drop (``[[types.X.filter]]`` entries),
``if / else if / else`` on fields (``==``, ``!=``, ``in``, ``not in``, ``<``..., ``and``, ``or``,
``not``, ``[field]``) written as a filter's ``when`` query, and the common ``add_field``/``add_tag``/
``remove_field`` options of any filter. Everything else (inputs, outputs, other plugins and options)
is reported on stderr with the reason it was skipped.

Real configs are sloppy, so the reader is tolerant: unclosed blocks and arrays are closed when the
next section or plugin starts (or at the end of the file), non-breaking spaces count as blanks,
``#`` starts a comment, strings take either quote. As in Logstash (escapes off), a string's
backslashes are kept as written: grok patterns arrive unchanged.
"""

from __future__ import annotations

import math
import re
import sys
from typing import List
from dataclasses import dataclass, field
from pathlib import Path

import typer

from logpipe.common.errors import ConfigError

app = typer.Typer(add_completion=False, help="Convert a Logstash config into a logpipe pipeline "
                  "config (TOML).")

SECTIONS = ("input", "filter", "output")


# --- reading the Logstash config language ----------------------------------------------------

@dataclass
class Token:
    kind: str   # 'str', 'word', 'num', or the punctuation itself: { } [ ] => , ( ) == != ...
    value: str
    line: int


_PUNCT = ("=>", "==", "!=", "=~", "!~", "<=", ">=", "{", "}", "[", "]", ",", "(", ")", "<", ">",
          "!")
_WORD = re.compile(r"[A-Za-z_@][A-Za-z0-9_@.\-]*")
_NUM = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def tokenize(text: str, path: str) -> list[Token]:
    tokens: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace() or c == "\ufeff":   # includes U+00A0 (non-breaking space)
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            start_line = line
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                j += 1
            if j >= n:
                raise ConfigError(f"unterminated string starting with {c}", path, start_line)
            tokens.append(Token("str", text[i + 1:j], start_line))
            i = j + 1
        elif c == "/" and tokens and tokens[-1].kind in ("=~", "!~"):
            # a regular expression literal: /.../ with \/ inside
            j = i + 1
            while j < n and text[j] not in "/\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != "/":
                raise ConfigError("unterminated regular expression /.../", path, line)
            tokens.append(Token("regex", text[i + 1:j], line))
            i = j + 1
        else:
            for p in _PUNCT:
                if text.startswith(p, i):
                    tokens.append(Token(p, p, line))
                    i += len(p)
                    break
            else:
                m = _NUM.match(text, i) if (c.isdigit() or c == "-") else None
                if m:
                    tokens.append(Token("num", m.group(), line))
                    i = m.end()
                    continue
                m = _WORD.match(text, i)
                if m:
                    tokens.append(Token("word", m.group(), line))
                    i = m.end()
                    continue
                raise ConfigError(f"unexpected character {c!r}", path, line)
    return tokens


@dataclass
class Plugin:
    section: str
    name: str
    settings: dict[str, object]
    line: int
    condition: str | None = None   # the text of an enclosing `if`, if any
    cond_type: str | None = None   # the type an enclosing `if [type] == "x"` selects
    when: str | None = None        # the enclosing conditions as a query (search syntax)
    when_error: str | None = None  # why they could not be written as one


class _Parser:
    def __init__(self, tokens: list[Token], path: str):
        self.t = tokens
        self.i = 0
        self.path = path
        self.plugins: list[Plugin] = []
        self.notes: list[str] = []

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def note(self, line: int, msg: str) -> None:
        self.notes.append(f"{self.path}:{line}: {msg}")

    def parse(self) -> list[Plugin]:
        while (tok := self.peek()) is not None:
            if tok.kind == "word" and tok.value in SECTIONS and self._is("{", 1):
                self.i += 2
                self.section(tok.value, None, None)
            else:
                self.note(tok.line, f"skipped unexpected {tok.value!r} at top level")
                self.i += 1
        return self.plugins

    def _is(self, kind: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.kind == kind

    def _starts_section(self) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.value in SECTIONS and self._is("{", 1)

    def section(self, name: str, condition: str | None, cond_type: str | None,
                when: str | None = None, when_error: str | None = None) -> None:
        """Plugins until '}' (or until the next section starts: an unclosed block)."""
        chain: list[str | None] = []   # the queries of the if / else if branches seen so far
        while True:
            tok = self.peek()
            if tok is None:
                return
            if tok.kind == "}":
                self.i += 1
                return
            if self._starts_section():
                self.note(tok.line, f"'{name}' block not closed before '{tok.value}' (closed it)")
                return
            if tok.kind == "word" and tok.value in ("if", "else"):
                self.conditional(name, condition, cond_type, when, when_error, chain)
                continue
            if tok.kind == "word" and self._is("{", 1):
                self.i += 2
                settings, closed = self.settings()
                self.plugins.append(Plugin(name, tok.value, settings, tok.line, condition,
                                           cond_type, when, when_error))
                if not closed:
                    self.note(tok.line, f"'{tok.value}' block not closed (closed it)")
                continue
            self.note(tok.line, f"skipped unexpected {tok.value!r} in {name}")
            self.i += 1

    def conditional(self, name: str, outer: str | None, outer_type: str | None,
                    outer_when: str | None, outer_error: str | None,
                    chain: list[str | None]) -> None:
        words: list[Token] = []   # from the 'if' / 'else' this is called on, up to '{'
        while (tok := self.peek()) is not None and tok.kind != "{":
            words.append(tok)
            self.i += 1
        self.i += 1  # '{'
        text = " ".join(w.value if w.kind != "str" else f'"{w.value}"' for w in words)
        # the branch as a query: its own test, and the negation of the earlier branches
        kind = [w.value for w in words[:2]]
        own_tokens = words[2:] if kind == ["else", "if"] else ([] if kind[:1] == ["else"]
                                                               else words[1:])
        if kind[:1] != ["else"]:
            chain.clear()
        error = outer_error
        own = None
        if own_tokens:
            own, why = condition_query(own_tokens)
            error = error or why
        parts = [outer_when] if outer_when else []
        if kind[:1] == ["else"]:
            if any(q is None for q in chain):
                error = error or "an earlier branch's test cannot be written as a query"
            parts += [f"NOT ({q})" for q in chain if q and q != "*"]
        if own and own != "*":
            parts.append(f"({own})")
        chain.append(own)
        when = " AND ".join(parts) or None
        cond_type = outer_type
        vals = [w.value for w in words]
        for k in range(len(vals) - 2):
            if vals[k:k + 2] == ["[", "type"] and vals[k + 2] == "]" and k + 4 < len(vals) \
                    and vals[k + 3] == "==" and words[k + 4].kind == "str":
                cond_type = words[k + 4].value
        if error and error != outer_error and cond_type == outer_type:
            self.note(words[0].line, f"condition '{text}' in {name} cannot be written as a query "
                                     f"({error}): grok and date inside apply to the whole type, "
                                     f"other filters inside are skipped")
        self.section(name, text if outer is None else f"{outer} and {text}", cond_type, when,
                     error)

    def settings(self) -> tuple[dict[str, object], bool]:
        out: dict[str, object] = {}
        while True:
            tok = self.peek()
            if tok is None:
                return out, False
            if tok.kind == "}":
                self.i += 1
                return out, True
            if self._starts_section() or (tok.kind == "word" and self._is("{", 1)):
                return out, False     # a new plugin or section starts: this block was unclosed
            if tok.kind in ("word", "str", "num") and self._is("=>", 1):
                self.i += 2
                key = tok.value
                value = self.value(key)
                earlier = out.get(key)
                if isinstance(earlier, list) and isinstance(value, list):
                    out[key] = earlier + value   # repeated options accumulate (old syntax)
                elif isinstance(earlier, dict) and isinstance(value, dict):
                    out[key] = {**earlier, **value}
                else:
                    out[key] = value
                continue
            self.note(tok.line, f"skipped unexpected {tok.value!r} in plugin settings")
            self.i += 1

    def value(self, key: str) -> object:
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "[":
            self.i += 1
            items: list[object] = []
            while True:
                t = self.peek()
                if t is None:
                    self.note(tok.line, f"array of '{key}' not closed (closed it at end of file)")
                    return items
                if t.kind == "]":
                    self.i += 1
                    return items
                if t.kind == ",":
                    self.i += 1
                    continue
                if t.kind in ("str", "num") or (t.kind == "word" and not self._is("{", 1)
                                                and not self._is("=>", 1)):
                    self.i += 1
                    items.append(t.value)
                    continue
                if t.kind == "{":
                    items.append(self.value(key))
                    continue
                self.note(tok.line, f"array of '{key}' not closed before {t.value!r} on line "
                                    f"{t.line} (closed it)")
                return items
        if tok.kind == "{":
            self.i += 1
            table: dict[str, object] = {}
            while True:
                t = self.peek()
                if t is None or self._starts_section():
                    self.note(tok.line, f"hash of '{key}' not closed (closed it)")
                    return table
                if t.kind == "}":
                    self.i += 1
                    return table
                if t.kind == ",":
                    self.i += 1
                    continue
                if t.kind in ("str", "word", "num") and self._is("=>", 1):
                    self.i += 2
                    table[t.value] = self.value(t.value)
                    continue
                self.note(t.line, f"skipped unexpected {t.value!r} in hash of '{key}'")
                self.i += 1
        self.i += 1
        return tok.value


def _query_value(tok: Token) -> str:
    return '"' + tok.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def condition_query(tokens: list[Token]) -> tuple[str | None, str | None]:
    """A Logstash condition (``[program] == "sendmail" and ![relay]``) as a query in the search
    syntax, or (None, why). ``[type] == "x"`` reads as '*': the type already selects."""
    pos = 0

    class Unsupported(Exception):
        pass

    def peek(k: int = 0):
        return tokens[pos + k] if pos + k < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def fieldref() -> str | None:
        parts = []
        while peek() is not None and peek().kind == "[" and peek(1) is not None and \
                peek(2) is not None and peek(2).kind == "]":
            take()
            parts.append(take().value)
            take()
        return ".".join(parts) if parts else None

    def operand():
        tok = peek()
        if tok is None:
            raise Unsupported("the condition ends early")
        if tok.kind == "[":
            name = fieldref()
            if name is not None:
                return ("field", name)
            take()
            items = []
            while peek() is not None and peek().kind != "]":
                item = take()
                if item.kind in ("str", "num", "word"):
                    items.append(item)
            take()
            return ("list", items)
        if tok.kind in ("str", "num"):
            return ("value", take())
        if tok.kind == "regex":
            return ("regex", take())
        raise Unsupported(f"cannot read {tok.value!r}")

    def comparison() -> str:
        left = operand()
        op = peek()
        if op is not None and op.kind in ("==", "!=", "=~", "!~", "<", ">", "<=", ">="):
            take()
            right = operand()
            if op.kind in ("=~", "!~"):
                raise Unsupported("regular expression tests (=~, !~) have no query equivalent")
            if op.kind in ("<", ">", "<=", ">="):
                if left[0] != "field" or right[0] != "value":
                    raise Unsupported("a comparison needs [field] on the left")
                v = right[1].value
                return {"<": f"{left[1]}:<{v}", ">": f"{left[1]}:>{v}",
                        "<=": f"{left[1]}:<={v}", ">=": f"{left[1]}:>={v}"}[op.kind]
            if left[0] == "value" and right[0] == "field":
                left, right = right, left
            if left[0] != "field" or right[0] != "value":
                raise Unsupported("== and != need a [field] and a value")
            if left[1] == "type" and op.kind == "==":
                return "*"
            term = f"{left[1]}:{_query_value(right[1])}"
            return term if op.kind == "==" else f"NOT {term}"
        if op is not None and op.kind == "word" and op.value in ("in", "not"):
            negate = take().value == "not"
            if negate:
                if peek() is None or peek().value != "in":
                    raise Unsupported("expected 'in' after 'not'")
                take()
            right = operand()
            if left[0] == "field" and right[0] == "list":
                q = f"{left[1]}:(" + " OR ".join(_query_value(v) for v in right[1]) + ")"
            elif left[0] == "value" and right[0] == "field":
                q = f"{right[1]}:{_query_value(left[1])}"
            else:
                raise Unsupported("'in' needs a [field] and a list, or a value and a [field]")
            return f"NOT {q}" if negate else q
        if left[0] == "field":
            return f"_exists_:{left[1]}"
        raise Unsupported("a bare value is not a test")

    def unary() -> str:
        tok = peek()
        if tok is not None and (tok.kind == "!" or (tok.kind == "word" and tok.value == "not")):
            take()
            return f"NOT ({unary()})"
        if tok is not None and tok.kind == "(":
            take()
            inner = expr()
            if peek() is None or peek().kind != ")":
                raise Unsupported("')' missing")
            take()
            return f"({inner})"
        return comparison()

    def expr() -> str:
        parts = [unary()]
        joins = []
        while peek() is not None and peek().kind == "word" and peek().value in ("and", "or",
                                                                                 "xor", "nand"):
            op = take().value
            if op not in ("and", "or"):
                raise Unsupported(f"'{op}' is not supported")
            joins.append(op.upper())
            parts.append(unary())
        out = parts[0]
        for op, part in zip(joins, parts[1:]):
            out = f"{out} {op} {part}"
        return out

    try:
        query = expr()
        if pos != len(tokens):
            raise Unsupported(f"cannot read {tokens[pos].value!r}")
    except Unsupported as exc:
        return None, str(exc)
    return ("*" if query.replace("(", "").replace(")", "").strip() in ("*", "") else query), None


def parse_logstash(text: str, path: str = "<logstash>") -> tuple[list[Plugin], list[str]]:
    p = _Parser(tokenize(text, path), path)
    plugins = p.parse()
    return plugins, p.notes


# --- converting to logpipe's pipeline config -------------------------------------------------

_DATE_ALIASES = {
    "MMM dd HH:mm:ss": "syslog", "MMM  d HH:mm:ss": "syslog", "MMM d HH:mm:ss": "syslog",
    "MMM  dd HH:mm:ss": "syslog", "ISO8601": "ISO8601", "dd/MMM/yyyy:HH:mm:ss Z": "HTTPDATE",
    "dd/MMM/YYYY:HH:mm:ss Z": "HTTPDATE", "EEE MMM dd HH:mm:ss yyyy": "apache_error",
}
_CONVERT = {"int": "int", "integer": "int", "float": "float", "string": "string",
            "boolean": "bool", "bool": "bool"}
_COMMON_IGNORED = {"id", "enable_metric", "periodic_flush"}


@dataclass
class _Type:
    patterns: list[str] = field(default_factory=list)
    pattern_definitions: dict[str, str] = field(default_factory=dict)
    patterns_dir: list[str] = field(default_factory=list)
    date: dict | None = None
    convert: dict[str, str] = field(default_factory=dict)
    add: dict[str, object] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    add_tags: list[str] = field(default_factory=list)
    ecs_compatibility: str | None = None
    filters: list[dict] = field(default_factory=list)   # [[types.X.filter]] entries, in order
    routes: list[dict] = field(default_factory=list)    # [[types.X.route]] entries


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _pairs(v) -> list[tuple[str, object]]:
    """A Logstash hash written as {k => v} or as the old flat array [k, v, k, v]."""
    if isinstance(v, dict):
        return list(v.items())
    items = _as_list(v)
    return [(str(items[k]), items[k + 1]) for k in range(0, len(items) - 1, 2)]


def convert(plugins: list[Plugin], path: str = "<logstash>") -> tuple[dict, list[str]]:
    """Plugins -> (pipeline config document for TOML, notes about what was skipped)."""
    notes: list[str] = []
    input_types = [str(p.settings["type"]) for p in plugins
                   if p.section == "input" and "type" in p.settings]
    default_type = input_types[0] if input_types else "default"
    types: dict[str, _Type] = {}
    routed: dict[tuple[str, str], str] = {}   # (type, condition) -> the type it routes to

    def where(p: Plugin) -> str:
        return f"{path}:{p.line}: {p.section} '{p.name}'"

    for p in plugins:
        if p.section == "input":
            notes.append(f"{where(p)} skipped: inputs are logpipe's shipper's job "
                         f"(`logpipe ship`)" + (f"; its type '{p.settings['type']}' is used for "
                                                f"filters without one" if "type" in p.settings
                                                else ""))
            continue
        if p.section == "output":
            notes.append(f"{where(p)} skipped: outputs are replaced by logpipe's store "
                         f"(--store / LOGPIPE_STORE_URL)")
            continue
        tname = str(p.settings.get("type") or p.cond_type or default_type)
        t = types.setdefault(tname, _Type())
        s = dict(p.settings)
        s.pop("type", None)
        when = p.when if p.when and p.when != "*" else None
        if p.when_error and (p.name in _FILTERS or p.name == "mutate"):
            notes.append(f"{where(p)} skipped: its condition '{p.condition}' cannot be written "
                         f"as a query ({p.when_error})")
            continue
        if p.name in _FILTERS or (when and p.name == "mutate"):
            _filter(p, s, t, notes, where(p), when)
            for key in s:
                if key not in _COMMON_IGNORED:
                    notes.append(f"{where(p)}: option '{key}' skipped: not supported")
            continue
        if when and p.name == "grok":
            # a grok under a field condition: a route to a type of its own, which parses the
            # line with this grok's patterns (and the base type's date, edits and filters)
            base = t
            sub = routed.get((tname, when))
            if sub is None:
                m = re.fullmatch(r'\(?[A-Za-z0-9_.@]+:"([A-Za-z0-9_.-]+)"\)?', when)
                sub = f"{tname}-{m.group(1)}" if m else f"{tname}-{len(routed) + 1}"
                while sub in types:
                    sub += "_"
                routed[(tname, when)] = sub
                base.routes.append({"when": when, "type": sub})
                notes.append(f"{where(p)}: under '{p.condition}': imported as a route from "
                             f"'{tname}' to type '{sub}' ('{tname}''s captures are kept, "
                             f"this grok's added on top)")
            t = types.setdefault(sub, _Type())
            tname = sub
        elif when and p.name == "date":
            # a date under a condition: a filter that runs only under it
            spec = _date_spec(s, notes, where(p))
            if spec is not None:
                t.filters.append({"date": spec, "when": when})
            _common(s, t, notes, where(p))
            for key in s:
                if key not in _COMMON_IGNORED:
                    notes.append(f"{where(p)}: option '{key}' skipped: not supported")
            continue
        if p.name == "grok":
            _grok(p, s, t, notes, where(p))
        elif p.name == "date":
            _date(p, s, t, notes, where(p))
        elif p.name == "mutate":
            _mutate(s, t, notes, where(p))
        else:
            notes.append(f"{where(p)} skipped: plugin not supported by logpipe")
            if not any(vars(t).values()):
                types.pop(tname, None)
            continue
        _common(s, t, notes, where(p))
        for key in s:
            if key not in _COMMON_IGNORED:
                notes.append(f"{where(p)}: option '{key}' skipped: not supported")

    doc_types: dict[str, dict] = {}
    for name, t in types.items():
        body: dict[str, object] = {}
        if t.patterns:
            body["patterns"] = t.patterns
        if t.pattern_definitions:
            body["pattern_definitions"] = t.pattern_definitions
        if t.patterns_dir:
            body["patterns_dir"] = t.patterns_dir
        if t.ecs_compatibility:
            body["ecs_compatibility"] = t.ecs_compatibility
        if t.date:
            body["date"] = t.date
        fields: dict[str, object] = {}
        for key in ("convert", "add", "rename", "remove", "add_tags"):
            if getattr(t, key):
                fields[key] = getattr(t, key)
        if fields:
            body["fields"] = fields
        if t.filters:
            body["filter"] = t.filters
        if t.routes:
            body["route"] = t.routes
        doc_types[name] = body
    for (base_name, _), sub in routed.items():
        base, body = types[base_name], doc_types.setdefault(sub, {})
        # the routed type dates, edits and filters its events as the type it comes from
        if base.date and "date" not in body:
            body["date"] = base.date
        for key in ("fields", "filter"):
            if key in doc_types[base_name] and key not in body:
                body[key] = doc_types[base_name][key]
    doc: dict[str, object] = {}
    if default_type in doc_types:
        doc["default_type"] = default_type
    doc["types"] = doc_types
    return doc, notes


# "(<name>" where "(?<name>" was meant: a group that would match the literal text "<name>".
# No real log line carries "<dsn>" after "dsn=", so the intent is plain; the fix is reported.
_MISSING_QMARK = re.compile(r"(?<!\\)\(<([A-Za-z_][A-Za-z0-9_]*)>")


def repair_named_groups(pattern: str) -> tuple[str, list[str]]:
    """Rewrite ``(<name>`` into the named group ``(?<name>``; returns the names repaired."""
    names = _MISSING_QMARK.findall(pattern)
    return (_MISSING_QMARK.sub(r"(?<\1>", pattern) if names else pattern), names


def _add_pattern(t: _Type, pattern: str, notes: list[str], where: str) -> None:
    fixed, names = repair_named_groups(pattern)
    for name in names:
        notes.append(f"{where}: pattern {len(t.patterns) + 1}: '(<{name}>' read as the named "
                     f"group '(?<{name}>' (the '?' is missing; as written it would match the "
                     f"literal text '<{name}>' and stop the captures there)")
    t.patterns.append(fixed)


def _grok(p: Plugin, s: dict, t: _Type, notes: list[str], where: str) -> None:
    for pat in _as_list(s.pop("pattern", None)):
        _add_pattern(t, str(pat), notes, where)
    if "match" in s:
        for fieldname, pats in _pairs(s.pop("match")):
            if fieldname != "message":
                notes.append(f"{where}: match on field '{fieldname}' imported as a match on the "
                             f"line (logpipe groks the message)")
            for x in _as_list(pats):
                _add_pattern(t, str(x), notes, where)
    for d in _as_list(s.pop("patterns_dir", None)):
        if str(d) not in t.patterns_dir:
            t.patterns_dir.append(str(d))
    for name, regex in _pairs(s.pop("pattern_definitions", None)):
        t.pattern_definitions[name] = str(regex)
    if "ecs_compatibility" in s:
        mode = str(s.pop("ecs_compatibility"))
        if mode in ("disabled", "v1", "v8"):
            t.ecs_compatibility = mode
        else:
            notes.append(f"{where}: ecs_compatibility {mode!r} skipped: use disabled, v1 or v8")
    for key in ("break_on_match", "named_captures_only", "keep_empty_captures", "overwrite",
                "tag_on_failure", "tag_on_timeout", "timeout_millis", "patterns_files_glob"):
        if key in s:
            s.pop(key)
            notes.append(f"{where}: option '{key}' skipped: logpipe's grok always breaks on the "
                         f"first match, keeps named captures only, tags _grokparsefailure")


def _date(p: Plugin, s: dict, t: _Type, notes: list[str], where: str) -> None:
    spec = _date_spec(s, notes, where)
    if spec is not None:
        t.date = spec


def _date_spec(s: dict, notes: list[str], where: str) -> dict | None:
    """A date filter's options as logpipe's date section (field, formats, timezone, target)."""
    match = _as_list(s.pop("match", None))
    if not match:
        notes.append(f"{where} skipped: no match => [field, formats...]")
        return None
    formats: list[str] = []
    for f in match[1:]:
        mapped = _DATE_ALIASES.get(str(f), str(f))
        if mapped not in formats:
            formats.append(mapped)
    spec = {"field": str(match[0]), "formats": formats or ["syslog", "ISO8601"]}
    if "timezone" in s:
        spec["timezone"] = str(s.pop("timezone"))
    if "target" in s:
        spec["target"] = str(s.pop("target"))
    s.pop("locale", None)
    return spec


def _mutate(s: dict, t: _Type, notes: list[str], where: str) -> None:
    for old, new in _pairs(s.pop("rename", None)):
        t.rename[old] = str(new)
    for key in ("remove", "remove_field"):
        for f in _as_list(s.pop(key, None)):
            if f not in t.remove:
                t.remove.append(str(f))
    for f, kind in _pairs(s.pop("convert", None)):
        if str(kind) in _CONVERT:
            t.convert[f] = _CONVERT[str(kind)]
        else:
            notes.append(f"{where}: convert of '{f}' to '{kind}' skipped: unknown type")
    ops: dict[str, object] = {}
    _mutate_ops(s, ops, notes, where)
    if ops:
        t.filters.append({"mutate": ops})
    for key in list(s):
        if key in ("replace", "update", "join", "merge", "copy", "capitalize", "coerce"):
            s.pop(key)
            notes.append(f"{where}: mutate '{key}' skipped: not supported by logpipe")


_FILTERS = ("kv", "dissect", "json", "drop")
_KV_OPTIONS = {"source": "source", "field_split": "field_split", "value_split": "value_split",
               "target": "target", "prefix": "prefix"}
_MUTATE_FILTER_OPS = ("gsub", "lowercase", "uppercase", "strip", "split")


def _filter(p: Plugin, s: dict, t: _Type, notes: list[str], where: str,
            when: str | None) -> None:
    """kv, dissect, json, drop -- and mutate or add_tag under a condition -- become
    [[types.X.filter]] entries, with the condition as `when`."""
    def add(kind: str, options: object) -> None:
        entry: dict[str, object] = {kind: options}
        if when:
            entry["when"] = when
        t.filters.append(entry)

    opts: dict[str, object]
    if p.name == "kv":
        opts = {ours: str(s.pop(theirs)) for theirs, ours in _KV_OPTIONS.items() if theirs in s}
        add("kv", opts)
    elif p.name == "dissect":
        mapping = {f: str(v) for f, v in _pairs(s.pop("mapping", None))}
        if not mapping:
            notes.append(f"{where} skipped: no mapping => {{field => pattern}}")
        else:
            opts = {"mapping": mapping}
            if "append_separator" in s:
                opts["append_separator"] = str(s.pop("append_separator"))
            add("dissect", opts)
    elif p.name == "json":
        opts = {"source": str(s.pop("source", "message"))}
        if "target" in s:
            opts["target"] = str(s.pop("target"))
        add("json", opts)
    elif p.name == "drop":
        add("drop", {})
    elif p.name == "mutate":
        ops: dict[str, object] = {}
        rename = {old: str(new) for old, new in _pairs(s.pop("rename", None))}
        if rename:
            ops["rename"] = rename
        conversions = {f: _CONVERT[str(kind)] for f, kind in _pairs(s.pop("convert", None))
                       if str(kind) in _CONVERT}
        if conversions:
            ops["convert"] = conversions
        for key in ("remove", "remove_field"):
            fields = [str(f) for f in _as_list(s.pop(key, None))]
            if fields:
                ops["remove_field"] = fields
        mutate_added = {f: v for f, v in _pairs(s.pop("add_field", None))}
        if mutate_added:
            ops["add_field"] = mutate_added
        _mutate_ops(s, ops, notes, where)
        if ops:
            add("mutate", ops)
    tags = [str(x) for x in _as_list(s.pop("add_tag", None))]
    if tags:
        add("add_tag", tags)
    added = {f: v for f, v in _pairs(s.pop("add_field", None))}
    if added:
        add("mutate", {"add_field": added})
    removed = [str(f) for f in _as_list(s.pop("remove_field", None))]
    if removed:
        add("mutate", {"remove_field": removed})
    if s.pop("remove_tag", None) is not None:
        notes.append(f"{where}: option 'remove_tag' skipped: not supported")


def _mutate_ops(s: dict, ops: dict, notes: list[str], where: str) -> None:
    """mutate's gsub / lowercase / uppercase / strip / split into a mutate filter's options."""
    gsub = [str(x) for x in _as_list(s.pop("gsub", None))]
    if gsub:
        if len(gsub) % 3:
            notes.append(f"{where}: mutate 'gsub' skipped: needs field, regex, replacement triples")
        else:
            ops["gsub"] = gsub
    for key in ("lowercase", "uppercase", "strip"):
        fields = [str(f) for f in _as_list(s.pop(key, None))]
        if fields:
            ops[key] = fields
    for f, sep in _pairs(s.pop("split", None)):
        ops.setdefault("split", {})[f] = str(sep)


def _common(s: dict, t: _Type, notes: list[str], where: str) -> None:
    for f, v in _pairs(s.pop("add_field", None)):
        t.add[f] = v
    for tag in _as_list(s.pop("add_tag", None)):
        if tag not in t.add_tags:
            t.add_tags.append(str(tag))
    for f in _as_list(s.pop("remove_field", None)):
        if f not in t.remove:
            t.remove.append(str(f))
    if "remove_tag" in s:
        s.pop("remove_tag")
        notes.append(f"{where}: option 'remove_tag' skipped: not supported")


# --- a small TOML writer ---------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(s: str) -> str:
    """A literal string '...' when possible (patterns stay readable), else a basic string."""
    if "'" not in s and not any(ord(c) < 0x20 and c != "\t" or c == "\x7f" for c in s):
        return f"'{s}'"
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def toml_value(v: object, multiline: bool = False) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        if multiline and v:
            return "[\n" + "".join(f"  {toml_value(x)},\n" for x in v) + "]"
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(x)}"
                                for k, x in v.items()) + " }" if v else "{}"
    if v is None:
        raise ValueError("TOML has no null value")
    return toml_string(str(v))


def toml_dumps(doc: dict, header_depth: int = 3) -> str:
    """Tables down to ``header_depth`` get [a.b.c] headers; deeper ones are inline tables."""
    lines: list[str] = []

    def table(path: list[str], body: dict) -> None:
        scalars = [(k, v) for k, v in body.items()
                   if not (isinstance(v, dict) and len(path) < header_depth)]
        subtables = [(k, v) for k, v in body.items()
                     if isinstance(v, dict) and len(path) < header_depth]
        if path and (scalars or not subtables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(toml_key(p) for p in path) + "]")
        for k, v in scalars:
            lines.append(f"{toml_key(str(k))} = {toml_value(v, multiline=isinstance(v, list) and len(v) > 1)}")
        for k, v in subtables:
            table(path + [str(k)], v)

    table([], doc)
    return "\n".join(lines) + "\n"


def import_file(path: str) -> tuple[str, list[str]]:
    """Read a Logstash config; (TOML text, notes)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read Logstash config: {exc.strerror}", path) from None
    plugins, notes = parse_logstash(text, path)
    doc, more = convert(plugins, path)
    header = (f"# logpipe pipeline config imported from {Path(path).name} by "
              f"`logpipe import-logstash`.\n")
    return header + toml_dumps(doc), notes + more


@app.command()
def import_logstash(
    file: str = typer.Argument(None, help="The Logstash config file to convert."),
    output: str = typer.Option(None, "--output", "-o", help="Write the TOML here (default: stdout)."),
    tests_from: str = typer.Option(None, "--tests-from", help="Instead: a pattern project's YAML "
                                   "test cases (pattern/data/results) as a `logpipe test` file."),
    patterns_dir: List[str] = typer.Option(None, "--patterns-dir", help="With --tests-from: the "
                                           "project's pattern files (repeatable)."),
) -> None:
    """Convert a Logstash config into a logpipe pipeline config (TOML); print what was skipped."""
    if tests_from is not None:  # the test-case import lives in indexer/parse_tests.py
        from logpipe.indexer.parse_tests import import_yaml_tests
        import_yaml_tests(tests_from, output, list(patterns_dir or []))
        return
    if file is None:
        raise ConfigError("give the Logstash config FILE to convert (or --tests-from DIR)")
    text, notes = import_file(file)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)
