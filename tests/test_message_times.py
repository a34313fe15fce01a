"""Message records' times (store/messages.py iso_ms): epoch milliseconds as the ISO 8601 UTC
text a record's first_seen / last_seen hold, the same as datetime's own formatting gives, for
any moment (before 1970, at day and second boundaries, far ahead)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from logpipe.store.messages import iso_ms


def _reference(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_iso_ms_equals_datetimes_formatting():
    rng = random.Random(27)
    edges = [0, 1, 999, 1000, -1, -999, -1000, -1001, 86_399_999, 86_400_000,
             951_782_400_000, 4_102_444_799_999, -2_208_988_800_000]
    moments = edges + [rng.randrange(-3 * 10**12, 5 * 10**12) for _ in range(20_000)]
    for ms in moments:
        assert iso_ms(ms) == _reference(ms), ms
    assert iso_ms(1_368_583_834_123) == "2013-05-15T02:10:34.123Z"
    assert iso_ms(None) is None
