from datetime import datetime, timezone

import pytest

from logpipe.indexer.pipeline_config import DateSpec, FieldEdits
from logpipe.indexer.pipeline_config import edits_step
from logpipe.indexer.enrich import (format_timestamp, joda_to_strptime, parse_syslog_time,
                            parse_time, timestamp_for, zone)

UTC = timezone.utc


def at(*args):
    return datetime(*args, tzinfo=UTC)


def test_syslog_time_takes_the_receive_year():
    assert parse_syslog_time("Jul  3 10:00:01", at(2026, 7, 3, 10, 0, 5), UTC) == \
        at(2026, 7, 3, 10, 0, 1)


def test_december_line_read_in_january_is_last_year():
    assert parse_syslog_time("Dec 31 23:59:58", at(2027, 1, 1, 0, 0, 3), UTC).year == 2026


def test_january_line_read_on_new_years_eve_is_next_year():
    # The sender's clock runs a little ahead of ours.
    assert parse_syslog_time("Jan  1 00:00:02", at(2026, 12, 31, 23, 59, 59), UTC).year == 2027


def test_old_lines_are_never_put_in_the_future():
    # Read in late November, a May line is from this May, not next May (which is closer).
    assert parse_syslog_time("May 15 02:33:09", at(2026, 11, 28), UTC).year == 2026
    assert parse_syslog_time("Nov 29 12:00:00", at(2026, 11, 28), UTC).year == 2026  # skew
    assert parse_syslog_time("Dec  5 12:00:00", at(2026, 11, 28), UTC).year == 2025


def test_feb_29_picks_a_leap_year():
    assert parse_syslog_time("Feb 29 12:00:00", at(2028, 3, 1), UTC) == at(2028, 2, 29, 12)


def test_timezone_applies_to_local_syslog_times():
    parsed = parse_syslog_time("Nov 28 10:00:00", at(2026, 11, 28, 9, 5), zone("Europe/Paris"))
    assert format_timestamp(parsed) == "2026-11-28T09:00:00.000Z"


@pytest.mark.parametrize("text, formats, expected", [
    ("2015-04-16T18:02:50.321974+00:00", ["ISO8601"], "2015-04-16T18:02:50.321Z"),
    ("10/Oct/2000:13:55:36 -0700", ["HTTPDATE"], "2000-10-10T20:55:36.000Z"),
    ("02/Mai/2024:10:00:00 +0200", ["HTTPDATE"], "2024-05-02T08:00:00.000Z"),
    ("31/Dez/2024:23:59:59 +0100", ["HTTPDATE"], "2024-12-31T22:59:59.000Z"),
    ("Sun Dec 04 04:47:44 2005", ["apache_error"], "2005-12-04T04:47:44.000Z"),
    ("Sun Dec 04 04:47:44.123456 2005", ["apache_error"], "2005-12-04T04:47:44.000Z"),
    ("2013-05-13 06:05:04", ["yyyy-MM-dd HH:mm:ss"], "2013-05-13T06:05:04.000Z"),
    ("1764288000", ["UNIX"], "2025-11-28T00:00:00.000Z"),
    ("garbage", ["ISO8601", "HTTPDATE"], None),
])
def test_parse_time_formats(text, formats, expected):
    parsed = parse_time(text, formats, at(2026, 1, 1), UTC)
    assert (format_timestamp(parsed) if parsed else None) == expected


def test_joda_translation():
    assert joda_to_strptime("dd/MMM/yyyy:HH:mm:ss Z") == "%d/%b/%Y:%H:%M:%S %z"
    assert joda_to_strptime("yyyy-MM-dd'T'HH:mm") == "%Y-%m-%dT%H:%M"


def test_unparseable_date_falls_back_to_receive_time_and_tags():
    tags = []
    stamp = timestamp_for({"timestamp": "not a date"}, DateSpec(), at(2026, 5, 1, 12), None, tags)
    assert stamp == "2026-05-01T12:00:00.000Z"
    assert tags == ["_dateparsefailure"]


def test_field_edits_follow_mutate_order():
    doc = {"pid": "42", "size": "x", "logsource": "mx1", "timestamp": "t"}
    tags = []
    edits_step(FieldEdits(convert={"pid": "int", "size": "int"}, add={"env": "prod"},
                                rename={"logsource": "source_host"}, remove=["timestamp"],
                                add_tags=["mail"]))(doc, tags)
    assert doc == {"pid": 42, "size": "x", "source_host": "mx1", "env": "prod"}
    assert tags == ["_convertfailure", "mail"]


def test_the_syslog_fast_path_reads_as_the_general_one():
    """enrich._syslog_utc (per-minute cache, seconds as digits) answers exactly what
    format_timestamp(parse_syslog_time(...)) answers, or None (the caller then takes that
    general path): plain stamps, one-digit days, seconds 00-60, Feb 29, a year boundary,
    fractions, long month names and broken text."""
    import random

    from logpipe.indexer.enrich import _syslog_utc

    rng = random.Random(27)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec", "June", "Foo", "jan"]
    texts = ["Jul  3 10:00:01", "Dec 31 23:59:59", "Jan  1 00:00:00", "Feb 29 12:00:00",
             "May 15 02:10:60", "May 15 02:10:5x", "May 15 02:1:05", "May 15 24:00:00",
             "June 3 10:00:01", "May 15 02:10:0.", "May 15 02:10:05.5", "May 1502:10:05",
             "May 15 02:10:٠٥", "May 15 02:10:+5", "Jan 32 10:00:00", "Jan 00 10:00:00"]
    for _ in range(20_000):
        day = rng.choice([f"{rng.randint(1, 31):2d}", f"{rng.randint(1, 31):02d}"])
        texts.append(f"{rng.choice(months)} {day} {rng.randint(0, 24):02d}:"
                     f"{rng.randint(0, 60):02d}:{rng.randint(0, 61):02d}")
    receives = [at(2026, 1, 1, 0, 0, 3), at(2026, 12, 31, 23, 59, 59), at(2028, 3, 1),
                at(2026, 7, 3, 10, 0, 5), at(2026, 12, 29, 23, 59, 30)]
    # the minutes that hold the latest time a line may carry (received + the future slack):
    # their seconds take two different years
    from logpipe.indexer.enrich import SYSLOG_FUTURE_SLACK
    for received in receives:
        latest = received + SYSLOG_FUTURE_SLACK
        texts += [latest.replace(second=second).strftime("%b %d %H:%M:%S")
                  for second in range(60)]
    fast_answers = 0
    for text in texts:
        for received in receives:
            fast = _syslog_utc(text, received)
            if fast is None:
                continue
            fast_answers += 1
            general = parse_syslog_time(text, received, UTC)
            assert general is not None and fast == format_timestamp(general), (text, received)
    assert fast_answers > 40_000  # the fast path answers the plain stamps
