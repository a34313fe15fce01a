"""Compressed items (common/wire.py): records come back in order and whole; anything wrong is a
DecodeError with the reason, before more than the bounds is expanded."""

from __future__ import annotations

import zlib

import pytest

from logpipe.common.errors import DecodeError
from logpipe.common.wire import HEAD, MARKER, MAX_EXPANDED, is_packed, pack, split_frames, unpack
from logpipe.shipper.framing import frame


def test_round_trip_and_split_keep_every_record_in_order():
    records = [b'{"id":"a-%x","line":"x %d\\r\\n"}' % (i, i) for i in range(450)]
    blob = frame(records)
    runs = split_frames(blob, len(records), 200)
    assert [n for _, n in runs] == [200, 200, 50]
    back = [r for b, n in runs for r in unpack(pack(b, n))]
    assert back == records
    assert all(is_packed(pack(b, n)) for b, n in runs)
    assert not is_packed(b'{"id":"x"}') and not is_packed(b"plain line")


@pytest.mark.parametrize("item,reason", [
    (MARKER + b"\x00", "shorter than its header"),
    (MARKER + b"\x00\x00\x00\x00" + zlib.compress(b""), "0 records"),
    (pack(frame([b"a", b"b"]), 3), "its header says 3"),
    (pack(frame([b"a"]), 1)[:-3], "cut short"),
    (MARKER + b"\x00\x00\x00\x01" + b"not zlib", "not zlib data"),
    (pack(b"$5\r\nab\r\n", 1), "cut short"),
    (MARKER + b"\x00\x00\x00\x01" + zlib.compress(b"\x00" * (MAX_EXPANDED + 10)), "more than"),
])
def test_a_bad_item_says_what_is_wrong(item, reason):
    with pytest.raises(DecodeError, match=reason):
        unpack(item)
    assert len(item) >= HEAD or reason.startswith("shorter")
