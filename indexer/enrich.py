"""Enrichment: turn grok captures plus the record into the event that gets stored.

``@timestamp`` comes from the parsed time. SYSLOGTIMESTAMP (``Feb 25 14:34:10``) has no year: the
year is the latest that does not put the line in the future (beyond two days of clock skew), so a
December line read in early January lands in the previous year, a January line read on
31 December (a sender's clock slightly ahead) in the next, and a May line read in November in
the same year. The timezone comes from the type's date section, or from a ``timezone`` field the
shipper attached to its input.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logpipe.common.errors import ConfigError

# Keys the record owns; a capture with the same name is kept beside it as grok_<name>.
RESERVED = ("@timestamp", "message", "host", "path", "type", "tags", "offset")

_ENGLISH_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_ENGLISH_MONTHS, 1)}
# servers running in a German locale write these (the grok MONTH pattern accepts them too)
_MONTHS.update({"jän": 1, "mär": 3, "mrz": 3, "mai": 5, "okt": 10, "dez": 12})
_HTTPDATE_MONTH = re.compile(r"(?<=/)([^\W\d_]+)(?=/)")
_JODA = [("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"),
         ("dd", "%d"), ("d", "%d"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"),
         ("SSSSSS", "%f"), ("SSS", "%f"), ("EEEE", "%A"), ("EEE", "%a"), ("ZZ", "%z"),
         ("Z", "%z"), ("a", "%p")]


# A line cannot come from the future, beyond a sender's clock running a little ahead: its year
# is the latest one that puts it no later than this after the moment it was received.
SYSLOG_FUTURE_SLACK = timedelta(days=2)
_FRACTION = re.compile(r"\.\d+")


@lru_cache(maxsize=64)
def zone(name: str):
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r} (use an IANA name such as Europe/Paris)")


@lru_cache(maxsize=64)
def joda_to_strptime(fmt: str) -> str:
    """Translate the Joda-style formats Logstash's date filter uses into strptime's."""
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "'":
            j = fmt.find("'", i + 1)
            j = len(fmt) if j < 0 else j
            out.append(fmt[i + 1:j].replace("%", "%%"))
            i = j + 1
            continue
        for token, directive in _JODA:
            if fmt.startswith(token, i):
                out.append(directive)
                i += len(token)
                break
        else:
            out.append("%%" if fmt[i] == "%" else fmt[i])
            i += 1
    return "".join(out)


def parse_syslog_time(text: str, received: datetime, tz) -> datetime | None:
    """``MMM d HH:mm:ss[.fff]`` with the year inferred from ``received`` (aware, UTC)."""
    parts = text.split()
    if len(parts) != 3:
        return None
    month = _MONTHS.get(parts[0][:3].lower())
    if month is None or not parts[1].isdigit():
        return None
    try:
        hms, _, frac = parts[2].partition(".")
        h, m, s = (int(x) for x in hms.split(":"))
        micro = int((frac + "000000")[:6]) if frac else 0
        local_received = received.astimezone(tz)
        latest = received + SYSLOG_FUTURE_SLACK
        for year in (local_received.year + 1, local_received.year, local_received.year - 1,
                     local_received.year - 2, local_received.year - 3, local_received.year - 4):
            try:
                candidate = datetime(year, month, int(parts[1]), h, m, s, micro, tzinfo=tz)
            except ValueError:  # Feb 29 in a non-leap year
                continue
            if candidate <= latest:
                return candidate
        return None
    except ValueError:
        return None


def _english_month(m: re.Match) -> str:
    """A localized month name as the English abbreviation strptime's %b reads."""
    number = _MONTHS.get(m.group(1)[:3].lower())
    return _ENGLISH_MONTHS[number - 1] if number else m.group(1)


_NAME_DIRECTIVE = re.compile(r"%[aAbB]")
_FIXED_NAMES = {"syslog": ["month"], "HTTPDATE": ["month"], "apache_error": ["day", "month"]}


@lru_cache(maxsize=256)
def _names_in(fmt: str) -> tuple[str, tuple[str, ...]]:
    """(the strptime format, the month/day names it reads in order), for a locale's names
    rewritten into English abbreviations (so %B/%A read as %b/%a)."""
    if fmt in _FIXED_NAMES:
        return fmt, tuple(_FIXED_NAMES[fmt])
    if fmt in ("ISO8601", "UNIX", "UNIX_MS", "TAI64N"):
        return fmt, ()
    strf = joda_to_strptime(fmt)
    kinds = tuple("month" if d[1] in "bB" else "day" for d in _NAME_DIRECTIVE.findall(strf))
    return strf.replace("%B", "%b").replace("%A", "%a"), kinds


