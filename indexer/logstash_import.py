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

from logpipe.indexer.conditions import Token, tokenize  # noqa: E402  (shared reader)


@dataclass
class Plugin:
    section: str
    name: str
    settings: dict[str, object]
    line: int
    condition: str | None = None   # the text of an enclosing `if`, if any
    cond_type: str | None = None   # the type an enclosing `if [type] == "x"` selects


@dataclass
class Branch:
    """One branch of an if / else if / else: its condition (None for else) and its body."""
    condition: str | None
    line: int
    cond_type: str | None          # the type its `[type] == "x"` selects, if it does
    body: list = field(default_factory=list)   # Plugin and Conditional, in order


@dataclass
class Conditional:
    branches: list[Branch]
    line: int


class _Parser:
    def __init__(self, tokens: list[Token], path: str):
        self.t = tokens
        self.i = 0
        self.path = path
        self.plugins: list[Plugin] = []
        self.notes: list[str] = []
        self.current = ""  # the section being read: input, filter or output
        self.trees: dict[str, list] = {name: [] for name in SECTIONS}
        self.body: list = []      # where the plugins being read go (a section's or a branch's)

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def note(self, line: int, msg: str) -> None:
        self.notes.append(f"{self.path}:{line}: {msg}")

    def parse(self) -> list[Plugin]:
        sections = 0
        while (tok := self.peek()) is not None:
            if tok.kind == "word" and tok.value in SECTIONS and self._is("{", 1):
                self.i += 2
                sections += 1
                self.current = tok.value
                self.section(tok.value, None, None)
            else:
                self.note(tok.line, f"skipped unexpected {tok.value!r} at top level")
                self.i += 1
        if not sections:
            raise ConfigError("not a Logstash config: no input { }, filter { } or output { } "
                              "section in it", self.path)
        return self.plugins

    def unclosed_at_end(self, what: str, line: int) -> None:
        """A filter's block still open when the file ends: the file was cut short, or a brace
        is missing. Its filters are what is imported, so this is an error (the repairs in
        section() and settings() only close a block that a following section or plugin ends)."""
        if self.current == "filter":
            raise ConfigError(f"{what} opened here is not closed: the file ends inside it "
                              "(add the missing closing brace or bracket, or check that the file "
                              "is complete)", self.path, line)

    def _is(self, kind: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.kind == kind

    def _starts_section(self) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.value in SECTIONS and self._is("{", 1)

    def section(self, name: str, condition: str | None, cond_type: str | None,
                body: list | None = None) -> None:
        """Plugins until '}' (or until the next section starts: an unclosed block)."""
        opened = self.t[self.i - 1].line if self.i else 1   # the '{' just read
        outer = self.body
        self.body = self.trees[name] if body is None else body
        try:
            self._section(name, condition, cond_type, opened)
        finally:
            self.body = outer

    def _section(self, name: str, condition: str | None, cond_type: str | None,
                 opened: int) -> None:
        while True:
            tok = self.peek()
            if tok is None:
                self.unclosed_at_end(f"the '{{' of the {name} section" if condition is None
                                     else f"the '{{' of '{condition}'", opened)
                return
            if tok.kind == "}":
                self.i += 1
                return
            if self._starts_section():
                self.note(tok.line, f"'{name}' block not closed before '{tok.value}' (closed it)")
                return
            if tok.kind == "word" and tok.value in ("if", "else"):
                self.conditional(name, condition, cond_type)
                continue
            if tok.kind == "word" and self._is("{", 1):
                self.i += 2
                settings, closed = self.settings()
                plugin = Plugin(name, tok.value, settings, tok.line, condition, cond_type)
                self.plugins.append(plugin)
                self.body.append(plugin)
                if not closed and self.peek() is None:
                    self.unclosed_at_end(f"the '{{' of '{tok.value}'", tok.line)
                if not closed:
                    self.note(tok.line, f"'{tok.value}' block not closed (closed it)")
                continue
            self.note(tok.line, f"skipped unexpected {tok.value!r} in {name}")
            self.i += 1

    def conditional(self, name: str, outer: str | None, outer_type: str | None) -> None:
        words: list[Token] = []   # from the 'if' / 'else' this is called on, up to '{'
        while (tok := self.peek()) is not None and tok.kind != "{":
            words.append(tok)
            self.i += 1
        self.i += 1  # '{'
        kind = [w.value for w in words[:2]]
        own = words[2:] if kind == ["else", "if"] else ([] if kind[:1] == ["else"] else words[1:])
        text = _condition_text(own) if own else None
        cond_type = outer_type
        vals = [w.value for w in own]
        for k in range(len(vals) - 2):
            if vals[k:k + 3] == ["[", "type", "]"] and k + 4 < len(vals) \
                    and vals[k + 3] == "==" and own[k + 4].kind == "str":
                cond_type = own[k + 4].value
        branch = Branch(text, words[0].line, cond_type if cond_type != outer_type else None)
        last = self.body[-1] if self.body else None
        if kind[:1] == ["else"] and isinstance(last, Conditional) and \
                last.branches[-1].condition is not None:
            last.branches.append(branch)
        else:
            if kind[:1] == ["else"]:
                self.note(words[0].line, "'else' without an 'if' before it: read as an 'if'")
            self.body.append(Conditional([branch], words[0].line))
        full = " ".join(w.value if w.kind != "str" else f'"{w.value}"' for w in words)
        self.section(name, full if outer is None else f"{outer} and {full}", cond_type,
                     branch.body)

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
                    self.unclosed_at_end(f"the '[' of the array of '{key}'", tok.line)
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
                    if t is None:
                        self.unclosed_at_end(f"the '{{' of the hash of '{key}'", tok.line)
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


def _condition_text(tokens: list[Token]) -> str:
    """A condition's tokens written back as Logstash's text (strings in double quotes,
    regular expressions between slashes), for the chain's ``if`` entries."""
    out: list[str] = []
    for k, tok in enumerate(tokens):
        if tok.kind == "str":
            piece = '"' + tok.value.replace('"', '\\"') + '"'
        elif tok.kind == "regex":
            piece = f"/{tok.value}/"
        else:
            piece = tok.value
        prev = tokens[k - 1].kind if k else None
        glue = out and not (tok.kind in ("]", ",", ")") or prev in ("[", "(", "!") or
                            (tok.kind == "[" and prev == "]"))
        out.append((" " if glue else "") + piece)
    return "".join(out)


def parse_logstash(text: str, path: str = "<logstash>") -> tuple[list[Plugin], list[str]]:
    plugins, _, notes = parse_tree(text, path)
    return plugins, notes


def parse_tree(text: str, path: str = "<logstash>") -> tuple[list[Plugin], list, list[str]]:
    """(every plugin, the filter section as a tree of Plugin and Conditional, notes)."""
    p = _Parser(tokenize(text, path), path)
    plugins = PluginList(p.parse())
    plugins.tree = p.trees["filter"]
    return plugins, p.trees["filter"], p.notes


# --- converting to logpipe's pipeline config -------------------------------------------------

_DATE_ALIASES = {
    "MMM dd HH:mm:ss": "syslog", "MMM  d HH:mm:ss": "syslog", "MMM d HH:mm:ss": "syslog",
    "MMM  dd HH:mm:ss": "syslog", "ISO8601": "ISO8601", "dd/MMM/yyyy:HH:mm:ss Z": "HTTPDATE",
    "dd/MMM/YYYY:HH:mm:ss Z": "HTTPDATE", "EEE MMM dd HH:mm:ss yyyy": "apache_error",
}
_CONVERT = {"int": "int", "integer": "int", "float": "float", "string": "string",
            "boolean": "bool", "bool": "bool"}
_COMMON_IGNORED = {"id", "enable_metric", "periodic_flush"}
_COMMON = ("add_field", "add_tag", "remove_field", "remove_tag")
# the condition under which a type's patterns (its first grok) matched the line
HEAD_GROK_MATCHED = '"_grokparsefailure" not in [tags] and "_groktimeout" not in [tags]'


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
    filters: list[dict] = field(default_factory=list)   # the chain's entries, in order

    def untouched(self) -> bool:
        return not (self.patterns or self.date or self.convert or self.add or self.rename
                    or self.remove or self.add_tags or self.filters)


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


class PluginList(list):
    """parse_logstash's plugins, carrying the filter section's tree for :func:`convert`."""
    tree: list = []


def _bool(v) -> bool:
    return str(v).strip().lower() in ("true", "yes", "1")


class _Converter:
    """Walks the filter section's tree into each type's chain, in the config's order.

    The first steps of a type may become its head (what the indexer runs on the line
    first): the first grok, if it is a plain first-match grok on ``message`` and nothing came
    before it; a mutate's rename/convert/remove/add before any other step (the type's
    ``[fields]``); a date before any step that could make or change its field (``[date]``).
    Everything else is a chain entry where the config has it: groks on any field, groks with
    overwrite / break_on_match / tag_on_failure, kv, dissect, json, translate, drop, and
    if / else if / else with Logstash's own condition (``if = '...'``)."""

    def __init__(self, path: str, notes: list[str], default_type: str):
        self.path = path
        self.notes = notes
        self.default_type = default_type
        self.types: dict[str, _Type] = {}

    def where(self, p: Plugin) -> str:
        return f"{self.path}:{p.line}: {p.section} '{p.name}'"

    def walk(self, nodes: list, tname: str, out: list | None) -> None:
        """Nodes of the tree into type ``tname``: at its top level (out None; head steps
        possible) or into a branch's entry list."""
        for node in nodes:
            if isinstance(node, Conditional):
                self.conditional(node, tname, out)
                continue
            p = node
            own_type = str(p.settings["type"]) if "type" in p.settings else None
            if own_type and out is not None and own_type != tname:
                self.notes.append(f"{self.where(p)}: its type => '{own_type}' inside a "
                                  f"conditional is ignored (it runs where it is written)")
            target = own_type if own_type and out is None else tname
            t = self.types.setdefault(target, _Type())
            s = dict(p.settings)
            s.pop("type", None)
            for key in list(s):
                if key in _COMMON_IGNORED:
                    s.pop(key)
            if out is None and self.head(p, s, t):
                continue
            entries = self.entries(p, s)
            (t.filters if out is None else out).extend(entries)

    def conditional(self, node: Conditional, tname: str, out: list | None) -> None:
        rest: list[Branch] = []
        for b in node.branches:
            if b.cond_type and out is None:
                # `if [type] == "x"`: its body belongs to type x
                pure = b.condition is not None and \
                    re.fullmatch(r'\[type\] == "[^"]*"', b.condition) is not None
                if pure:
                    self.walk(b.body, b.cond_type, None)
                else:
                    entry = self.branch_entries([b], b.cond_type)
                    self.types.setdefault(b.cond_type, _Type()).filters.extend(entry)
                continue
            rest.append(b)
        if not rest:
            return
        if rest[0].condition is None:     # only an else is left: it always runs
            self.walk(rest[0].body, tname, out)
            return
        entries = self.branch_entries(rest, tname)
        self.types.setdefault(tname, _Type())
        (self.types[tname].filters if out is None else out).extend(entries)

    def branch_entries(self, branches: list[Branch], tname: str) -> list[dict]:
        """if / else if / else branches as one ``if`` entry (else-if: an else holding one)."""
        from logpipe.indexer.conditions import compile_condition
        kept: list[tuple[str | None, list]] = []
        for b in branches:
            if b.condition is not None:
                try:
                    compile_condition(b.condition, self.path, b.line)
                except ConfigError as exc:
                    self.notes.append(f"{self.path}:{b.line}: condition skipped (its branch "
                                      f"never runs): {exc}")
                    continue
            body: list = []
            self.walk(b.body, tname, body)
            kept.append((b.condition, body))
        entry: list | None = None
        for cond, body in reversed(kept):
            if cond is None:
                entry = body
                continue
            item: dict = {"if": cond, "then": body}
            if entry is not None:
                item["else"] = entry
            entry = [item]
        if entry is None:
            return []
        if kept and kept[0][0] is None:   # every condition was skipped: the else stays
            return entry
        return entry

    # --- the head of a type -------------------------------------------------------------

    def head(self, p: Plugin, s: dict, t: _Type) -> bool:
        where = self.where(p)
        if p.name == "grok" and t.untouched():
            fields = {f for f, _ in _pairs(s.get("match"))}
            plain = set(s) <= {"match", "pattern", "patterns_dir", "pattern_definitions",
                               "ecs_compatibility", "add_tag", "add_field", "remove_field",
                               "remove_tag", "named_captures_only"}
            if plain and fields <= {"message"}:
                for pat in _as_list(s.pop("pattern", None)):
                    _add_pattern(t.patterns, str(pat), self.notes, where)
                for _, pats in _pairs(s.pop("match", None)):
                    for x in _as_list(pats):
                        _add_pattern(t.patterns, str(x), self.notes, where)
                for d in _as_list(s.pop("patterns_dir", None)):
                    if str(d) not in t.patterns_dir:
                        t.patterns_dir.append(str(d))
                for name, rx in _pairs(s.pop("pattern_definitions", None)):
                    t.pattern_definitions[name] = str(rx)
                if "ecs_compatibility" in s:
                    mode = str(s.pop("ecs_compatibility"))
                    if mode in ("disabled", "v1", "v8"):
                        t.ecs_compatibility = mode
                    else:
                        self.notes.append(f"{where}: ecs_compatibility {mode!r} skipped: use "
                                          f"disabled, v1 or v8")
                s.pop("named_captures_only", None)
                # Logstash applies a grok's add_field/add_tag/remove_field/remove_tag when it
                # matched only: the entry that follows the patterns runs them on that condition
                # (the patterns tag a line none of them read _grokparsefailure, or _groktimeout)
                common = self.common(s)
                if common:
                    t.filters.append({"if": HEAD_GROK_MATCHED, "then": [{"mutate": common}]})
                return True
        if p.name == "date" and t.date is None and not s.get("tag_on_failure") and \
                not any(k in s for k in _COMMON) and "locale" not in s:
            match = [str(x) for x in _as_list(s.get("match"))]
            touched = match and (match[0] in t.rename or match[0] in t.remove
                                 or any(_may_touch(e, match[0]) for e in t.filters))
            if match and not touched:
                spec = _date_spec(s, self.notes, where)
                if spec is not None:
                    t.date = spec
                self.leftover(s, where)
                return True
        if p.name == "mutate" and not t.filters:
            simple = {f: str(k) for f, k in _pairs(s.get("convert"))}
            if all(k in _CONVERT for k in simple.values()):
                for f, kind in _pairs(s.pop("convert", None)):
                    t.convert[f] = _CONVERT[str(kind)]
                for old, new in _pairs(s.pop("rename", None)):
                    t.rename[old] = str(new)
                for key in ("remove", "remove_field"):
                    for f in _as_list(s.pop(key, None)):
                        if f not in t.remove:
                            t.remove.append(str(f))
                self.fields_common(s, t)
                rest = self.entries(p, s) if s else []
                t.filters.extend(e for e in rest if e.get("mutate"))
                return True
        return False

    def fields_common(self, s: dict, t: _Type) -> None:
        for f, v in _pairs(s.pop("add_field", None)):
            t.add[f] = v
        for tag in _as_list(s.pop("add_tag", None)):
            if tag not in t.add_tags:
                t.add_tags.append(str(tag))
        for f in _as_list(s.pop("remove_field", None)):
            if f not in t.remove:
                t.remove.append(str(f))

    # --- chain entries ------------------------------------------------------------------

    def entries(self, p: Plugin, s: dict) -> list[dict]:
        where = self.where(p)
        name = p.name
        opts: dict[str, object]
        if name == "grok":
            opts = self.grok(s, where)
        elif name == "date":
            spec = _date_spec(s, self.notes, where)
            if spec is None:
                return []
            opts = {"match": [spec["field"], *spec["formats"]]}
            for key in ("timezone", "target"):
                if key in spec:
                    opts[key] = spec[key]
            if "locale" in s:
                locale = str(s.pop("locale"))
                try:
                    from logpipe.indexer.date_locales import language
                    language(locale)
                    opts["locale"] = locale
                except ValueError as exc:
                    self.notes.append(f"{where}: {exc}: skipped (its dates are read in "
                                      f"English)")
            if "tag_on_failure" in s:
                opts["tag_on_failure"] = [str(x) for x in _as_list(s.pop("tag_on_failure"))]
        elif name == "mutate":
            opts = self.mutate(s, where)
        elif name == "kv":
            opts = self.kv(s)
        elif name == "dissect":
            mapping = {f: str(v) for f, v in _pairs(s.pop("mapping", None))}
            if not mapping:
                self.notes.append(f"{where} skipped: no mapping => {{field => pattern}}")
                return []
            opts = {"mapping": mapping}
            if "append_separator" in s:
                opts["append_separator"] = str(s.pop("append_separator"))
            if "tag_on_failure" in s:
                opts["tag_on_failure"] = [str(x) for x in _as_list(s.pop("tag_on_failure"))]
        elif name == "json":
            opts = {"source": str(s.pop("source", "message"))}
            if "target" in s:
                opts["target"] = str(s.pop("target"))
            if "skip_on_invalid_json" in s:
                opts["skip_on_invalid_json"] = _bool(s.pop("skip_on_invalid_json"))
            if "tag_on_failure" in s:
                opts["tag_on_failure"] = [str(x) for x in _as_list(s.pop("tag_on_failure"))]
        elif name == "translate":
            opts = self.translate(s, where)
        elif name == "drop":
            opts = {}
        else:
            self.notes.append(f"{where} skipped: plugin not supported by logpipe")
            return []
        common = self.common(s)
        if name != "drop":
            opts.update(common)
        elif common:
            self.notes.append(f"{where}: {', '.join(common)} on drop skipped (the event is gone)")
        self.leftover(s, where)
        return [{name: opts}]

    def leftover(self, s: dict, where: str) -> None:
        for key in s:
            self.notes.append(f"{where}: option '{key}' skipped: not supported")

    def common(self, s: dict) -> dict:
        out: dict[str, object] = {}
        added = {str(f): v for f, v in _pairs(s.pop("add_field", None))}
        if added:
            out["add_field"] = added
        for key in ("add_tag", "remove_field", "remove_tag"):
            items = [str(x) for x in _as_list(s.pop(key, None))]
            if items:
                out[key] = items
        return out

    def grok(self, s: dict, where: str) -> dict:
        match: dict[str, list[str]] = {}
        for pat in _as_list(s.pop("pattern", None)):
            match.setdefault("message", [])
            _add_pattern(match["message"], str(pat), self.notes, where)
        for fieldname, pats in _pairs(s.pop("match", None)):
            match.setdefault(str(fieldname), [])
            for x in _as_list(pats):
                _add_pattern(match[str(fieldname)], str(x), self.notes, where)
        opts: dict[str, object] = {"match": match}
        for key in ("overwrite", "tag_on_failure", "patterns_dir"):
            if key in s:
                opts[key] = [str(x) for x in _as_list(s.pop(key))]
        for key in ("break_on_match", "keep_empty_captures", "named_captures_only"):
            if key in s:
                opts[key] = _bool(s.pop(key))
        defs = {str(n): str(rx) for n, rx in _pairs(s.pop("pattern_definitions", None))}
        if defs:
            opts["pattern_definitions"] = defs
        if "timeout_millis" in s:
            try:
                opts["timeout_millis"] = int(str(s.pop("timeout_millis")))
            except ValueError:
                self.notes.append(f"{where}: timeout_millis skipped: not a number")
        if "ecs_compatibility" in s:
            mode = str(s.pop("ecs_compatibility"))
            if mode in ("disabled", "v1", "v8"):
                opts["ecs_compatibility"] = mode
        return opts

    def mutate(self, s: dict, where: str) -> dict:
        ops: dict[str, object] = {}
        for key in ("coerce", "rename", "update", "replace", "split", "join", "merge", "copy"):
            pairs = {str(f): str(v) for f, v in _pairs(s.pop(key, None))}
            if pairs:
                ops[key] = pairs
        conversions = {}
        for f, kind in _pairs(s.pop("convert", None)):
            if str(kind) in _MUTATE_CONVERT:
                conversions[str(f)] = str(kind)
            else:
                self.notes.append(f"{where}: convert of '{f}' to '{kind}' skipped: unknown type")
        if conversions:
            ops["convert"] = conversions
        gsub = [str(x) for x in _as_list(s.pop("gsub", None))]
        if gsub:
            if len(gsub) % 3:
                self.notes.append(f"{where}: mutate 'gsub' skipped: needs field, regex, "
                                  f"replacement triples")
            else:
                ops["gsub"] = gsub
        for key in ("uppercase", "capitalize", "lowercase", "strip"):
            fields = [str(f) for f in _as_list(s.pop(key, None))]
            if fields:
                ops[key] = fields
        removed = [str(f) for f in _as_list(s.pop("remove", None))]
        if removed:
            ops["remove_field"] = removed
        return ops

    def kv(self, s: dict) -> dict:
        opts: dict[str, object] = {}
        for key in ("source", "target", "field_split", "value_split", "field_split_pattern",
                    "value_split_pattern", "trim_value", "trim_key", "prefix", "transform_key",
                    "transform_value"):
            if key in s:
                opts[key] = str(s.pop(key))
        for key in ("include_keys", "exclude_keys"):
            if key in s:
                opts[key] = [str(x) for x in _as_list(s.pop(key))]
        for key in ("include_brackets", "allow_duplicate_values"):
            if key in s:
                opts[key] = _bool(s.pop(key))
        defaults = {str(k): v for k, v in _pairs(s.pop("default_keys", None))}
        if defaults:
            opts["default_keys"] = defaults
        return opts

    def translate(self, s: dict, where: str) -> dict:
        opts: dict[str, object] = {}
        for theirs, ours in (("source", "source"), ("field", "source"), ("target", "target"),
                             ("destination", "target"), ("dictionary_path", "dictionary_path"),
                             ("fallback", "fallback")):
            if theirs in s:
                opts[ours] = str(s.pop(theirs))
        dictionary = {str(k): v for k, v in _pairs(s.pop("dictionary", None))}
        if dictionary:
            opts["dictionary"] = dictionary
        for key in ("exact", "regex", "override"):
            if key in s:
                opts[key] = _bool(s.pop(key))
        for key in ("refresh_interval", "refresh_behaviour"):
            if key in s:
                s.pop(key)
                self.notes.append(f"{where}: translate '{key}' skipped: the dictionary is read "
                                  f"when the config is loaded")
        return opts


_MUTATE_CONVERT = ("integer", "integer_eu", "float", "float_eu", "string", "boolean", "int",
                   "bool")


def convert(plugins: list[Plugin], path: str = "<logstash>") -> tuple[dict, list[str]]:
    """Plugins (from :func:`parse_logstash`) -> (pipeline config document for TOML, notes
    about what was skipped, each with file:line)."""
    notes: list[str] = []
    input_types = [str(p.settings["type"]) for p in plugins
                   if p.section == "input" and "type" in p.settings]
    default_type = input_types[0] if input_types else "default"
    conv = _Converter(path, notes, default_type)
    for p in plugins:
        if p.section == "input":
            notes.append(f"{conv.where(p)} skipped: inputs are logpipe's shipper's job "
                         f"(`logpipe ship`)" + (f"; its type '{p.settings['type']}' is used for "
                                                f"filters without one" if "type" in p.settings
                                                else ""))
        elif p.section == "output":
            notes.append(f"{conv.where(p)} skipped: outputs are replaced by logpipe's store "
                         f"(--store / LOGPIPE_STORE_URL)")
    tree = getattr(plugins, "tree", None)
    if tree is None:
        tree = [p for p in plugins if p.section == "filter"]
    conv.walk(tree, default_type, None)

    doc_types: dict[str, dict] = {}
    for name, t in conv.types.items():
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
        if body:
            doc_types[name] = body
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


def _add_pattern(patterns: list[str], pattern: str, notes: list[str], where: str) -> None:
    fixed, names = repair_named_groups(pattern)
    for name in names:
        notes.append(f"{where}: pattern {len(patterns) + 1}: '(<{name}>' read as the named "
                     f"group '(?<{name}>' (the '?' is missing; as written it would match the "
                     f"literal text '<{name}>' and stop the captures there)")
    patterns.append(fixed)


def _may_touch(entry: dict, name: str) -> bool:
    """Whether a chain entry before a date could make or change its field (or read the
    @timestamp the date would set first): then the date stays a chain entry after it."""
    text = repr(entry)
    if name in text or "@timestamp" in text or "%{+" in text:
        return True
    if entry.get("if") == HEAD_GROK_MATCHED:   # the first grok's common options
        return False
    return set(entry) != {"mutate"}


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
    return spec


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

    def is_tables(v) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def table(path: list[str], body: dict, array: bool = False) -> None:
        nested = len(path) < header_depth or array
        scalars = [(k, v) for k, v in body.items()
                   if not (isinstance(v, dict) and len(path) < header_depth)
                   and not (nested and is_tables(v))]
        subtables = [(k, v) for k, v in body.items()
                     if isinstance(v, dict) and len(path) < header_depth]
        arrays = [(k, v) for k, v in body.items() if nested and is_tables(v)]
        if array or (path and (scalars or not (subtables or arrays))):
            if lines:
                lines.append("")
            name = ".".join(toml_key(p) for p in path)
            lines.append(f"[[{name}]]" if array else f"[{name}]")
        for k, v in scalars:
            lines.append(f"{toml_key(str(k))} = {toml_value(v, multiline=isinstance(v, list) and len(v) > 1)}")
        for k, v in subtables:
            table(path + [str(k)], v)
        for k, v in arrays:   # [[a.b]]: an array of tables (a chain's entries, then, else)
            for item in v:
                table(path + [str(k)], item, array=True)

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
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the pipeline config: {exc.strerror}",
                              output) from None
        typer.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)
