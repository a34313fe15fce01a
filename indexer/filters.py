"""A type's filters: the steps of its chain after grok and the field edits, in order, each one
optionally under a condition: ``when`` (a query in the search syntax) or an ``if`` entry
(Logstash's condition language, with ``then``, ``else``; an ``else`` holding one ``if`` entry is
an ``else if``)::

    [[types.app.filter]]
    grok = { match = { message = ['%{SYSLOGBASE} %{GREEDYDATA:message}'] }, overwrite = ['message'] }
    [[types.app.filter]]
    if = '[program] =~ /^postfix\\/smtpd$/'
    then = [ { kv = { source = "message", field_split = ", " } } ]
    else = [ { if = '[program] == "cron"', then = [ { drop = {} } ] } ]
    [[types.app.filter]]
    when = 'level:DEBUG'
    drop = {}

Kinds (Logstash's filter of the same name, with its options): ``grok``, ``kv``, ``dissect``,
``json``, ``drop``, ``mutate``, ``date``, ``translate``, ``add_tag = [...]``, and ``if``. Every
kind takes Logstash's common options too (``add_field``, ``add_tag``, ``remove_field``,
``remove_tag``), applied when the filter succeeded. This module reads and checks the entries
and builds each one's step (:mod:`indexer.steps`); errors name the file and the entry
(``[types.app] filter 2 then 1``).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from logpipe.common.errors import ConfigError, GrokError
from logpipe.indexer import steps as st
from logpipe.indexer.conditions import compile_condition

KINDS = ("kv", "dissect", "json", "drop", "mutate", "add_tag", "date", "grok", "translate", "if")
COMMON_OPTIONS = ("add_field", "add_tag", "remove_field", "remove_tag")
_DATE_OPTIONS = ("field", "formats", "timezone", "target", "match", "locale", "tag_on_failure")
MUTATE_OPS = ("coerce", "rename", "update", "replace", "convert", "gsub", "uppercase",
              "capitalize", "lowercase", "strip", "split", "join", "merge", "copy",
              "add_field", "remove_field", "add_tag", "remove_tag")
_MUTATE_OPS = MUTATE_OPS
GROK_OPTIONS = ("match", "overwrite", "break_on_match", "tag_on_failure", "pattern_definitions",
                "patterns_dir", "ecs_compatibility", "keep_empty_captures", "named_captures_only",
                "timeout_millis", "tag_on_timeout") + COMMON_OPTIONS
KV_OPTIONS = ("source", "target", "field_split", "value_split", "field_split_pattern",
              "value_split_pattern", "trim_value", "trim_key", "include_keys", "exclude_keys",
              "prefix", "include_brackets", "allow_duplicate_values", "transform_key",
              "transform_value", "default_keys") + COMMON_OPTIONS
TRANSLATE_OPTIONS = ("source", "field", "target", "destination", "dictionary", "dictionary_path",
                     "exact", "regex", "fallback", "override") + COMMON_OPTIONS
JSON_OPTIONS = ("source", "target", "skip_on_invalid_json", "tag_on_failure") + COMMON_OPTIONS
_DISSECT_KEY = re.compile(r"%\{([^}]*)\}")


@dataclass(frozen=True)
class Filter:
    kind: str
    options: dict = field(default_factory=dict)
    when: str | None = None
    query: object = None
    dissect: tuple = ()   # compiled mappings: (source field, regex, keys)
    run: Callable | None = None   # the step: (doc, tags) -> False when the event is dropped


def _dissect_regex(pattern: str, where: str, source: str) -> tuple:
    """One dissect mapping as a regex and its keys, Logstash's notation: ``%{a}`` a field,
    ``%{}`` / ``%{?a}`` skipped, ``%{+a}`` (``%{+a/N}``) appended to ``a`` (in ordinal order),
    ``%{?k}`` / ``%{*k}`` a key for a later ``%{&k}`` (whose value is stored under it), and
    ``->`` after a name: the delimiter that follows may repeat (padding)."""
    keys, out, pos, pad = [], ["^"], 0, False
    found = list(_DISSECT_KEY.finditer(pattern))
    for k, m in enumerate(found):
        out.append(_delimiter(pattern[pos:m.start()], pad))
        key = m.group(1).strip()
        pad = key.endswith("->")
        key = key[:-2] if pad else key
        kind = key[:1] if key[:1] in "+?*&" else ""
        name = key[1:] if kind else key
        ordinal = None
        if kind == "+" and "/" in name:
            name, _, number = name.rpartition("/")
            if not number.isdigit():
                raise ConfigError(f"{where}: dissect key %{{{m.group(1)}}}: the ordinal after "
                                  f"'/' must be a number", source)
            ordinal = int(number)
        if kind in ("+", "*", "&") and not name:
            raise ConfigError(f"{where}: dissect key %{{{m.group(1)}}} needs a name", source)
        last = k == len(found) - 1
        out.append(("(.*)" if last else "(.*?)"))
        keys.append((kind if name else "?", name, ordinal))
        pos = m.end()
    out.append(_delimiter(pattern[pos:], pad) + "$")
    return re.compile("".join(out), re.S), tuple(keys)


def _delimiter(text: str, repeat: bool) -> str:
    """A delimiter's regex; after a ``->`` field it may repeat."""
    if not text:
        return ""
    return f"(?:{re.escape(text)})+" if repeat else re.escape(text)


