"""A type's filters: what runs on an event after grok and the field edits, in order, each one
optionally under a condition (``when``, a query in the search syntax: Logstash's ``if``).

    [[types.app.filter]]
    kv = { source = "message", field_split = " ", value_split = "=", target = "params" }
    [[types.app.filter]]
    when = 'level:DEBUG'
    drop = {}

Kinds (Logstash's filter of the same name): ``kv``, ``dissect`` (``mapping = {field = "%{a}
%{b}"}``), ``json`` (``source``, ``target``), ``drop``, ``mutate`` (``lowercase``,
``uppercase``, ``strip``, ``gsub = [field, regex, replacement, ...]``, ``split = {field = sep}``,
``rename``, ``convert``, ``add_field``, ``remove_field``), ``add_tag = [...]``, ``date``
(``field``, ``formats``, ``timezone``, ``target``: the type's ``[date]`` section's options, for a
date that applies only under its condition, as Logstash's ``date`` inside an ``if``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

from logpipe.common.errors import ConfigError

KINDS = ("kv", "dissect", "json", "drop", "mutate", "add_tag", "date")
_DATE_OPTIONS = ("field", "formats", "timezone", "target")
_MUTATE_OPS = ("rename", "convert", "gsub", "lowercase", "uppercase", "strip", "split",
               "add_field", "remove_field")
_DISSECT_KEY = re.compile(r"%\{([^}]*)\}")


@dataclass(frozen=True)
class Filter:
    kind: str
    options: dict = field(default_factory=dict)
    when: str | None = None
    query: object = None
    dissect: tuple = ()   # compiled mappings: (source field, regex, keys)


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


def parse_filters(items, where: str, source: str) -> list[Filter]:
    out = []
    for n, item in enumerate(config_tables(items, "filter", where, source), 1):
        at = f"{where} filter {n}"
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a table", source)
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
        if kind == "mutate":
            unknown = [k for k in options if k not in _MUTATE_OPS]
            if unknown:
                raise ConfigError(f"{at}: mutate option(s) {', '.join(unknown)} not supported "
                                  f"(use {', '.join(_MUTATE_OPS)})", source)
        if kind == "date":
            unknown = [k for k in options if k not in _DATE_OPTIONS]
            if unknown or not isinstance(options.get("field", "timestamp"), str) or \
                    not isinstance(options.get("formats", []), list):
                raise ConfigError(f"{at}: date takes field = 'NAME', formats = [...], timezone, "
                                  f"target" + (f" (not {', '.join(unknown)})" if unknown else ""),
                                  source)
            if "timezone" in options:
                from logpipe.indexer.enrich import zone
                try:
                    zone(str(options["timezone"]))
                except ConfigError as exc:
                    raise ConfigError(f"{at}: {exc}", source) from None
        dissect: tuple = ()
        if kind == "dissect":
            mapping = options.get("mapping", {})
            if not isinstance(mapping, dict) or not mapping:
                raise ConfigError(f"{at}: dissect needs mapping = {{field = 'pattern'}}", source)
            dissect = tuple((f, *_dissect_regex(str(p), at, source))
                            for f, p in mapping.items())
            if not isinstance(options.get("append_separator", " "), str):
                raise ConfigError(f"{at}: dissect append_separator must be a string", source)
        when = item.get("when")
        query = compile_when(when, at, source) if when is not None else None
        out.append(Filter(kind, dict(options), when, query, dissect))
    return out


def _put(doc: dict, target: str | None, name: str, value) -> None:
    if target:
        node = doc.setdefault(target, {})
        if isinstance(node, dict):
            node[name] = value
            return
    doc[name] = value


def _kv(doc: dict, opts: dict) -> None:
    text = doc.get(opts.get("source", "message"))
    if not isinstance(text, str):
        return
    fsplit = re.escape(opts.get("field_split", " "))
    vsplit = opts.get("value_split", "=")
    prefix, target = opts.get("prefix", ""), opts.get("target")
    for pair in re.split(f"[{fsplit}]+", text):
        if not pair:
            continue
        at = min((i for i in (pair.find(c) for c in vsplit) if i > 0), default=-1)
        if at <= 0:
            continue
        key, value = pair[:at], pair[at + 1:]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        _put(doc, target, prefix + key, value)


def _mutate(doc: dict, opts: dict, tags: list) -> None:
    from logpipe.indexer.enrich import convert
    for old, new in (opts.get("rename") or {}).items():
        if old in doc:
            doc[new] = doc.pop(old)
    for name, kind in (opts.get("convert") or {}).items():
        if name in doc:
            try:
                doc[name] = convert(doc[name], kind)
            except (TypeError, ValueError):
                tags.append("_convertfailure")
    gsub = list(opts.get("gsub") or [])
    for k in range(0, len(gsub) - 2, 3):
        name, pattern, repl = gsub[k:k + 3]
        if isinstance(doc.get(name), str):
            doc[name] = re.sub(pattern, re.sub(r"\\(\d)", r"\\g<\1>", repl), doc[name])
    for key, fn in (("lowercase", str.lower), ("uppercase", str.upper), ("strip", str.strip)):
        for name in opts.get(key) or []:
            if isinstance(doc.get(name), str):
                doc[name] = fn(doc[name])
    for name, sep in (opts.get("split") or {}).items():
        if isinstance(doc.get(name), str):
            doc[name] = doc[name].split(sep)
    for name, value in (opts.get("add_field") or {}).items():
        doc[name] = value
    for name in opts.get("remove_field") or []:
        doc.pop(name, None)


def apply_filters(filters: list[Filter], doc: dict, tags: list) -> bool:
    """Run the filters on the event; False when one of them drops it."""
    from logpipe.query.evaluate import matches
    for f in filters:
        if f.query is not None and not matches(f.query, {**doc, "tags": tags}):
            continue
        if f.kind == "drop":
            return False
        if f.kind == "add_tag":
            tags.extend(t for t in f.options["tags"] if t not in tags)
        elif f.kind == "kv":
            _kv(doc, f.options)
        elif f.kind == "json":
            raw = doc.get(f.options.get("source", "message"))
            try:
                parsed = orjson.loads(raw) if isinstance(raw, (str, bytes)) else None
            except orjson.JSONDecodeError:
                parsed = None
                tags.append("_jsonparsefailure")
            if isinstance(parsed, dict):
                target = f.options.get("target")
                if target:
                    doc[target] = parsed
                else:
                    doc.update(parsed)
        elif f.kind == "dissect":
            for source_field, rx, keys in f.dissect:
                value = doc.get(source_field)
                m = rx.match(value) if isinstance(value, str) else None
                if m is None:
                    if "_dissectfailure" not in tags:
                        tags.append("_dissectfailure")
                    continue
                doc.update(_dissect_values(doc, keys, m.groups(),
                                           f.options.get("append_separator", " ")))
        elif f.kind == "mutate":
            _mutate(doc, f.options, tags)
        elif f.kind == "date":
            _date(doc, f.options, tags)
    return True


def _date(doc: dict, opts: dict, tags: list) -> None:
    """The date filter: the field's time (read with the formats, in the timezone: the record's
    own ``timezone`` field first, as for the type's date) into the target, ``@timestamp`` by
    default; a value none of the formats reads tags ``_dateparsefailure``."""
    from logpipe.indexer.enrich import format_timestamp, parse_time, received_datetime, zone
    raw = doc.get(opts.get("field", "timestamp"))
    if not isinstance(raw, str):
        return
    received = received_datetime(doc.get("received_at") or 0)
    tz = zone(str(doc.get("timezone") or opts.get("timezone") or "UTC"))
    parsed = parse_time(raw, list(opts.get("formats") or ["syslog", "ISO8601"]), received, tz)
    if parsed is None:
        if "_dateparsefailure" not in tags:
            tags.append("_dateparsefailure")
        return
    doc[opts.get("target", "@timestamp")] = format_timestamp(parsed)