def parse_time(text: str, formats: list[str], received: datetime, tz,
               locale: str | None = None) -> datetime | None:
    """``text`` read with the first of ``formats`` that reads it. ``locale``: a language of
    :mod:`indexer.date_locales` (``fr``, ...) whose month and day names the text carries;
    None or ``en``: English (and German month names in syslog and HTTPDATE times)."""
    text = text.strip()
    foreign = locale is not None and locale != "en"
    for fmt in formats:
        strf = None
        source = text
        if foreign:
            strf, kinds = _names_in(fmt)
            if kinds and locale is not None:
                from logpipe.indexer.date_locales import to_english
                source = to_english(text, list(kinds), locale)
        try:
            if fmt == "syslog":
                parsed = parse_syslog_time(source, received, tz)
            elif fmt == "ISO8601":
                parsed = datetime.fromisoformat(source.replace(",", "."))
            elif fmt == "UNIX":
                parsed = datetime.fromtimestamp(float(source), timezone.utc)
            elif fmt == "TAI64N":
                parsed = _tai64n(source)
            elif fmt == "UNIX_MS":
                parsed = datetime.fromtimestamp(float(source) / 1000, timezone.utc)
            elif fmt == "HTTPDATE":
                parsed = datetime.strptime(_HTTPDATE_MONTH.sub(_english_month, source, count=1),
                                           "%d/%b/%Y:%H:%M:%S %z")
            elif fmt == "apache_error":
                parsed = datetime.strptime(_FRACTION.sub("", source), "%a %b %d %H:%M:%S %Y")
            else:
                parsed = datetime.strptime(source, strf or joda_to_strptime(fmt))
        except (ValueError, OverflowError, OSError):
            continue
        if parsed is None:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed
    return None


_NUMERIC_FORMATS = ("UNIX", "UNIX_MS")


def parse_value(raw, formats: list[str], received: datetime, tz,
                locale: str | None = None) -> datetime | None:
    """Logstash's date filter on a field's value (its DateFilter: a text executor takes only
    text, a numeric one text or a number): text with every format; a number with UNIX and
    UNIX_MS only; anything else -- a list (a name grok captured twice), an object, a boolean --
    with none of them: None, a failure the caller tags."""
    if isinstance(raw, str):
        return parse_time(raw, formats, received, tz, locale)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        numeric = [f for f in formats if f in _NUMERIC_FORMATS]
        return parse_time(repr(raw), numeric, received, tz) if numeric else None
    return None