def _dissect_values(doc: dict, keys: tuple, groups: tuple, separator: str) -> dict:
    """The fields one dissect match gives, modifiers applied."""
    out: dict = {}
    refs: dict = {}
    appended: dict = {}
    for n, ((kind, name, ordinal), got) in enumerate(zip(keys, groups)):
        if kind == "?" or kind == "*":
            if name:
                refs[name] = got
        elif kind == "+" or (kind == "" and any(k == "+" and nm == name for k, nm, _ in keys)):
            appended.setdefault(name, []).append((ordinal if ordinal is not None else 0, n, got))
        elif kind == "&":
            # the key a %{?k} / %{*k} of this mapping found, else the event's own field k
            key = refs.get(name, doc.get(name))
            if isinstance(key, str) and key:
                out[key] = got
        else:
            out[name] = got
    for name, parts in appended.items():
        out[name] = separator.join(v for _, _, v in sorted(parts))
    return out


def config_tables(items, what: str, where: str, source: str) -> list:
    """A ``[[what]]`` array of tables as a list (one table given alone is a list of one)."""
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ConfigError(f"{where} {what} must be a list of [[{what}]] tables", source)
    return items


def compile_when(when, at: str, source: str):
    """A ``when`` condition (the search language) compiled once, at config load."""
    from logpipe.query.errors import QueryError
    from logpipe.query.lucene import compile_query
    try:
        return compile_query(str(when))
    except QueryError as exc:
        raise ConfigError(f"{at}: cannot read when = {when!r}: {exc}", source) from None



def _base_dir(source: str) -> Path:
    return Path(source).parent if source and not source.startswith("<") else Path(".")


