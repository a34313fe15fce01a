from datetime import datetime, timezone

import orjson
import pytest

from logpipe.common.errors import DecodeError
from logpipe.common.record import Record, decode, encode, record_id


def test_logpipe_record_round_trips():
    rec = Record(id=record_id("mail1", "2049:1234:abcd", 42), line="hello", host="mail1",
                 path="/var/log/maillog", offset=42, type="mail", fields={"env": "prod"},
                 received_at=1764288000.5, tags=["truncated"])
    back = decode(encode(rec), "unused:0")
    assert back == rec


def test_record_id_is_stable_and_position_sensitive():
    assert record_id("h", "f", 10) == record_id("h", "f", 10)
    assert record_id("h", "f", 10) != record_id("h", "f", 11)
    assert record_id("h", "f", 10) != record_id("h2", "f", 10)


def test_plain_string_line_gets_the_batch_position_as_id():
    rec = decode(b"Nov 28 10:00:00 mail1 sendmail[1]: hello\n", "abc:7")
    assert rec.id == "abc:7"
    assert rec.line == "Nov 28 10:00:00 mail1 sendmail[1]: hello"
    assert rec.received_at > 0


def test_filebeat_event_is_normalised():
    event = {"@timestamp": "2026-11-28T10:00:00.000Z", "message": "a line",
             "host": {"name": "web1"}, "log": {"file": {"path": "/var/log/x.log"}, "offset": 99},
             "fields": {"type": "apache"}, "agent": {"type": "filebeat"}}
    rec = decode(orjson.dumps(event), "b:0")
    assert (rec.host, rec.path, rec.offset, rec.type, rec.line) == \
        ("web1", "/var/log/x.log", 99, "apache", "a line")
    assert rec.id == record_id("web1", "/var/log/x.log", 99)
    assert rec.received_at == datetime(2026, 11, 28, 10, tzinfo=timezone.utc).timestamp()


def test_logstash_json_event_is_normalised():
    event = {"@timestamp": "2026-11-28T10:00:00Z", "message": "x", "host": "mx", "type": "mail",
             "path": "/var/log/maillog", "@version": "1"}
    rec = decode(orjson.dumps(event), "b:3")
    assert (rec.host, rec.type, rec.path, rec.id) == ("mx", "mail", "/var/log/maillog", "b:3")


def test_text_starting_with_a_brace_is_still_a_line():
    assert decode(b"{not json at all", "b:1").line == "{not json at all"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b'{"foo": 1}', "neither"),
    (b"   ", "empty"),
])
def test_undecodable_items_say_why(raw, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(raw, "b:0")


# --- field-by-field validation ---------------------------------------------------------------

def _logpipe_item(**change) -> bytes:
    obj = {"id": "p1", "line": "x", "host": "h", "path": "/var/log/x", "offset": 3, "type": "t",
           "fields": {"env": "prod"}, "received_at": 1764288000.5, "tags": ["a"]}
    for name, value in change.items():
        if value is _ABSENT:
            obj.pop(name)
        else:
            obj[name] = value
    return orjson.dumps(obj)


_ABSENT = object()


@pytest.mark.parametrize("field, value, reason", [
    ("received_at", "notanumber", "must be seconds since the epoch"),
    ("received_at", True, "got boolean"),
    ("received_at", -5, "between 1970 and 9999"),
    ("received_at", 1e20, "between 1970 and 9999"),
    ("tags", "notalist", "must be a list of strings, got string"),
    ("tags", ["ok", 3], "item 1 must be a string"),
    ("offset", {"a": 1}, "integer"),
    ("offset", -1, "must not be negative"),
    ("offset", 1.5, "integer"),
    ("offset", True, "integer"),
    ("fields", ["a"], "must be an object, got array"),
    ("fields", "x", "must be an object"),
    ("id", 12, "must be a string, got number"),
    ("id", "", "must not be empty"),
    ("id", "i" * 513, "513 bytes long; Elasticsearch accepts at most 512"),
    ("id", "é" * 257, "514 bytes"),
    ("line", None, "must be a string, got null"),
    ("line", 5, "must be a string, got number"),
    ("host", ["h"], "must be a string or null, got array"),
    ("path", 7, "must be a string or null"),
    ("type", {"t": 1}, "must be a string or null, got object"),
])
def test_each_bad_field_is_a_decode_error_naming_it(field, value, reason):
    with pytest.raises(DecodeError, match=reason) as caught:
        decode(_logpipe_item(**{field: value}), "b:0")
    assert caught.value.field == field
    assert f"field {field!r}" in str(caught.value)


def test_id_of_exactly_512_bytes_is_accepted():
    assert decode(_logpipe_item(id="i" * 512), "b:0").id == "i" * 512


def test_optional_fields_may_be_absent_or_null():
    for value in (_ABSENT, None):
        rec = decode(_logpipe_item(host=value, path=value, offset=value, type=value, fields=value,
                                   tags=value, received_at=value), "b:0")
        assert (rec.host, rec.path, rec.offset, rec.type, rec.fields, rec.tags) == \
            ("", "", None, "", {}, [])
        assert rec.received_at > 0


@pytest.mark.parametrize("raw, kind", [
    (b"null", "null"), (b"[1, 2]", "array"), (b'"a line in quotes"', "string"),
    (b"true", "boolean"), (b'[{"message": "x"}]', "array"), (b" null\n", "null"),
])
def test_json_that_is_not_an_object_is_refused_not_made_a_line(raw, kind):
    with pytest.raises(DecodeError, match=f"item is a JSON {kind}, not an event object"):
        decode(raw, "b:0")


@pytest.mark.parametrize("raw", [b"42", b"3.14 degrees", b"nullable thing", b"- [x] done",
                                 b"truely plain"])
def test_plain_lines_that_merely_resemble_json_stay_lines(raw):
    rec = decode(raw, "b:0")
    assert rec.line == raw.decode() and rec.tags == []


@pytest.mark.parametrize("raw", [b"{not json at all", b'{"id": "x", "line": "cut sh',
                                 b"[2026-11-28 10:00:00] app started",
                                 b'{"message": ' + b"[" * 2000 + b"]" * 2000 + b"}"])
def test_text_that_looks_like_json_but_is_not_is_tagged_like_logstash(raw):
    rec = decode(raw, "b:5")
    assert rec.line == raw.decode() and rec.id == "b:5"
    assert rec.tags == ["_jsonparsefailure"]


@pytest.mark.parametrize("event, field", [
    ({"message": 5}, "message"),
    ({"message": "m", "host": 5}, "host"),
    ({"message": "m", "host": {"name": 5}}, "host.name"),
    ({"message": "m", "log": {"offset": "x"}}, "log.offset"),
    ({"message": "m", "log": {"file": {"path": 9}}}, "log.file.path"),
    ({"message": "m", "fields": "x"}, "fields"),
    ({"message": "m", "fields": {"type": 3}}, "fields.type"),
    ({"message": "m", "type": ["mail"]}, "type"),
    ({"message": "m", "tags": 3}, "tags"),
])
def test_foreign_event_fields_are_validated_too(event, field):
    with pytest.raises(DecodeError) as caught:
        decode(orjson.dumps(event), "b:0")
    assert caught.value.field == field


def test_foreign_event_with_unreadable_timestamp_is_kept_and_tagged():
    rec = decode(orjson.dumps({"message": "m", "@timestamp": "yesterday", "tags": "one"}), "b:0")
    assert rec.line == "m" and rec.tags == ["one", "_timestampparsefailure"]
    assert rec.received_at > 0


# --- property-based: every input is a record or a DecodeError, nothing else --------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

KNOWN = ["id", "line", "host", "path", "offset", "type", "fields", "received_at", "tags",
         "message", "@timestamp", "log", "file", "name", "hostname"]
json_leaf = (st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
             | st.sampled_from(["", "2026-11-28T10:00:00Z", "x" * 600, "notanumber"]))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KNOWN) | st.text(max_size=8), inner, max_size=6),
    max_leaves=20)