def _tai64n(text: str) -> datetime | None:
    """``@4000000052f9a5b4...``: a TAI64N label (seconds since 1970 plus 2**62, then
    nanoseconds), read as daemontools' tai64nlocal reads it (no leap-second table)."""
    label = text[1:] if text.startswith("@") else text
    if len(label) != 24:
        return None
    seconds = int(label[:16], 16) - (1 << 62)
    nanos = int(label[16:], 16)
    return datetime.fromtimestamp(seconds + nanos / 1e9, timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the way Elasticsearch and Kibana show it."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _syslog_utc(text: str, received: datetime) -> str | None:
    """The common case of ``format_timestamp(parse_syslog_time(text, received, UTC))``,
    without building datetimes: a plain ``MMM d HH:mm:ss[.fff]`` with a day that exists in
    every month, compared and formatted as numbers. None for anything else (the caller then
    takes the general path, which gives the same answer for these)."""
    seconds = text[13:]
    if len(text) == 15 and text[12] == ":" and seconds.isascii() and seconds.isdigit():
        # the plain "Mmm dd hh:mm:ss": its minute read once (a small server's lines are
        # mostly in different seconds, many in one minute), the seconds as two digits; the
        # minute with any two digits in 00-59 reads as the whole text would
        minute = _SYSLOG_MINUTES.get(text[:12])
        if minute is None:
            if len(_SYSLOG_MINUTES) >= 65536:
                _SYSLOG_MINUTES.clear()
            # [its parts at second 00, the _latest() it was placed for, its placed prefix]
            minute = _SYSLOG_MINUTES[text[:12]] = [_syslog_parts(text[:12] + ":00"), None, None]
        parsed = minute[0]
        if parsed is None or seconds >= "60":
            return None
        placing = _latest(received)  # the same object while the batch's received is the same
        if minute[1] is not placing:
            minute[1], minute[2] = placing, _minute_prefix(parsed, placing)
        if minute[2] is not None:
            return f"{minute[2]}{seconds}.000Z"
        # the minute straddles the latest time a line may carry: year by year, per second
        (month, day, h, m, _, _), suffix = parsed
        moment = (month, day, h, m, int(seconds), 0)
        suffix = f"{suffix[:-7]}{seconds}.000Z"   # the minute's "...:00.000Z" -> ":SS.000Z"
    else:
        parsed = _SYSLOG_PARSED.get(text, _UNSEEN)
        if parsed is _UNSEEN:
            if len(_SYSLOG_PARSED) >= 65536:  # log time stamps repeat: many lines per second
                _SYSLOG_PARSED.clear()
            parsed = _SYSLOG_PARSED[text] = _syslog_parts(text)
        if parsed is None:
            return None
        moment, suffix = parsed
    year = _placed_year(moment, _latest(received))
    return None if year is None else f"{year:04d}{suffix}"


def _placed_year(moment: tuple, placing: tuple) -> int | None:
    """The year a syslog moment ``(month, day, h, m, s, micro)`` takes under ``placing``
    (:func:`_latest`'s answer): the latest of the received year + 1 down to - 4 that does not
    put it after the latest time a line may carry; None when none does."""
    year, latest = placing
    for candidate in (year + 1, year, year - 1, year - 2, year - 3, year - 4):
        if (candidate, *moment) <= latest:
            return candidate
    return None


def _minute_prefix(parsed: tuple, placing: tuple) -> str | None:
    """``YYYY-MM-DDTHH:MM:`` of a plain minute (:func:`_syslog_parts` of it at second 00) when
    every second of it takes the same year under ``placing`` (:func:`_latest`'s answer); None
    when its seconds take different years (the minute holds the latest time a line may carry)
    or none. A later second never takes a later year, so its first and last seconds tell."""
    (month, day, h, m, _, _), suffix = parsed
    first = _placed_year((month, day, h, m, 0, 0), placing)
    if first is None or first != _placed_year((month, day, h, m, 59, 0), placing):
        return None
    return f"{first:04d}{suffix[:-7]}"


def _syslog_parts(text: str) -> tuple[tuple, str] | None:
    """``(month, day, h, m, s, micro)`` and the text after the year of its UTC ISO form, or
    None when ``text`` is not the plain form :func:`_syslog_utc` answers for."""
    parts = text.split()
    if len(parts) != 3:
        return None
    month = _MONTHS.get(parts[0][:3].lower())
    day_text, hms = parts[1], parts[2]
    if month is None or not (day_text.isascii() and day_text.isdigit()):
        return None
    day = int(day_text)
    hms, _, frac = hms.partition(".")
    pieces = hms.split(":")
    if not (1 <= day <= 28 and len(pieces) == 3 and hms.isascii()
            and (not frac or frac.isascii() and frac.isdigit())):
        return None
    try:
        h, m, s = int(pieces[0]), int(pieces[1]), int(pieces[2])
    except ValueError:
        return None
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60) or "_" in hms or "+" in hms:
        return None
    millis = int((frac + "000")[:3]) if frac else 0
    micro = int((frac + "000000")[:6]) if frac else 0
    return ((month, day, h, m, s, micro),
            f"-{month:02d}-{day:02d}T{h:02d}:{m:02d}:{s:02d}.{millis:03d}Z")


_SYSLOG_PARSED: dict = {}
_SYSLOG_MINUTES: dict = {}   # "Mmm dd hh:mm" -> [_syslog_parts at :00, placing, prefix]
_UNSEEN = object()


def _latest(received: datetime) -> tuple[int, tuple]:
    """(received's UTC year, the latest moment a line may carry as a tuple), remembered for
    the last ``received`` (a batch's records mostly share it)."""
    if _LATEST[0] != received:
        utc = received.astimezone(timezone.utc)
        last = utc + SYSLOG_FUTURE_SLACK
        _LATEST[:] = [received, (utc.year, (last.year, last.month, last.day, last.hour,
                                            last.minute, last.second, last.microsecond))]
    return _LATEST[1]


_LATEST: list = [None, None]


