"""Typed fields and the malformed-field rule every store applies the same way.

A few field names hold typed values in every store (IP addresses, integers: the classic Logstash
names the built-in pipelines produce). A value that does not fit its field's type (a masked relay
address such as ``123.456.789.1``, ``size=abc``) never makes its line unsearchable: the event is
stored, the value is kept as text in the document, but it is not indexed under its type, and the
event says so the same way on every store::

    {"relayip": "123.456.789.1", "_malformed": ["relayip"], "tags": [..., "_malformed_field"]}

``_malformed`` lists the fields (sorted) and is a keyword field: ``_malformed:relayip`` finds
them, ``tags:_malformed_field`` finds every such event. Elasticsearch does the "not indexed" part
with ``ignore_malformed`` on the template's typed fields (:mod:`store.elasticsearch.template`);
the embedded store keeps the value out of its columns and query paths
(:mod:`store.sqlite.writer`) and gives it back in the document it returns.
"""

from __future__ import annotations

import ipaddress
import re

import orjson

from logpipe.query.tree import INT64_MAX, INT64_MIN

MALFORMED_TAG = "_malformed_field"
MALFORMED_FIELD = "_malformed"
# where the embedded store keeps malformed values, out of every query's reach (store.sqlite)
HIDDEN_MALFORMED = "_malformed_source"
# the event id's doc-value copy on Elasticsearch (store.elasticsearch.template)
ID_COPY = "_logpipe_id"
# Elasticsearch's metadata fields: a document holding one at its root is refused
ES_METADATA = ("_id", "_index", "_source", "_routing", "_field_names", "_ignored",
               "_ignored_source", "_doc_count", "_seq_no", "_primary_term", "_version", "_tier",
               "_data_stream_timestamp", "_nested_path", "_size", "_feature")
# Names the stores use themselves at the top of a document: the pipeline never hands one over
# from a record or a filter (indexer.pipeline renames it: RESERVED_RENAMED + name), so what a
# search shows is what was stored (the reader gives ``_id`` the event id, the embedded store
# merges ``_malformed_source`` back into the document, a store writes ``_malformed``).
RESERVED_FIELDS = frozenset((MALFORMED_FIELD, HIDDEN_MALFORMED, ID_COPY) + ES_METADATA)
RESERVED_RENAMED = "input"  # _id -> input_id, _malformed_source -> input_malformed_source

# Fields that hold IP addresses in the built-in pipelines (classic Logstash names).
IP_FIELDS = ("clientip", "relayip", "rip", "lip", "ip", "src_ip", "dst_ip", "client_ip")
# Numbers that grok gives as strings unless typed; mapped explicitly so every index agrees.
LONG_FIELDS = ("size", "bytes", "response", "pid", "nrcpts", "offset", "in", "out", "port")
TYPED_FIELDS = {**{name: "ip" for name in IP_FIELDS}, **{name: "long" for name in LONG_FIELDS}}
_TYPED = frozenset(TYPED_FIELDS)

# what Elasticsearch coerces into a long: an integer, or a decimal (truncated), as a string too
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def _fits_long(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):
        return value == value and INT64_MIN <= value <= INT64_MAX  # not NaN, not infinite
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        return INT64_MIN <= float(value) <= INT64_MAX
    return False


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _fits_ip(value) -> bool:
    if type(value) is not str:
        return False
    if _IPV4.fullmatch(value):  # the common case, without ipaddress's cost
        return True
    if ":" not in value or "%" in value:  # not IPv6; or a zone id (Elasticsearch refuses it)
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_FITS = {"ip": _fits_ip, "long": _fits_long}


def fits(field: str, value) -> bool:
    """Whether a value can be indexed under its field's type (untyped fields take anything; a
    list fits when every element does; null is no value)."""
    kind = TYPED_FIELDS.get(field)
    if kind is None or value is None:
        return True
    check = _FITS[kind]
    if isinstance(value, list):
        return all(v is None or check(v) for v in value)
    return check(value)


def as_text(value) -> str:
    """A malformed value as text: strings as they are, anything else as its JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def mark_malformed(doc: dict) -> dict:
    """The document to store: ``doc`` itself when every typed field fits; otherwise a copy with
    each malformed value as text, ``_malformed`` listing those fields and ``_malformed_field`` in
    the tags. Cheap when no typed field is present (one set intersection)."""
    present = _TYPED.intersection(doc)
    if not present:
        return doc
    bad = None
    for name in present:
        value = doc[name]
        # the common cases inline: an int in a long field, a string in an IP field
        if type(value) is int and TYPED_FIELDS[name] == "long" and INT64_MIN <= value <= INT64_MAX:
            continue
        if not fits(name, value):
            bad = [name] if bad is None else bad + [name]
    if bad is None:
        return doc
    bad.sort()
    out = dict(doc)
    for name in bad:
        out[name] = as_text(doc[name])
    earlier = doc.get(MALFORMED_FIELD)  # marked before (a replayed event): keep those names
    if isinstance(earlier, list):
        bad = sorted(set(bad).union(v for v in earlier if isinstance(v, str)))
    out[MALFORMED_FIELD] = bad
    tags = doc.get("tags")
    tags = list(tags) if isinstance(tags, list) else ([] if tags is None else [tags])
    if MALFORMED_TAG not in tags:
        tags.append(MALFORMED_TAG)
    out["tags"] = tags
    return out
