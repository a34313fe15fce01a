"""The steps of a type's chain: what runs on one event, in the order the config says, as the
filters of a Logstash filter block run.

A step is a callable ``step(doc, tags) -> bool`` on the event being built (``doc``) and its tags;
False means the event was dropped (nothing after it runs, nothing is stored). The builders here
take options already checked by :mod:`indexer.filters` (which reads them from the TOML) and
return such callables:

``grok_step``, ``kv_step``, ``mutate_step``, ``date_step``, ``dissect_step``, ``json_step``,
``drop_step``, ``translate_step``, ``tag_step``, ``if_step`` (if / else if / else on Logstash
conditions), ``when_step`` (a step under a query in the search syntax). ``on_success`` wraps a
step with the options every Logstash filter has (``add_field``, ``add_tag``, ``remove_field``,
``remove_tag``), applied when the filter succeeded.

Every regular expression here runs with a time bound (the ``regex`` module's timeout): a value
that would backtrack for ever costs one record its step (tagged ``_regextimeout`` for gsub, kv
and translate) and never stalls the worker.
"""

from __future__ import annotations

import re
from typing import Callable

import orjson
import regex

from logpipe.indexer import fieldref
from logpipe.indexer.enrich import (format_timestamp, parse_value, received_datetime,
                                    zone)

Step = Callable[[dict, list], bool]
REGEX_TIMEOUT = 0.25
REGEX_TIMEOUT_TAG = "_regextimeout"
_MISSING = object()


def _tag(tags: list, tag: str) -> None:
    if tag not in tags:
        tags.append(tag)


# --- the options every filter has ------------------------------------------------------------

def common_actions(opts: dict) -> Callable[[dict, list], None] | None:
    """Logstash's filter_matched: add_field, add_tag, then remove_field, remove_tag (values
    and names may hold %{field} references)."""
    add_field = list((opts.get("add_field") or {}).items())
    add_tag = list(opts.get("add_tag") or [])
    remove_field = list(opts.get("remove_field") or [])
    remove_tag = list(opts.get("remove_tag") or [])
    if not (add_field or add_tag or remove_field or remove_tag):
        return None

    def matched(doc: dict, tags: list) -> None:
        for name, value in add_field:
            name = fieldref.sprintf(doc, name)
            value = fieldref.sprintf(doc, value) if isinstance(value, str) else value
            old = fieldref.get(doc, name, _MISSING)
            if old is _MISSING or old is None:
                fieldref.put(doc, name, value)
            elif isinstance(old, list):
                old.append(value)
            else:   # add_field to a field that exists: both values, as Logstash keeps them
                fieldref.put(doc, name, [old, value])
        for tag in add_tag:
            _tag(tags, fieldref.sprintf(doc, tag))
        for name in remove_field:
            fieldref.pop(doc, fieldref.sprintf(doc, name))
        for tag in remove_tag:
            tag = fieldref.sprintf(doc, tag)
            while tag in tags:
                tags.remove(tag)
    return matched


# --- grok ------------------------------------------------------------------------------------

def grok_step(matchers: list[tuple[str, list]], overwrite: list[str], break_on_match: bool,
              tag_on_failure: list[str], keep_empty: bool,
              matched: Callable[[dict, list], None] | None) -> Step:
    """``matchers``: (field reference, [match functions]) in the config's order; each match
    function is a grok Matcher's ``match`` (line -> (captures, failure tags)). With
    break_on_match (the default) the first pattern that matches ends the step; without it every
    pattern of every field is tried and all their captures kept. A capture into a field the
    event has already (and ``overwrite`` does not name) is added to it (a list of both), as
    Logstash's grok does."""
    overwritten = frozenset(overwrite)

    def apply(doc: dict, captures: dict) -> None:
        for name, value in captures.items():
            if not keep_empty and (value is None or value == ""):
                continue
            old = fieldref.get(doc, name, _MISSING) if name not in overwritten else _MISSING
            if old is _MISSING or old is None:
                fieldref.put(doc, name, value)
            elif isinstance(old, list):
                old.append(value)
            else:
                fieldref.put(doc, name, [old, value])

    def step(doc: dict, tags: list) -> bool:
        success = False
        timed_out = False
        for ref, matches in matchers:
            value = fieldref.get(doc, ref, _MISSING)
            if value is _MISSING or value is None:
                continue
            texts = value if isinstance(value, list) else [value]
            for match in matches:
                for text in texts:
                    captures, failure = match(text if isinstance(text, str) else
                                              fieldref.text_of(text))
                    if captures is not None:
                        apply(doc, captures)
                        success = True
                        break
                    if failure and failure[0] == "_groktimeout":
                        timed_out = True
                if success and break_on_match:
                    break
            if success and break_on_match:
                break
        if success:
            if matched is not None:
                matched(doc, tags)
        elif timed_out:
            _tag(tags, "_groktimeout")
        else:
            for tag in tag_on_failure:
                _tag(tags, tag)
        return True
    return step