def timestamp_for(captures: dict, date, received: datetime,
                  tz_name: str | None, tags: list) -> str:
    """The event's time from the type's date section (a pipeline_config.DateSpec: field,
    formats, timezone), else the time the record was received. A field that is there but
    cannot be read -- text no format reads, or a value that is not text or a number, such as
    the list of a name grok captured twice -- is tagged ``_dateparsefailure``, as Logstash's
    date filter tags it; a missing field is not."""
    if date is not None:
        raw = captures.get(date.field)
        if raw is not None:
            locale = getattr(date, "locale", None)
            if isinstance(raw, str) and date.formats and date.formats[0] == "syslog" and \
                    zone(tz_name or date.timezone) is timezone.utc and locale in (None, "en"):
                fast = _syslog_utc(raw, received)
                if fast is not None:
                    return fast
            parsed = parse_value(raw, date.formats, received, zone(tz_name or date.timezone),
                                 locale)
            if parsed is not None:
                return format_timestamp(parsed)
            tags.append("_dateparsefailure")
    return format_timestamp(received)


_PATH = re.compile(r"\[([^\[\]]+)\]")


def flat_key(name: str) -> str | None:
    """The top-level key a capture named ``name`` takes (``grok_<name>`` when the record owns
    the name), or None when it is a field reference (``[a][b]``) that nests; remembered, as a
    pattern set has few names."""
    try:
        return _FLAT_KEYS[name]
    except KeyError:
        pass
    if name.startswith("[") and name.endswith("]"):
        parts = _PATH.findall(name)
        key = None if parts and "".join(f"[{p}]" for p in parts) == name else name
    else:
        key = name
    if key is not None and key in RESERVED:
        key = f"grok_{key}"
    if len(_FLAT_KEYS) < 4096:
        _FLAT_KEYS[name] = key
        if key == name:
            OWN_KEYS.add(name)
    return key


_FLAT_KEYS: dict[str, str | None] = {}
# the capture names flat_key has seen that are their own top-level key (most of them): captures
# named only so go into an event in one dict update
OWN_KEYS: set[str] = set()


def place_capture(doc: dict, name: str, value) -> None:
    """Put one capture into the event: ``[source][address]`` (ECS mode, Logstash's field
    reference syntax) nested as ``{"source": {"address": ...}}``, anything else flat. A capture
    whose top-level name the record owns is kept beside it as ``grok_<name>``."""
    key = flat_key(name)
    if key is not None:
        doc[key] = value
        return
    parts = _PATH.findall(name)  # a field reference (flat_key said so)
    if parts[0] in RESERVED:
        parts[0] = f"grok_{parts[0]}"
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def from_syslog_input(doc: dict, captures: dict) -> None:
    """An event from logpipe's syslog input (the record carries ``syslog.frame``, the message as
    received): ``message`` is the bare text after the header and ``host`` the sender the header
    names, as the syslog inputs of Logstash, Filebeat and Vector give them. The header's
    timestamp, program and pid are already captures; a line no pattern read stays whole. Types
    whose patterns capture no ``message`` (mail, sshd: a routed line) lose the header they
    captured instead."""
    syslog = doc.get("syslog")
    if not isinstance(syslog, dict) or "frame" not in syslog:
        return
    if "message" in captures:
        doc["message"] = captures["message"]
        doc.pop("grok_message", None)
    elif captures and "syslog5424_ver" in captures:
        doc["message"] = ""  # an RFC 5424 message with no MSG part
    else:
        stamp, sender, program = (captures.get("timestamp"), captures.get("logsource"),
                                  captures.get("program"))
        line = doc.get("message")
        if stamp and sender and program and isinstance(line, str):
            header = re.match(re.escape(stamp) + r" (?:<\d+\.\d+> )?" + re.escape(sender) + " "
                              + re.escape(program) + r"(?:\[\d+\])?:? ", line)
            if header:
                doc["message"] = line[header.end():]
    sender = captures.get("logsource") or captures.get("[host][hostname]")
    if sender:
        doc["host"] = sender


def received_datetime(received_at: float) -> datetime:
    return datetime.fromtimestamp(received_at, timezone.utc) if received_at else \
        datetime.now(timezone.utc)


__all__ = ["flat_key", "from_syslog_input", "place_capture", "timestamp_for",
           "format_timestamp", "parse_time", "parse_syslog_time", "received_datetime",
           "RESERVED", "zone"]
