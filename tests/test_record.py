from datetime import datetime, timezone

import orjson
import pytest

from common.errors import DecodeError
from common.record import Record, decode, encode, record_id


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