def _strings(value, at: str, what: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{at}: {what} must be a string or a list of strings", source)
    return list(value)


def _table(value, at: str, what: str, source: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{at}: {what} must be a table", source)
    return value


def _check_options(opts: dict, known: tuple, kind: str, at: str, source: str) -> None:
    unknown = [k for k in opts if k not in known]
    if unknown:
        raise ConfigError(f"{at}: {kind} option(s) {', '.join(unknown)} not supported "
                          f"(use {', '.join(known)})", source)


def _matched(opts: dict, at: str, source: str):
    for key in ("add_tag", "remove_field", "remove_tag"):
        if key in opts:
            opts[key] = _strings(opts[key], at, key, source)
    if "add_field" in opts:
        _table(opts["add_field"], at, "add_field", source)
    return st.common_actions(opts)


def parse_filters(items, where: str, source: str) -> list[Filter]:
    out = []
    for n, item in enumerate(config_tables(items, "filter", where, source), 1):
        out.append(_parse_one(item, f"{where} filter {n}", source))
    return out


def _parse_one(item, at: str, source: str) -> Filter:
    if not isinstance(item, dict):
        raise ConfigError(f"{at} must be a table", source)
    if "if" in item:
        return _parse_if(item, at, source)
    kinds = [k for k in item if k != "when"]
    if len(kinds) != 1 or kinds[0] not in KINDS:
        raise ConfigError(f"{at}: needs exactly one of {', '.join(KINDS)} (got "
                          f"{', '.join(kinds) or 'none'})", source)
    kind = kinds[0]
    options = item[kind]
    if kind == "add_tag":
        options = {"tags": list(options) if isinstance(options, list) else [options]}
    if not isinstance(options, dict):
        raise ConfigError(f"{at}: {kind} takes a table of options", source)
    options = dict(options)
    dissect: tuple = ()
    run: Callable
    if kind == "mutate":
        _check_options(options, MUTATE_OPS, "mutate", at, source)
        run = _mutate(options, at, source)
    elif kind == "date":
        run = _date(options, at, source)
    elif kind == "dissect":
        _check_options(options, ("mapping", "append_separator", "tag_on_failure")
                       + COMMON_OPTIONS, "dissect", at, source)
        mapping = options.get("mapping", {})
        if not isinstance(mapping, dict) or not mapping:
            raise ConfigError(f"{at}: dissect needs mapping = {{field = 'pattern'}}", source)
        dissect = tuple((f, *_dissect_regex(str(p), at, source)) for f, p in mapping.items())
        if not isinstance(options.get("append_separator", " "), str):
            raise ConfigError(f"{at}: dissect append_separator must be a string", source)
        run = st.dissect_step(dissect, options.get("append_separator", " "), _dissect_values,
                              _matched(options, at, source))
    elif kind == "grok":
        run = _grok(options, at, source)
    elif kind == "kv":
        run = _kv(options, at, source)
    elif kind == "json":
        _check_options(options, JSON_OPTIONS, "json", at, source)
        run = st.json_step(str(options.get("source", "message")), options.get("target"),
                           bool(options.get("skip_on_invalid_json", False)),
                           _strings(options.get("tag_on_failure", ["_jsonparsefailure"]), at,
                                    "tag_on_failure", source),
                           _matched(options, at, source))
    elif kind == "translate":
        run = _translate(options, at, source)
    elif kind == "drop":
        run = st.drop_step()
    else:  # add_tag
        run = st.tag_step([str(t) for t in options["tags"]])
    when = item.get("when")
    query = compile_when(when, at, source) if when is not None else None
    if query is not None:
        run = st.when_step(query, run)
    return Filter(kind, options, when, query, dissect, run)


def _parse_if(item: dict, at: str, source: str) -> Filter:
    """``{ if = 'COND', then = [...], else = [...] }``; an ``else`` that is one ``if`` entry is
    an else-if, so the branches are collected into one step."""
    branches = []
    otherwise: list = []
    node, here = item, at
    while True:
        unknown = [k for k in node if k not in ("if", "then", "else")]
        if unknown:
            raise ConfigError(f"{here}: an if entry takes if, then and else (not "
                              f"{', '.join(unknown)})", source)
        cond = node["if"]
        if not isinstance(cond, str):
            raise ConfigError(f"{here}: if must be a condition (a string)", source)
        try:
            test = compile_condition(cond, source, line_of(source, "if", cond), label=here)
        except ConfigError as exc:
            prefix = f"{source}:{exc.line}: " if exc.line else f"{source}: "
            raise ConfigError(f"{here}: {str(exc).removeprefix(prefix)}", source,
                              exc.line) from None
        then = [_parse_one(x, f"{here} then {k}", source)
                for k, x in enumerate(config_tables(node.get("then", []), "then", here,
                                                    source), 1)]
        branches.append((test, [f.run for f in then], cond, then))
        rest = node.get("else")
        if rest is None:
            break
        rest = config_tables(rest, "else", here, source)
        if len(rest) == 1 and isinstance(rest[0], dict) and "if" in rest[0]:
            node, here = rest[0], f"{here} else"
            continue
        otherwise = [_parse_one(x, f"{here} else {k}", source) for k, x in enumerate(rest, 1)]
        break
    run = st.if_step([(t, runs) for t, runs, _, _ in branches], [f.run for f in otherwise])
    options = {"branches": [(c, then) for _, _, c, then in branches], "else": otherwise}
    return Filter("if", options, item["if"], None, (), run)


def _mutate(options: dict, at: str, source: str):
    for key in ("coerce", "rename", "update", "replace", "convert", "split", "join", "merge",
                "copy"):
        if key in options:
            _table(options[key], at, f"mutate {key}", source)
    for name, kind in (options.get("convert") or {}).items():
        if kind not in st.CONVERT_KINDS:
            raise ConfigError(f"{at}: mutate convert of {name!r}: unknown type {kind!r} (use one "
                              f"of {', '.join(st.CONVERT_KINDS)})", source)
    for key in ("uppercase", "capitalize", "lowercase", "strip"):
        if key in options:
            options[key] = _strings(options[key], at, f"mutate {key}", source)
    gsub = options.get("gsub")
    if gsub is not None:
        gsub = _strings(gsub, at, "mutate gsub", source)
        if len(gsub) % 3:
            raise ConfigError(f"{at}: mutate gsub needs field, regex, replacement triples",
                              source)
        for k in range(1, len(gsub), 3):
            _check_regex(gsub[k], at, "mutate gsub", source)
    try:
        return st.mutate_step(options, _matched(options, at, source))
    except ConfigError as exc:
        raise ConfigError(f"{at}: {exc}", source) from None


def _check_regex(text: str, at: str, what: str, source: str) -> None:
    import regex
    try:
        regex.compile(text)
    except regex.error as exc:
        raise ConfigError(f"{at}: {what}: cannot read the regular expression {text!r}: {exc}",
                          source) from None


def _date(options: dict, at: str, source: str):
    unknown = [k for k in options if k not in _DATE_OPTIONS + COMMON_OPTIONS]
    match = options.get("match")
    if match is not None:
        match = _strings(match, at, "date match", source)
        if len(match) < 1:
            unknown.append("match (needs [field, formats...])")
    field_name = match[0] if match else options.get("field", "timestamp")
    formats = match[1:] if match else options.get("formats", ["syslog", "ISO8601"])
    if unknown or not isinstance(field_name, str) or not isinstance(formats, list):
        raise ConfigError(f"{at}: date takes field = 'NAME', formats = [...] (or match = "
                          f"[field, formats...]), timezone, locale, target, tag_on_failure"
                          + (f" (not {', '.join(unknown)})" if unknown else ""), source)
    timezone = options.get("timezone")
    if timezone is not None:
        from logpipe.indexer.enrich import zone
        try:
            zone(str(timezone))
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc}", source) from None
    language = None
    if "locale" in options:
        from logpipe.indexer.date_locales import language as locale_language
        try:
            language = locale_language(str(options["locale"]))
        except ValueError as exc:
            raise ConfigError(f"{at}: date {exc}", source,
                              line_of(source, "locale", str(options["locale"]))) from None
    return st.date_step(field_name, [str(f) for f in formats or ["syslog", "ISO8601"]],
                        None if timezone is None else str(timezone),
                        str(options.get("target", "@timestamp")),
                        _strings(options.get("tag_on_failure", ["_dateparsefailure"]), at,
                                 "tag_on_failure", source),
                        _matched(options, at, source), language)


def line_of(source: str, key: str, value: str) -> int | None:
    """The line of the config file where ``key = 'value'`` is written (TOML's reader gives no
    positions), for an error that names file:line; None when it cannot be found."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    written = re.compile(rf"(?<![\w-]){re.escape(key)}\s*=\s*(['\"]){re.escape(value)}\1")
    for n, line in enumerate(text.splitlines(), 1):
        if written.search(line):
            return n
    return None


def _grok(options: dict, at: str, source: str):
    from logpipe.indexer.grok.matcher import Matcher
    _check_options(options, GROK_OPTIONS, "grok", at, source)
    match = options.get("match")
    if not isinstance(match, dict) or not match:
        raise ConfigError(f"{at}: grok needs match = {{ field = ['PATTERN', ...] }}", source)
    defs = _table(options.get("pattern_definitions"), at, "pattern_definitions", source)
    base = _base_dir(source)
    dirs = [d if os.path.isabs(d) else str(base / d)
            for d in _strings(options.get("patterns_dir", []), at, "patterns_dir", source)]
    ecs = options.get("ecs_compatibility", "disabled") not in ("disabled", None)
    timeout = float(options.get("timeout_millis", 250)) / 1000
    break_on_match = bool(options.get("break_on_match", True))
    matchers = []
    try:
        for ref, patterns in match.items():
            pats = _strings(patterns, at, f"grok match of {ref!r}", source)
            groups = [pats] if break_on_match else [[p] for p in pats]
            matchers.append((ref, [Matcher(g, dict(defs), dirs, timeout=timeout, source=source,
                                           ecs=ecs, watchdog=False).match for g in groups]))
    except GrokError as exc:
        raise ConfigError(f"{at}: grok: {exc}", source) from None
    return st.grok_step(matchers,
                        _strings(options.get("overwrite", []), at, "overwrite", source),
                        break_on_match,
                        _strings(options.get("tag_on_failure", ["_grokparsefailure"]), at,
                                 "tag_on_failure", source),
                        bool(options.get("keep_empty_captures", False)),
                        _matched(options, at, source))


def _kv(options: dict, at: str, source: str):
    _check_options(options, KV_OPTIONS, "kv", at, source)
    for key in ("include_keys", "exclude_keys"):
        if key in options:
            options[key] = _strings(options[key], at, key, source)
    for key in ("field_split_pattern", "value_split_pattern"):
        if key in options:
            _check_regex(str(options[key]), at, f"kv {key}", source)
    for key in ("transform_key", "transform_value"):
        if key in options and options[key] not in ("lowercase", "uppercase", "capitalize"):
            raise ConfigError(f"{at}: kv {key} must be lowercase, uppercase or capitalize",
                              source)
    try:
        return st.kv_step(options, _matched(options, at, source))
    except Exception as exc:   # a split or trim set that makes no regular expression
        raise ConfigError(f"{at}: kv: {exc}", source) from None


def _translate(options: dict, at: str, source: str):
    _check_options(options, TRANSLATE_OPTIONS, "translate", at, source)
    src = options.get("source", options.get("field"))
    if not isinstance(src, str):
        raise ConfigError(f"{at}: translate needs source = 'FIELD'", source)
    target = str(options.get("target", options.get("destination", "translation")))
    dictionary = dict(_table(options.get("dictionary"), at, "dictionary", source))
    if "dictionary_path" in options:
        path = Path(str(options["dictionary_path"]))
        if not path.is_absolute():
            path = _base_dir(source) / path
        dictionary.update(load_dictionary(path, at, source))
    if not dictionary:
        raise ConfigError(f"{at}: translate needs dictionary = {{...}} or dictionary_path",
                          source)
    use_regex = bool(options.get("regex", False))
    if use_regex:
        for key in dictionary:
            _check_regex(str(key), at, "translate dictionary key", source)
    fallback = options.get("fallback")
    return st.translate_step(src, target, dictionary, bool(options.get("exact", True)),
                             use_regex, None if fallback is None else str(fallback),
                             bool(options.get("override", False)), _matched(options, at, source))


def load_dictionary(path: Path, at: str, source: str) -> dict:
    """A translate dictionary file: JSON (an object), CSV (key,value rows) or YAML (one
    ``key: value`` per line, quotes optional: the flat form translate dictionaries take)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{at}: cannot read dictionary_path: {exc.strerror}", str(path)) \
            from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON: {exc}", str(path)) from None
        if not isinstance(data, dict):
            raise ConfigError("a JSON dictionary must be one object", str(path))
        return data
    if suffix == ".csv":
        out = {}
        for n, row in enumerate(csv.reader(text.splitlines()), 1):
            if not row:
                continue
            if len(row) != 2:
                raise ConfigError(f"a CSV dictionary row needs key,value (got {len(row)} "
                                  f"columns)", str(path), n)
            out[row[0]] = row[1]
        return out
    if suffix in (".yml", ".yaml"):
        out = {}
        for n, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped == "---":
                continue
            m = re.fullmatch(r"""("(?:[^"\\]|\\.)*"|'[^']*'|[^:#]+?)\s*:\s*(.*?)\s*""", stripped)
            if m is None:
                raise ConfigError("a YAML dictionary line must be 'key: value'", str(path), n)
            out[_unquote(m.group(1))] = _unquote(m.group(2))
        return out
    raise ConfigError(f"{at}: dictionary_path must end in .json, .csv, .yml or .yaml",
                      str(path))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text
