"""Moments and durations as people type them: ``now-1h``, ``2026-11-28T10:00``, ``30d``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from common.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy])\s*$")
_RELATIVE = re.compile(r"^\s*now\s*(?:([+-])\s*(\d+)\s*([smhdwy]))?\s*$")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 12h, 15m")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An absolute ISO 8601 time (UTC if no offset) or ``now``, ``now-1h``, ``now+5m``."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(text)
    if match:
        if not match.group(1):
            return now
        delta = timedelta(seconds=int(match.group(2)) * _UNITS[match.group(3)])
        return now - delta if match.group(1) == "-" else now + delta
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"invalid time {text!r}: use ISO 8601 (2026-11-28T10:00:00Z) "
                          "or now-1h / now-7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
