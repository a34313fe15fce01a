"""Logstash field references on an event (a dict): ``name`` is a top-level key (dots and all,
as in Logstash), ``[a][b]`` the key ``b`` inside the object ``a``; ``[@metadata][x]`` is an
ordinary nested key here that the pipeline removes before the event is stored. ``%{[a][b]}`` in
a text (add_field, add_tag, replace, ...) is replaced by the field's value (Logstash's sprintf);
a reference to a missing field stays as written, as Logstash leaves it.
"""

from __future__ import annotations

import re

from logpipe.common.errors import ConfigError

_PART = re.compile(r"\[([^\[\]]+)\]")
_SPRINTF = re.compile(r"%\{([^{}]+)\}")
_MISSING = object()
_PATHS: dict[str, tuple[str, ...]] = {}


def path(ref: str) -> tuple[str, ...]:
    """The keys a reference walks: ``'[a][b]'`` -> ``('a', 'b')``, ``'a'`` -> ``('a',)``."""
    got = _PATHS.get(ref)
    if got is not None:
        return got
    text = ref.strip()
    if text.startswith("["):
        parts = _PART.findall(text)
        if not parts or "".join(f"[{p}]" for p in parts) != text:
            raise ConfigError(f"cannot read the field reference {ref!r} (write [a][b] or a name)")
        got = tuple(parts)
    elif not text:
        raise ConfigError("an empty field reference")
    else:
        got = (text,)
    if len(_PATHS) < 4096:
        _PATHS[ref] = got
    return got


def get(doc: dict, ref: str, default=None):
    if ref[:1] != "[":   # a plain name: the common case, without walking
        return doc.get(ref, default)
    keys = path(ref)
    node = doc
    for key in keys:
        if not isinstance(node, dict):
            return default
        node = node.get(key, _MISSING)
        if node is _MISSING:
            return default
    return node


def has(doc: dict, ref: str) -> bool:
    return get(doc, ref, _MISSING) is not _MISSING


def put(doc: dict, ref: str, value) -> None:
    """Set the field, making the objects on its way (a non-object on the way is replaced)."""
    if ref[:1] != "[":
        doc[ref.strip()] = value
        return
    keys = path(ref)
    node = doc
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def pop(doc: dict, ref: str, default=None):
    keys = path(ref)
    node: object = doc
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return default
    return node.pop(keys[-1], default)


def text_of(value) -> str:
    """A value as Logstash's sprintf writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(text_of(v) for v in value)
    if isinstance(value, dict):
        import orjson
        return orjson.dumps(value).decode()
    return str(value)


def sprintf(doc: dict, text: str) -> str:
    """``%{field}`` / ``%{[a][b]}`` replaced by the field's value; unknown ones stay."""
    if "%{" not in text:
        return text

    def one(m: re.Match) -> str:
        ref = m.group(1)
        try:
            value = get(doc, ref, _MISSING)
        except ConfigError:
            return m.group(0)
        return m.group(0) if value is _MISSING or value is None else text_of(value)
    return _SPRINTF.sub(one, text)