# --- kv --------------------------------------------------------------------------------------

def _char_class(chars: str) -> str:
    """A Logstash kv option that Logstash puts inside [...] (field_split, value_split,
    trim_value, trim_key), as the inside of a class."""
    return "".join("\\" + c if c in "]\\^-[" else c for c in chars)


def kv_step(opts: dict, matched) -> Step:
    """Logstash's kv: key/value pairs of the source field (``message`` by default). Keys run up
    to ``value_split`` (any of its characters, blanks around it allowed), values up to
    ``field_split``; a value in quotes, or with ``include_brackets`` (the default) in (), [] or
    <>, may hold the separators and loses its wrapping. ``trim_value``/``trim_key`` strip those
    characters from both ends, ``include_keys``/``exclude_keys`` select, ``prefix`` is put
    before each key, ``target`` holds them all, a key seen twice keeps every value (a list)."""
    source = opts.get("source", "message")
    target = opts.get("target")
    prefix = opts.get("prefix", "")
    fs = opts.get("field_split_pattern")
    vs = opts.get("value_split_pattern")
    fsc = _char_class(opts.get("field_split", " "))
    vsc = _char_class(opts.get("value_split", "="))
    key_rx = f"(?:(?!{vs}){'(?!' + fs + ')' if fs else ''}.)+?" if vs else \
        (f"(?:(?!{fs})[^{vsc}])+" if fs else f"[^{fsc}{vsc}]+")
    split_rx = f"\\s*(?:{vs})\\s*" if vs else f"\\s*[{vsc}]\\s*"
    wrapped = ['"([^"]+)"', "'([^']+)'"]
    if opts.get("include_brackets", True):
        wrapped += [r"\(([^)]+)\)", r"\[([^\]]+)\]", "<([^>]+)>"]
    plain = f"((?:(?!{fs}).)+)" if fs else f"([^{fsc}]+)"
    value_rx = "(?:" + "|".join(wrapped) + "|" + plain + ")"
    scan = regex.compile(f"({key_rx}){split_rx}{value_rx}", regex.S)
    trim_value = regex.compile(f"^[{_char_class(opts['trim_value'])}]+|"
                               f"[{_char_class(opts['trim_value'])}]+$") \
        if opts.get("trim_value") else None
    trim_key = regex.compile(f"^[{_char_class(opts['trim_key'])}]+|"
                             f"[{_char_class(opts['trim_key'])}]+$") \
        if opts.get("trim_key") else None
    include = frozenset(opts.get("include_keys") or ())
    exclude = frozenset(opts.get("exclude_keys") or ())
    allow_duplicates = opts.get("allow_duplicate_values", True)
    transform_key = _TRANSFORMS.get(opts.get("transform_key", ""))
    transform_value = _TRANSFORMS.get(opts.get("transform_value", ""))
    defaults = dict(opts.get("default_keys") or {})

    def step(doc: dict, tags: list) -> bool:
        text = fieldref.get(doc, source)
        if not isinstance(text, str):
            return True
        found: dict = {}
        pos = 0
        try:
            while True:
                m = scan.search(text, pos, timeout=REGEX_TIMEOUT)
                if m is None:
                    break
                pos = m.end() if m.end() > m.start() else m.start() + 1
                key = m.group(1)
                value = next(g for g in m.groups()[1:] if g is not None)
                if trim_key is not None:
                    key = trim_key.sub("", key, timeout=REGEX_TIMEOUT)
                if trim_value is not None:
                    value = trim_value.sub("", value, timeout=REGEX_TIMEOUT)
                if transform_key:
                    key = transform_key(key)
                if transform_value:
                    value = transform_value(value)
                if not key or (include and key not in include) or key in exclude:
                    continue
                if key in found:
                    old = found[key]
                    if not allow_duplicates and (value == old or
                                                 isinstance(old, list) and value in old):
                        continue
                    found[key] = (old if isinstance(old, list) else [old]) + [value]
                else:
                    found[key] = value
        except TimeoutError:
            _tag(tags, REGEX_TIMEOUT_TAG)
            return True
        for key, value in defaults.items():
            found.setdefault(key, value)
        if not found:   # as Logstash's kv: no pair, no target, no add_/remove_ actions
            return True
        if target:
            node = fieldref.get(doc, target)
            if not isinstance(node, dict):
                node = {}
                fieldref.put(doc, target, node)
            for key, value in found.items():
                node[prefix + key] = value
        else:
            for key, value in found.items():
                doc[prefix + key] = value
        if matched is not None:
            matched(doc, tags)
        return True
    return step


