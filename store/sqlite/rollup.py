"""Per-hour and per-day event counts of the embedded store, so that a histogram of everything or
of one host, type or program costs what its number of buckets costs, not what its number of hits
does.

The ``counts`` table (schema.SCHEMA) holds, per UTC hour and per UTC day (``unit``), how many
events there are (dim ``''``, value ``''``) and how many per value of the promoted
low-cardinality columns ``host``, ``type`` and ``program``, for the rows up to the rowid
``meta.rollup_mark``. Rows are only ever added
above the mark (writers hand out increasing rowids, above the highest row and the full-text
mark) and never changed, so the counts are kept by a catch-up like the full-text index's, run by
the store's idle maintenance (:meth:`store.sqlite.SqliteStore.maintain`), never by the writers:
the write path costs nothing more. Retention subtracts what it deletes (:func:`forget`).

A histogram reads, in one snapshot: the counts of the whole days (buckets of whole days) and
hours of its range, the rows above the mark within them (the tail the catch-up has not reached,
read by rowid) and the partial hours at the window's edges from the events' (column, ts)
index. When the tail is longer than :data:`TAIL_ROWS` the histogram counts over the indexes as
before (exact either way).
"""

from __future__ import annotations

import sqlite3
from collections import Counter

HOUR = 3_600_000
DAY = 86_400_000
ROLLUP_MARK = "rollup_mark"
DIMS = ("host", "type", "program")          # promoted columns with few distinct values
MARK_SQL = f"SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{ROLLUP_MARK}'"
STEP_ROWS = 200_000                           # rows counted per catch-up transaction (~0.3 s)
TAIL_ROWS = 100_000                           # rows above the mark a histogram reads itself


def floor_sql(col: str, unit: int = HOUR) -> str:
    """The start of the UTC hour (or other unit; epoch ms, floored, also before 1970) of an
    epoch-ms expression."""
    return f"({col} - (({col} % {unit}) + {unit}) % {unit})"


def has_counts(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'counts'").fetchone() is not None


def catch_up_step(conn: sqlite3.Connection, limit: int = STEP_ROWS) -> int:
    """Count the rows above the mark, at most ``limit`` of them; returns how many rowids the
    mark moved over (0: caught up). Runs inside the caller's write transaction."""
    row = conn.execute(MARK_SQL).fetchone()
    mark = row[0] if row else 0
    top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
    if mark >= top:
        return 0
    upto = min(top, mark + limit)
    conn.execute("DROP TABLE IF EXISTS temp.rollup_batch")
    conn.execute(f"CREATE TEMP TABLE rollup_batch AS SELECT {', '.join(DIMS)}, "
                 f"{floor_sql('ts')} AS hour, count(*) AS n FROM events "
                 f"WHERE rowid > ? AND rowid <= ? AND ts IS NOT NULL "
                 f"GROUP BY {', '.join(DIMS)}, hour", (mark, upto))
    # (an upsert after INSERT ... SELECT needs a WHERE to parse)
    upsert = ("INSERT INTO counts(unit, dim, value, start, n) SELECT {unit}, {dim}, {value}, "
              "{start}, sum(n) FROM temp.rollup_batch WHERE {value} IS NOT NULL "
              "GROUP BY 2, 3, 4 ON CONFLICT(unit, dim, value, start) DO UPDATE "
              "SET n = n + excluded.n")
    for unit in (HOUR, DAY):
        start = floor_sql("hour", unit)
        conn.execute(upsert.format(unit=unit, dim="''", value="''", start=start))
        for dim in DIMS:
            conn.execute(upsert.format(unit=unit, dim=f"'{dim}'", value=dim, start=start))
    conn.execute("DROP TABLE temp.rollup_batch")
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                 "SET value = excluded.value", (ROLLUP_MARK, upto))
    return upto - mark


