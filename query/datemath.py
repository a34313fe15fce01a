"""Time in queries: ISO 8601 dates, date math (``now-1h``, ``now-7d/d``), histogram intervals,
retention ages, and the one conversion of a datetime to epoch milliseconds.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone

from logpipe.query.errors import QueryError

_ISO_RE = re.compile(r"""
    (?P<y>\d{4})
    (?:-(?P<mo>\d{1,2})
      (?:-(?P<d>\d{1,2})
        (?:[T\s](?P<h>\d{1,2})
          (?::(?P<mi>\d{2})
            (?::(?P<s>\d{2})
              (?:[.,](?P<f>\d{1,9}))?
            )?
          )?
        )?
      )?
    )?
    \s*(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?
""", re.VERBOSE)
_MATH_RE = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_UNIT_ORDER = ["y", "M", "d", "h", "m", "s", "ms"]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# the first millisecond after 9999-12-31T23:59:59.999Z: where a period reaching past it ends
_END_OF_TIME_MS = (datetime.max.replace(tzinfo=timezone.utc) - _EPOCH) // _MS + 1


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch, floored (also before 1970); a naive datetime is UTC.
    The one conversion every store and the query language use."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _MS


# Python's dates go from year 1 to year 9999: time values outside are refused (ValueError with
# this text), never an OverflowError; the end of a period that reaches past 9999-12-31 is clamped.
OUT_OF_RANGE = "out of range (dates go from 0001-01-01 to 9999-12-31)"


def _add(dt: datetime, n: int, unit: str) -> datetime:
    try:
        if unit in ("y", "M"):
            months = dt.month - 1 + n * (12 if unit == "y" else 1)
            year, month = dt.year + months // 12, months % 12 + 1
            if not 1 <= year <= 9999:
                raise OverflowError
            day = min(dt.day, calendar.monthrange(year, month)[1])
            return dt.replace(year=year, month=month, day=day)
        seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
        return dt + timedelta(seconds=n * seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"{'+' if n >= 0 else '-'}{abs(n)}{unit} from "
                         f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} is {OUT_OF_RANGE}") from None


def _floor(dt: datetime, unit: str) -> datetime:
    if unit == "y":
        return dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("h", "H"):
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return dt.replace(second=0, microsecond=0)
    return dt.replace(microsecond=0)


def _parse_iso(text: str) -> tuple[datetime, str]:
    """An ISO 8601 date or time and its precision unit ('y', 'M', 'd', 'h', 'm', 's', 'ms')."""
    m = _ISO_RE.fullmatch(text.strip())
    if not m:
        raise ValueError("expected an ISO 8601 date like 2026-11-28T10:00:00Z or now-1h")
    g = m.groupdict()
    unit = "y"
    for key, u in (("mo", "M"), ("d", "d"), ("h", "h"), ("mi", "m"), ("s", "s"), ("f", "ms")):
        if g[key] is not None:
            unit = u
    frac = (g["f"] or "0")[:6].ljust(6, "0")
    tz = timezone.utc
    if g["tz"] and g["tz"] not in ("Z", "z"):
        sign = -1 if g["tz"][0] == "-" else 1
        digits = g["tz"][1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    dt = datetime(int(g["y"]), int(g["mo"] or 1), int(g["d"] or 1), int(g["h"] or 0),
                  int(g["mi"] or 0), int(g["s"] or 0), int(frac), tzinfo=tz)
    try:
        return dt.astimezone(timezone.utc), unit
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text.strip()!r} is {OUT_OF_RANGE}") from None


def time_period(text: str, now: datetime | None = None) -> tuple[int, int]:
    """``[start, end)`` in epoch ms that a time value covers: ``2026-11-28`` is that whole day,
    ``now-1h`` one millisecond, ``now/d`` today. Raises ValueError when it is not a time."""
    text = text.strip()
    now = now or datetime.now(timezone.utc)
    if text.startswith("now"):
        base, unit, rest = now, "ms", text[3:]
    else:
        iso, sep, rest = text.partition("||")
        if not sep:
            iso, rest = text, ""
        base, unit = _parse_iso(iso)
    pos = 0
    while pos < len(rest):
        m = _MATH_RE.match(rest, pos)
        if not m:
            raise ValueError(f"bad date math {rest[pos:]!r} (use e.g. now-1h, now-7d, now/d)")
        if m.group(4):
            unit = m.group(4)
            base = _floor(base, unit)  # never before 0001-01-01: that day is a Monday
        else:
            n = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
            base = _add(base, n, m.group(3))
        pos = m.end()
    start = base
    if unit == "ms":
        return epoch_ms(start), epoch_ms(start) + 1
    if unit not in ("y", "M", "w", "d", "h", "H", "m", "s"):
        return epoch_ms(start), epoch_ms(start)
    try:
        end = epoch_ms(_add(start, 1, unit))
    except ValueError:  # the period of 9999-12-31 ends with time itself
        end = _END_OF_TIME_MS
    return epoch_ms(start), end


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A point in time (the start of a partial date); ValueError when not a time."""
    start, _ = time_period(text, now)
    return datetime.fromtimestamp(start / 1000, timezone.utc)


_INTERVAL_RE = re.compile(r"(\d+)\s*(ms|s|m|h|d|w)")
_INTERVAL_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                "w": 7 * 86_400_000}