objects = st.dictionaries(st.sampled_from(KNOWN), json_value, max_size=10)


def _check(raw) -> None:
    try:
        rec = decode(raw, "batch:0")
    except DecodeError as exc:
        assert str(exc)
        return
    assert isinstance(rec, Record)
    assert isinstance(rec.id, str) and 0 < len(rec.id.encode()) <= 512
    assert isinstance(rec.line, str) and isinstance(rec.host, str)
    assert isinstance(rec.path, str) and isinstance(rec.type, str)
    assert rec.offset is None or (isinstance(rec.offset, int) and not isinstance(rec.offset, bool)
                                  and rec.offset >= 0)
    assert isinstance(rec.fields, dict)
    assert isinstance(rec.tags, list) and all(isinstance(t, str) for t in rec.tags)
    assert isinstance(rec.received_at, float) and 0 <= rec.received_at <= 253402300799
    assert decode(encode(rec), "other:1") == rec  # what decode returns can travel again


fuzz = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(raw):
    _check(raw)


@fuzz
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(raw):
    _check(raw)
    _check(raw.encode("utf-8", "surrogatepass"))


@fuzz
@given(json_value)
def test_fuzz_any_json(value):
    _check(orjson.dumps(value))


@fuzz
@given(objects, st.sampled_from([{}, {"id": "p1", "line": "x"}, {"message": "m"}]))
def test_fuzz_json_objects_shaped_like_records(obj, base):
    _check(orjson.dumps({**base, **obj}))


_VALID_RECORD = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=200), "line": st.text(max_size=50),
     "host": st.text(max_size=10), "path": st.text(max_size=10), "type": st.text(max_size=5),
     "received_at": st.floats(min_value=0, max_value=4e9)},
    optional={"offset": st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
              "fields": st.one_of(st.none(), st.dictionaries(st.text(max_size=5),
                                                              st.integers(-2**60, 2**60))),
              "tags": st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3))})


@fuzz
@given(_VALID_RECORD)
def test_fuzz_the_shippers_shape_decodes_as_field_by_field(obj):
    """The one-expression check for a shipper's record gives the same Record as the checks
    field by field (which a record of another shape goes through)."""
    from logpipe.common import record as rec

    fast = decode(orjson.dumps(obj), "fallback")
    if len(obj["id"].encode()) > 512:
        return
    slow = rec.Record(
        id=rec._record_id(obj["id"]), line=rec._text(obj, "line", required=True),
        host=rec._text(obj, "host"), path=rec._text(obj, "path"),
        offset=rec._offset(obj.get("offset"), "offset"), type=rec._text(obj, "type"),
        fields=rec._fields(obj.get("fields"), "fields"),
        received_at=rec._received_at(obj.get("received_at")), tags=rec._tags(obj.get("tags"), "tags"))
    assert fast == slow