_TRANSFORMS = {"lowercase": str.lower, "uppercase": str.upper, "capitalize": str.capitalize}


# --- mutate ----------------------------------------------------------------------------------

_TRUE = frozenset(("true", "t", "yes", "y", "1", "1.0"))
_FALSE = frozenset(("false", "f", "no", "n", "0", "0.0"))
_INT_PREFIX = re.compile(r"\s*[+-]?\d+(?:\.\d*)?\s*$")


def convert_value(value, kind: str):
    """mutate's convert of one value (a list: each element); ValueError when it cannot."""
    if kind == "integer" and value.__class__ is str:
        try:
            return int(value)    # the common case: digits
        except ValueError:
            pass
    if isinstance(value, list):
        return [convert_value(v, kind) for v in value]
    if kind == "string":
        return fieldref.text_of(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(value, bool):
        return int(value) if kind.startswith("integer") else float(value)
    if isinstance(value, (int, float)):
        return int(value) if kind.startswith("integer") else float(value)
    text = str(value)
    if kind.endswith("_eu"):
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", "") if kind.startswith("integer") else text
    if kind.startswith("integer"):
        if not _INT_PREFIX.match(text):
            raise ValueError(f"not an integer: {value!r}")
        return int(float(text))
    return float(text)


def _each_text(value, fn):
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [fn(v) if isinstance(v, str) else v for v in value]
    return value


def mutate_step(ops: dict, matched) -> Step:
    """Logstash's mutate, its operations in Logstash's fixed order whatever order the config
    writes them in: coerce, rename, update, replace, convert, gsub, uppercase, capitalize,
    lowercase, strip, split, join, merge, copy; then add_field / add_tag / remove_field /
    remove_tag. A convert that cannot be done tags ``_convertfailure`` and leaves the value."""
    coerce = list((ops.get("coerce") or {}).items())
    rename = list((ops.get("rename") or {}).items())
    update = list((ops.get("update") or {}).items())
    replace = list((ops.get("replace") or {}).items())
    convert = [(f, _CONVERT_KINDS[k]) for f, k in (ops.get("convert") or {}).items()]
    gsub = []
    raw = list(ops.get("gsub") or [])
    for k in range(0, len(raw) - 2, 3):
        name, pattern, repl = raw[k:k + 3]
        gsub.append((name, regex.compile(pattern), _ruby_replacement(repl)))
    cases = [(str.upper, list(ops.get("uppercase") or [])),
             (str.capitalize, list(ops.get("capitalize") or [])),
             (str.lower, list(ops.get("lowercase") or [])),
             (str.strip, list(ops.get("strip") or []))]
    cases = [(fn, names) for fn, names in cases if names]
    split = list((ops.get("split") or {}).items())
    join = list((ops.get("join") or {}).items())
    merge = list((ops.get("merge") or {}).items())
    copy = list((ops.get("copy") or {}).items())

    present = (coerce or rename or update or replace, convert, gsub or cases,
               split or join or merge or copy)

    def step(doc: dict, tags: list) -> bool:
        if present[0]:
            edit_first(doc)
        for name, kind in convert:
            if name[:1] != "[":
                value = doc.get(name)
                if value is None:
                    continue
                try:
                    doc[name] = convert_value(value, kind)
                except (TypeError, ValueError):
                    _tag(tags, "_convertfailure")
                continue
            value = fieldref.get(doc, name)
            if value is None:
                continue
            try:
                fieldref.put(doc, name, convert_value(value, kind))
            except (TypeError, ValueError):
                _tag(tags, "_convertfailure")
        if present[2]:
            edit_text(doc, tags)
        if present[3]:
            edit_shape(doc)
        if matched is not None:
            matched(doc, tags)
        return True

    def edit_first(doc: dict) -> None:
        for name, default in coerce:
            if fieldref.has(doc, name) and fieldref.get(doc, name) is None:
                fieldref.put(doc, name, fieldref.sprintf(doc, default)
                             if isinstance(default, str) else default)
        for old, new in rename:
            value = fieldref.pop(doc, old, _MISSING)
            if value is not _MISSING:
                fieldref.put(doc, fieldref.sprintf(doc, new), value)
        for name, value in update:
            if fieldref.has(doc, name):
                fieldref.put(doc, name, fieldref.sprintf(doc, value)
                             if isinstance(value, str) else value)
        for name, value in replace:
            fieldref.put(doc, name, fieldref.sprintf(doc, value)
                         if isinstance(value, str) else value)

    def edit_text(doc: dict, tags: list) -> None:
        for name, rx, repl in gsub:
            value = fieldref.get(doc, name)
            if isinstance(value, (str, list)):
                try:
                    fieldref.put(doc, name, _each_text(
                        value, lambda v: rx.sub(repl, v, timeout=REGEX_TIMEOUT)))
                except TimeoutError:
                    _tag(tags, REGEX_TIMEOUT_TAG)
        for fn, names in cases:
            for name in names:
                value = fieldref.get(doc, name)
                if isinstance(value, (str, list)):
                    fieldref.put(doc, name, _each_text(value, fn))

    def edit_shape(doc: dict) -> None:
        for name, sep in split:
            value = fieldref.get(doc, name)
            if isinstance(value, str):
                fieldref.put(doc, name, value.split(sep) if sep else list(value))
        for name, sep in join:
            value = fieldref.get(doc, name)
            if isinstance(value, list):
                fieldref.put(doc, name, sep.join(fieldref.text_of(v) for v in value))
        for dest, added in merge:
            if not fieldref.has(doc, added):
                continue
            extra = fieldref.get(doc, added)
            base = fieldref.get(doc, dest, _MISSING)
            if base is _MISSING:
                continue
            if isinstance(base, dict) and isinstance(extra, dict):
                base.update(extra)
                continue
            base = base if isinstance(base, list) else [base]
            fieldref.put(doc, dest, base + (extra if isinstance(extra, list) else [extra]))
        for src, dst in copy:
            value = fieldref.get(doc, src, _MISSING)
            if value is not _MISSING:
                fieldref.put(doc, dst, orjson.loads(orjson.dumps(value))
                             if isinstance(value, (dict, list)) else value)
    return step


_CONVERT_KINDS = {"int": "integer", "integer": "integer", "integer_eu": "integer_eu",
                  "float": "float", "float_eu": "float_eu", "string": "string",
                  "bool": "boolean", "boolean": "boolean"}
CONVERT_KINDS = tuple(_CONVERT_KINDS)


def _ruby_replacement(repl: str) -> str:
    """A Ruby gsub replacement (``\\1``) as the regex module's (``\\g<1>``)."""
    return re.sub(r"\\(\d)", r"\\g<\1>", repl)


# --- date ------------------------------------------------------------------------------------

def date_step(field: str, formats: list[str], timezone: str | None, target: str,
              tag_on_failure: list[str], matched, locale: str | None = None) -> Step:
    """The date filter: the field's time read with the formats (Joda patterns, ISO8601,
    UNIX, UNIX_MS, TAI64N, syslog) in the timezone (the record's own ``timezone`` field first,
    as for the type's date) and the locale's month and day names into ``target``, as ISO 8601
    UTC. A missing field does nothing; a value none of the formats reads gets the failure tags,
    and so does a value that is not text or a number (a list, as grok makes of a name captured
    twice: Logstash's date filter does not read arrays)."""
    def step(doc: dict, tags: list) -> bool:
        raw = fieldref.get(doc, field)
        if raw is None:
            return True
        received = received_datetime(doc.get("received_at") or 0)
        tz = zone(str(doc.get("timezone") or timezone or "UTC"))
        parsed = parse_value(raw, formats, received, tz, locale)
        if parsed is None:
            for tag in tag_on_failure:
                _tag(tags, tag)
            return True
        fieldref.put(doc, target, format_timestamp(parsed))
        if matched is not None:
            matched(doc, tags)
        return True
    return step


# --- dissect, json, drop, translate, add_tag -------------------------------------------------

def dissect_step(mappings: tuple, separator: str, values_of, matched) -> Step:
    """``mappings``: (field, compiled regex, keys); ``values_of`` turns a match into fields."""
    def step(doc: dict, tags: list) -> bool:
        ok = True
        for source_field, rx, keys in mappings:
            value = fieldref.get(doc, source_field)
            m = rx.match(value) if isinstance(value, str) else None
            if m is None:
                _tag(tags, "_dissectfailure")
                ok = False
                continue
            for name, got in values_of(doc, keys, m.groups(), separator).items():
                fieldref.put(doc, name, got)
        if ok and matched is not None:
            matched(doc, tags)
        return True
    return step


def json_step(source: str, target: str | None, skip_invalid: bool, tag_on_failure: list[str],
              matched) -> Step:
    def step(doc: dict, tags: list) -> bool:
        raw = fieldref.get(doc, source)
        if not isinstance(raw, (str, bytes)):
            return True
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if not skip_invalid:
                for tag in tag_on_failure:
                    _tag(tags, tag)
            return True
        if target:
            fieldref.put(doc, target, parsed)
        elif isinstance(parsed, dict):
            doc.update(parsed)
        else:
            return True
        if matched is not None:
            matched(doc, tags)
        return True
    return step


def drop_step() -> Step:
    return lambda doc, tags: False


def tag_step(names: list[str]) -> Step:
    def step(doc: dict, tags: list) -> bool:
        for tag in names:
            _tag(tags, tag)
        return True
    return step


def translate_step(source: str, target: str, dictionary: dict, exact: bool, use_regex: bool,
                   fallback: str | None, override: bool, matched) -> Step:
    """Logstash's translate: the source field's value looked up in the dictionary (exact: the
    whole value; ``exact = false``: every key found inside the value is replaced; ``regex``: the
    first key that matches, as a regular expression, in the dictionary's order) into
    ``target``; no entry: ``fallback`` if given. A target the event has is kept unless
    ``override``."""
    table = {str(k): v for k, v in dictionary.items()}
    patterns = [(regex.compile(k), v) for k, v in table.items()] if use_regex else []
    inside = regex.compile("|".join(regex.escape(k) for k in sorted(table, key=len,
                                                                     reverse=True))) \
        if not exact and not use_regex and table else None

    def lookup(text: str):
        if use_regex:
            for rx, v in patterns:
                if (rx.fullmatch if exact else rx.search)(text, timeout=REGEX_TIMEOUT):
                    return v
            return _MISSING
        if exact:
            return table.get(text, _MISSING)
        if inside is None:
            return _MISSING
        out = inside.sub(lambda m: fieldref.text_of(table[m.group(0)]), text,
                         timeout=REGEX_TIMEOUT)
        return out if out != text else _MISSING

    def step(doc: dict, tags: list) -> bool:
        value = fieldref.get(doc, source, _MISSING)
        if value is _MISSING or value is None:
            return True
        if fieldref.has(doc, target) and not override:
            return True
        try:
            found = lookup(fieldref.text_of(value))
        except TimeoutError:
            _tag(tags, REGEX_TIMEOUT_TAG)
            return True
        if found is _MISSING:
            if fallback is not None:
                fieldref.put(doc, target, fieldref.sprintf(doc, fallback))
            return True
        fieldref.put(doc, target, fieldref.sprintf(doc, found) if isinstance(found, str)
                     else found)
        if matched is not None:
            matched(doc, tags)
        return True
    return step


# --- control ---------------------------------------------------------------------------------

def run_chain(steps: list, doc: dict, tags: list) -> bool:
    for step in steps:
        if not step(doc, tags):
            return False
    return True


def if_step(branches: list[tuple[Callable[[dict, list], bool], list]],
            otherwise: list) -> Step:
    """if / else if / else: the first branch whose condition holds runs its steps (the
    conditions are evaluated in turn, each when its turn comes, as Logstash does), else the
    ``otherwise`` steps."""
    def step(doc: dict, tags: list) -> bool:
        for test, steps in branches:
            if test(doc, tags):
                return run_chain(steps, doc, tags)
        return run_chain(otherwise, doc, tags)
    return step


def when_step(query, inner: Step) -> Step:
    """A step under a ``when`` query (the search syntax, evaluated on the event and its
    tags)."""
    from logpipe.query.evaluate import matches

    def step(doc: dict, tags: list) -> bool:
        if not matches(query, {**doc, "tags": tags}):
            return True
        return inner(doc, tags)
    return step