def parse_interval(text: str) -> int:
    """A fixed interval ('30s', '5m', '1h', '1d', '1w') in milliseconds."""
    m = _INTERVAL_RE.fullmatch(str(text).strip())
    if not m or int(m.group(1)) <= 0:
        raise QueryError(f"invalid interval {text!r}: use a number and a unit, e.g. 30s, 5m, "
                         "1h, 1d, 1w")
    ms = int(m.group(1)) * _INTERVAL_MS[m.group(2)]
    if ms > MAX_SPAN_MS:
        raise QueryError(f"invalid interval {text!r}: longer than the whole calendar "
                         "(at most 10000 years)")
    return ms


MAX_BUCKETS = 20000
MAX_SPAN_MS = 10_000 * 366 * 86_400_000  # longer than 0001-01-01 .. 9999-12-31


def fill_buckets(rows, step: int) -> list[tuple[datetime, int]]:
    """(bucket ms, count) rows, sorted, as datetimes with the empty buckets between filled in."""
    counts = {int(b): int(c) for b, c in rows}
    if not counts:
        return []
    first, last = min(counts), max(counts)
    if (last - first) // step > MAX_BUCKETS:
        raise QueryError(f"the histogram would have {(last - first) // step + 1} buckets: "
                         "use a larger interval or a shorter time range")
    return [(datetime.fromtimestamp(b / 1000, timezone.utc), counts.get(b, 0))
            for b in range(first, last + step, step)]


def es_interval(ms: int) -> str:
    """An Elasticsearch fixed_interval for a number of milliseconds."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_DURATION_RE = re.compile(r"(\d+)\s*(s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '2w' as a timedelta (for retention)."""
    m = _DURATION_RE.fullmatch(str(text).strip())
    if not m:
        raise QueryError(f"invalid age {text!r}: use a number and a unit, e.g. 30d, 12h, 2w")
    ms = int(m.group(1)) * _INTERVAL_MS[m.group(2)]
    if ms > MAX_SPAN_MS:
        raise QueryError(f"invalid age {text!r}: longer than the whole calendar "
                         "(at most 10000 years)")
    return timedelta(milliseconds=ms)


def time_arg(value: str | None, option: str, now: datetime) -> datetime | None:
    """``--from``/``--to``: ISO 8601 (``2026-11-28``, ``2026-11-28T10:00Z``), date math
    (``now-1h``, ``now-7d/d``) or a bare age (``1h`` = an hour ago)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if text[0].isdigit() and text[-1] in "smhdw" and text[:-1].isdigit():
            try:
                return now - parse_duration(text)
            except OverflowError:
                raise ValueError(f"{text} ago is {OUT_OF_RANGE}") from None
        return parse_time(text, now)
    except (ValueError, QueryError) as exc:
        raise QueryError(f"{option} {value!r}: {exc}") from None