def forget(conn: sqlite3.Connection, rows) -> None:
    """Retention is deleting ``rows`` of (rowid, ts, host, type, program): take those at or
    below the mark out of the counts (inside the caller's write transaction)."""
    row = conn.execute(MARK_SQL).fetchone()
    if row is None or not has_counts(conn):
        return
    mark = row[0]
    gone: Counter = Counter()
    for rowid, ts, *values in rows:
        if rowid > mark or ts is None:
            continue
        for unit in (HOUR, DAY):
            start = ts - ts % unit   # Python's % floors
            gone[(unit, "", "", start)] += 1
            for dim, value in zip(DIMS, values):
                if value is not None:
                    gone[(unit, dim, value, start)] += 1
    where = "unit = ? AND dim = ? AND value = ? AND start = ?"
    conn.executemany(f"UPDATE counts SET n = n - ? WHERE {where}",
                     [(n, *key) for key, n in gone.items()])
    conn.executemany(f"DELETE FROM counts WHERE {where} AND n <= 0", list(gone))


def clamp_mark(conn: sqlite3.Connection) -> None:
    """After retention: the mark never stays above the last row (a later row could get a rowid
    at or below it and never be counted)."""
    conn.execute(f"UPDATE meta SET value = min(CAST(value AS INTEGER), "
                 f"(SELECT COALESCE(MAX(rowid), 0) FROM events)) WHERE key = '{ROLLUP_MARK}'")


def counted_histogram(conn: sqlite3.Connection, dim: str, values: list, where: str,
                      params: list, step: int, first: int, last: int, w_lo: int,
                      w_hi: int) -> dict[int, int] | None:
    """Bucket -> count of a histogram whose buckets are whole hours (``step`` a multiple of
    HOUR), over the buckets ``first``..``last`` clipped to the window [w_lo, w_hi): ``where``
    is the query's condition (a term on ``dim`` with ``values``, or everything: dim ''), read
    in the caller's snapshot. None when the counts cannot serve it (no table, a long tail)."""
    row = conn.execute(MARK_SQL).fetchone()
    if row is None or not has_counts(conn):
        return None
    mark = row[0]
    top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
    if top - mark > TAIL_ROWS:
        return None
    lo, hi = max(w_lo, first), min(w_hi, last + step)
    h_lo, h_hi = lo + (-lo) % HOUR, hi - hi % HOUR    # the whole hours inside [lo, hi)
    if h_lo >= h_hi:
        return None
    buckets: Counter = Counter()
    # whole days where the buckets are whole days (a bucket then holds only whole days), the
    # hours around them
    spans = [(HOUR, h_lo, h_hi)]
    if step % DAY == 0:
        d_lo, d_hi = h_lo + (-h_lo) % DAY, h_hi - h_hi % DAY
        if d_lo < d_hi:
            spans = [(HOUR, h_lo, d_lo), (DAY, d_lo, d_hi), (HOUR, d_hi, h_hi)]
    bucket = floor_sql("start", step)
    marks = ", ".join("?" * len(values))
    for unit, a, z in spans:
        if a >= z:
            continue
        for b, n in conn.execute(f"SELECT {bucket} AS b, sum(n) FROM counts WHERE unit = ? AND "
                                 f"dim = ? AND value IN ({marks}) AND start >= ? AND start < ? "
                                 f"GROUP BY b", [unit, dim, *values, a, z]):
            buckets[b] += n
    # the rows the catch-up has not reached (by rowid: NOT INDEXED keeps SQLite on it)
    ts_bucket = floor_sql("events.ts", step)
    for b, n in conn.execute(f"SELECT {ts_bucket} AS b, count(*) FROM events NOT INDEXED "
                             f"WHERE events.rowid > ? AND ({where}) AND events.ts >= ? AND "
                             f"events.ts < ? GROUP BY b", [mark, *params, h_lo, h_hi]):
        buckets[b] += n
    # the partial hours at the ends: each lies inside one bucket (buckets are whole hours)
    for a, z in ((lo, h_lo), (h_hi, hi)):
        if a < z:
            n = conn.execute(f"SELECT count(*) FROM events WHERE ({where}) AND events.ts >= ? "
                             f"AND events.ts < ?", [*params, a, z]).fetchone()[0]
            buckets[a - a % step] += n
    buckets.setdefault(first, 0)
    buckets.setdefault(last, 0)
    return {b: n for b, n in buckets.items() if first <= b <= last}
