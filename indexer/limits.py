"""The indexer's bounds on one record (``[limits]`` of the pipeline config,
:class:`indexer.pipeline_config.Limits`).

logpipe's shipper cuts lines at 1 MiB, but the broker list takes whatever any client pushes: a
record of 100,000 fields, a 50 MB line. Each record is measured alone, and one over a bound is
either dead-lettered with the bound in its reason (``oversize = "dead-letter"``, the default) or
cut to fit, tagged ``_truncated`` and stored (``oversize = "truncate"``); its neighbours in the
batch are stored either way.

* ``max_record_bytes``: the item as it was on the list. Dead-letter mode refuses a larger item
  before reading it (stage ``decode``); truncate mode reads it, and after the other cuts drops
  fields from the end of the event until it fits.
* ``max_line_bytes``: the line (stage ``decode``: measured before parsing, so grok never sees a
  larger one), and any one text value of the event (stage ``parse``). Truncate mode cuts each at
  that many bytes (never inside a UTF-8 character).
* ``max_fields``: the fields of the event after parsing (``kv`` or ``json`` filters can make
  many of one line), nested ones included (stage ``parse``). Truncate mode keeps the record's
  own fields (``@timestamp``, ``message``, ``host``...) and the first others that fit.
"""

from __future__ import annotations

import orjson

from logpipe.common.errors import OversizeError
from logpipe.common.record import Record
from logpipe.indexer.pipeline_config import Limits
from logpipe.store.base import Event

TRUNCATED_TAG = "_truncated"
# the event's fields the pipeline sets from the record itself: never dropped to fit
_OWN = frozenset(("@timestamp", "message", "host", "path", "type", "offset", "received_at",
                  "tags"))


def check_item(raw, limits: Limits) -> None:
    """Refuse an item over ``max_record_bytes`` before it is read (dead-letter mode only)."""
    size = len(raw)
    if size > limits.max_record_bytes and not limits.truncate:
        raise OversizeError(f"the record is {size:,} bytes; the indexer takes at most "
                            f"{limits.max_record_bytes:,} ([limits] max_record_bytes)")


def bound_line(record: Record, limits: Limits) -> None:
    """The record's line within ``max_line_bytes``: refused, or cut and tagged."""
    line, most = record.line, limits.max_line_bytes
    if len(line) * 4 <= most:  # (the usual case: no UTF-8 text of it can be larger)
        return
    size = len(line.encode("utf-8", "surrogatepass"))
    if size <= most:
        return
    if not limits.truncate:
        raise OversizeError(f"the line is {size:,} bytes; the indexer takes at most {most:,} "
                            f"([limits] max_line_bytes)")
    record.line = _cut(line, most)
    _tag(record.tags)


def bound_event(event: Event, limits: Limits, item_size: int) -> None:
    """The event within ``max_fields`` (and, for an item larger than ``max_line_bytes``, every
    text within it; for one over ``max_record_bytes`` in truncate mode, the whole): refused,
    or cut and tagged. ``item_size`` is the size of the item it came from."""
    doc = event.doc
    most = limits.max_fields
    if item_size <= limits.max_line_bytes and len(doc) <= most and _count(doc, most) <= most:
        return  # (the usual case: nothing to measure further)
    truncate = limits.oversize == "truncate"
    cut = False
    if item_size > limits.max_line_bytes:  # (a smaller item has no larger text to cut)
        cut = _bound_texts(doc, limits)
    count = _count(doc, most)
    if count > most:
        if not truncate:
            raise OversizeError(f"the event has {count:,} fields or more; the indexer takes at "
                                f"most {most:,} ([limits] max_fields)")
        _keep_fields(doc, most)
        cut = True
    if truncate and item_size > limits.max_record_bytes:
        cut = _fit_bytes(doc, limits.max_record_bytes) or cut
    if cut:
        tags = doc.get("tags")
        if not isinstance(tags, list):
            tags = doc["tags"] = [] if tags is None else [tags]
        _tag(tags)


def _tag(tags: list) -> None:
    if TRUNCATED_TAG not in tags:
        tags.append(TRUNCATED_TAG)


def _cut(text: str, most: int) -> str:
    """``text`` cut to at most ``most`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8", "surrogatepass")[:most].decode("utf-8", "ignore")


def _count(value: dict, budget: int) -> int:
    """The fields of an object, nested objects' (in lists too) included; stops counting once
    past ``budget``."""
    n = len(value)
    if n > budget:
        return n
    for item in value.values():
        kind = item.__class__
        if kind is dict:
            n += _count(item, budget - n)
        elif kind is list:
            for element in item:
                if element.__class__ is dict:
                    n += _count(element, budget - n)
                    if n > budget:
                        return n
        else:
            continue
        if n > budget:
            return n
    return n


def _bound_texts(value, limits: Limits) -> bool:
    """Every text in ``value`` (an object or a list, walked in place) within max_line_bytes:
    refused, or cut. Returns whether anything was cut."""
    most, cut = limits.max_line_bytes, False
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items):
        if isinstance(item, str):
            if len(item) * 4 > most:
                size = len(item.encode("utf-8", "surrogatepass"))
                if size > most:
                    if not limits.truncate:
                        raise OversizeError(f"field {key!r} is {size:,} bytes; the indexer "
                                            f"takes at most {most:,} in one value ([limits] "
                                            f"max_line_bytes)")
                    value[key] = _cut(item, most)
                    cut = True
        elif isinstance(item, (dict, list)):
            cut = _bound_texts(item, limits) or cut
    return cut


def _keep_fields(doc: dict, most: int) -> None:
    """Drop the fields after the first ones that fit ``most`` (the record's own always stay;
    an object that does not fit whole goes whole)."""
    used = sum(1 for key in doc if key in _OWN)
    for key in list(doc):
        if key in _OWN:
            continue
        value = doc[key]
        need = 1 + (_count(value, most) if type(value) is dict else
                    sum(_count(e, most) for e in value if type(e) is dict)
                    if type(value) is list else 0)
        if used + need <= most:
            used += need
        else:
            del doc[key]


def _json_size(key: str, value) -> int:
    try:
        return len(orjson.dumps({key: value}))
    except TypeError:  # (a value no store can hold: the store refuses it later, by itself)
        return len(repr(value)) + len(key)


def _fit_bytes(doc: dict, most: int) -> bool:
    """Drop fields from the end (not the record's own) until the event's JSON fits ``most``
    bytes; returns whether any was dropped."""
    sizes = {key: _json_size(key, value) for key, value in doc.items()}
    total = sum(sizes.values())
    dropped = False
    for key in reversed(list(doc)):
        if total <= most:
            break
        if key in _OWN:
            continue
        total -= sizes[key]
        del doc[key]
        dropped = True
    return dropped


__all__ = ["TRUNCATED_TAG", "bound_event", "bound_line", "check_item"]
