"""Per-field value counts of the embedded store, so that the top values of an indexed field over
all events cost what the answer costs, not what the number of events does.

The ``value_counts`` table (schema.SCHEMA) holds, for each field with a value index
(schema.json_index_name, built by maintenance's promote), how many events hold each value, for
the rows up to the rowid ``meta.value_count_mark``; the meta key ``COUNTED_PREFIX + field``
says a field is counted. The counting is the top paths' own: a scalar once per event, a list
(or object) each distinct element once per event, null/object/array elements skipped
(json_each with count(DISTINCT rowid)); a malformed value is kept under ``_malformed_source``,
not at the field's path, so it is never counted.

As with the per-hour counts (:mod:`store.sqlite.rollup`), rows are only ever added above the
mark and never changed, so the counts are kept by a catch-up run by the store's maintenance
(:func:`catch_up_step`, bounded, inside the caller's write transaction), never by the writers;
retention subtracts what it deletes (:func:`forget`) and clamps the mark (:func:`clamp_mark`).
A field starts being counted when maintenance builds its value index (:func:`start`): its
values in the rows up to the mark are counted then, the catch-up counts the rows above it for
every counted field alike. A field whose value index is gone loses its counts at the next
catch-up step (and no read uses them meanwhile: top reads counts only for a field with an
index).

Top values of everything (:func:`counted_top`) read, in one snapshot: the field's stored top
``size``, the rows above the mark (the tail, by rowid) and the stored counts of the tail's
values, merged exactly (the tail only adds to counts, so no value outside it and outside the
stored top can overtake ``size`` others). When the tail is longer than
:data:`TAIL_ROWS` the caller counts over the index as before.

Per dim: the ``value_dim_counts`` table holds the same counts per value of host, type and
program (``dim``, ``dimval``: as the per-hour counts' dims), up to the same mark, kept by the
same catch-up and retention, so that top values under one term on such a column read them
(:func:`counted_top` with a dim). How a field is counted per dim is decided when it starts
being counted (meta ``DIMS_PREFIX + field``): a field of at most :data:`DIM_DISTINCT_MAX`
values has a row per (dim, dimval, value) (ALL); a field of more (msgid, relay, stat: almost
every value is one event's) has rows only for its values of more than one event (HEAVY: a
hundred at a million events), plus a SUM row per (dim, dimval), so that a top under a term
knows how many of its values of one event match and finds the first of them in value order by
walking the field's stored values of one event (an index lookup each; the field holds no list
up to the mark, so its value index alone answers). A field with lists and many values, or more
than :data:`HEAVY_MAX` values of several events, has no dims rows (NONE): its tops under a
query count over its index. A field of ALL that crosses DIM_DISTINCT_MAX turns HEAVY (or NONE),
one of HEAVY that gets a list turns NONE, both at the catch-up step that sees it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import orjson

from logpipe.query.tree import INT64_MAX
from logpipe.store.sqlite.rollup import DIMS
from logpipe.store.sqlite.schema import (
    JSON_INDEX_PREFIX,
    json_index_name,
    json_indexable,
    json_value_sql,
)

VALUE_COUNT_MARK = "value_count_mark"
COUNTED_PREFIX = "value_counts:"  # meta key prefix: a field whose values are counted
# meta key prefix: how a counted field's values are counted per dim (rows in value_dim_counts
# up to the mark): ALL, every value; HEAVY, only the values of more than one event (over
# every event; the field then holds no list or object up to the mark); NONE, no rows; no key:
# not decided yet (a field counted before the dims table; start decides)
DIMS_PREFIX = "value_counts_dims:"
ALL, HEAVY, NONE = "1", "h", "0"
# distinct values (over every event) up to which every value of a field is counted per dim;
# past it (relay, stat: hundreds of thousands of values at a million events, nearly all of one
# event each) rows for every value would be several times the field's own counts: only the
# values of more than one event are (relay 108, stat 13 at a million events), at most
# HEAVY_MAX of them, and a top under a term finds its values of one event by walking the
# field's values of one event in value order (at most SINGLE_WALK of them)
DIM_DISTINCT_MAX = 1_000
HEAVY_MAX = 20_000
SINGLE_WALK = 2_000
# the value of a field's row per (dim, dimval) that holds the sum of its counts (a BLOB: no
# counted value is one), so that a top under a term knows how many values of one event match
SUM = b""
MARK_SQL = f"SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{VALUE_COUNT_MARK}'"
# (row, counted field) pairs per catch-up transaction: about 2 us each (SQLite reads the
# document and walks it once per field, then adds to the table), so a step holds the write
# lock ~0.4 s (measured: 50,000 rows of 4 fields in 0.38 s). A field counted per dim costs
# DIM_CELLS cells a row (the batch grouped by value and dims, added three times more:
# measured, 50,000 rows of 4 such fields in 0.43 s where 0.25 s without)
STEP_CELLS = 200_000
DIM_CELLS = 2
MIN_STEP_ROWS = 1_000
# rows above the mark a top reads itself (about 1.8 us each: 50,000 took 90 ms for a field of
# half a million values, less than walking its index at a million events, 120 ms, and far
# less than at ten million, 1.8 s)
TAIL_ROWS = 50_000
_ELEMENTS = "j.type NOT IN ('null', 'object', 'array')"


def has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'value_counts'").fetchone() is not None


def has_dim_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'value_dim_counts'").fetchone() is not None


def dims_state(conn: sqlite3.Connection, field: str) -> str | None:
    """'1': the field is counted per dim; '0': it has too many values; None: not decided."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DIMS_PREFIX + field,)).fetchone()
    return None if row is None else str(row[0])


def _set_dims(conn: sqlite3.Connection, field: str, state: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                 "SET value = excluded.value", (DIMS_PREFIX + field, state))


def undecided_fields(conn: sqlite3.Connection) -> list[str]:
    """Counted fields whose dims are not decided yet (counted before the dims table);
    :func:`start` decides (and counts) them."""
    if not has_dim_table(conn):
        return []
    return [f for f in counted_fields(conn) if dims_state(conn, f) is None]


def more_values_than(conn: sqlite3.Connection, field: str, limit: int) -> bool | None:
    """Whether ``field`` had more than ``limit`` distinct values when last counted; None when
    its values are not counted."""
    if not has_table(conn) or not is_counted(conn, field):
        return None
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM value_counts WHERE field = ? "
                        "LIMIT ?)", (field, limit + 1)).fetchone()[0] > limit


def _too_many(conn: sqlite3.Connection, field: str) -> bool:
    """More than DIM_DISTINCT_MAX distinct values counted over every event."""
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM value_counts WHERE field = ? "
                        "LIMIT ?)", (field, DIM_DISTINCT_MAX + 1)).fetchone()[0] \
        > DIM_DISTINCT_MAX


def _too_heavy(conn: sqlite3.Connection, field: str) -> bool:
    """More than HEAVY_MAX values of more than one event."""
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM value_counts INDEXED BY "
                        "value_counts_top WHERE field = ? AND n > 1 LIMIT ?)",
                        (field, HEAVY_MAX + 1)).fetchone()[0] > HEAVY_MAX


def _has_lists(conn: sqlite3.Connection, field: str, lo: int = 0, hi: int | None = None) -> bool:
    """A list or object in the field's value index (BLOBs, after every scalar: an empty range
    when there is none), in the rows lo < rowid <= hi."""
    x, index = json_value_sql(field, "events."), json_index_name(field)
    return conn.execute(f"SELECT 1 FROM events INDEXED BY {index} WHERE {x} >= x'' AND "
                        f"events.rowid > ? AND events.rowid <= ? LIMIT 1",
                        (lo, INT64_MAX if hi is None else hi)).fetchone() is not None



def _drop_dims(conn: sqlite3.Connection, field: str) -> None:
    """The field has crossed a bound: no dims rows (a top under a query counts over the index
    again, exact)."""
    conn.execute("DELETE FROM value_dim_counts WHERE field = ?", (field,))
    _set_dims(conn, field, NONE)


def _to_heavy(conn: sqlite3.Connection, field: str) -> None:
    """A field counted per dim for every value has crossed DIM_DISTINCT_MAX: keep the rows of
    its values of more than one event only (or none: it holds lists, or too many of those)."""
    if _has_lists(conn, field) or _too_heavy(conn, field):
        _drop_dims(conn, field)
        return
    conn.execute("DELETE FROM value_dim_counts WHERE field = ? AND value IN (SELECT value FROM "
                 "value_counts WHERE field = ? AND n = 1)", (field, field))
    _set_dims(conn, field, HEAVY)


def field_path(field: str) -> str:
    """The JSON path of a counted field (only json_indexable names: no quote in them)."""
    assert json_indexable(field), field
    return '$."' + field + '"'


def counted_fields(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT substr(key, ?) FROM meta WHERE key >= ? AND key < ? ORDER BY key",
        (len(COUNTED_PREFIX) + 1, COUNTED_PREFIX, COUNTED_PREFIX[:-1] + chr(ord(":") + 1)))]


def is_counted(conn: sqlite3.Connection, field: str) -> bool:
    return conn.execute("SELECT 1 FROM meta WHERE key = ?",
                        (COUNTED_PREFIX + field,)).fetchone() is not None


def _mark(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(MARK_SQL).fetchone()
    return None if row is None else row[0]


def _set_mark(conn: sqlite3.Connection, mark: int) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                 "SET value = excluded.value", (VALUE_COUNT_MARK, mark))


def _last_rowid(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]


def _values_sql(rows: str) -> str:
    """(value, events) of the field at the bound path (the first parameter) in the events
    ``rows`` selects (a condition on events.rowid, with its own parameters after the path):
    as the top paths count, one per event and distinct value."""
    return (f"SELECT j.value AS value, count(DISTINCT events.rowid) AS n FROM events "
            f"NOT INDEXED, json_each(events.doc, ?) AS j WHERE {rows} AND {_ELEMENTS} "
            f"GROUP BY j.value")


def _add(conn: sqlite3.Connection, field: str, lo: int, hi: int) -> None:
    """Count the field's values in the rows lo < rowid <= hi into the table."""
    # (an upsert after INSERT ... SELECT needs a WHERE to parse)
    conn.execute(f"INSERT INTO value_counts(field, value, n) SELECT ?, value, n FROM "
                 f"({_values_sql('events.rowid > ? AND events.rowid <= ?')}) WHERE true "
                 f"ON CONFLICT(field, value) DO UPDATE SET n = n + excluded.n",
                 (field, field_path(field), lo, hi))


_BATCH = "temp.value_count_batch"


def _batch(conn: sqlite3.Connection, field: str, rows: str, params: tuple) -> None:
    """The temporary table of the field's (value, host, type, program, events) in the events
    ``rows`` selects (a condition on events.rowid with ``params``), one document read per
    event: summed by value they are the counts over every event (an event has one host, type
    and program), by (dim, value) the counts per dim."""
    conn.execute(f"DROP TABLE IF EXISTS {_BATCH}")
    conn.execute(f"CREATE TEMP TABLE {_BATCH.split('.')[1]} AS SELECT j.value AS value, "
                 f"{', '.join('events.' + d + ' AS ' + d for d in DIMS)}, "
                 f"count(DISTINCT events.rowid) AS n FROM events NOT INDEXED, "
                 f"json_each(events.doc, ?) AS j WHERE {rows} AND {_ELEMENTS} "
                 f"GROUP BY 1, 2, 3, 4", (field_path(field), *params))


def _add_batch(conn: sqlite3.Connection, field: str, everything: bool = True,
               heavy: bool = False, sums: bool = True) -> None:
    """Add the batch to the field's counts (over every event too unless ``everything`` is
    False) and its dims rows (``heavy``: only of the values of more than one event, counted
    over every event already), and (``sums``) to the sums of its dims rows (SUM rows)."""
    if everything:
        conn.execute(f"INSERT INTO value_counts(field, value, n) SELECT ?, value, sum(n) FROM "
                     f"{_BATCH} GROUP BY value ON CONFLICT(field, value) DO UPDATE "
                     f"SET n = n + excluded.n", (field,))
    only = (" AND EXISTS (SELECT 1 FROM value_counts AS c WHERE c.field = ?1 AND "
            f"c.value = {_BATCH}.value AND c.n > 1)") if heavy else ""
    for dim in DIMS:
        conn.execute(f"INSERT INTO value_dim_counts(field, dim, dimval, value, n) SELECT ?1, "
                     f"'{dim}', {dim}, value, sum(n) FROM {_BATCH} WHERE {dim} IS NOT NULL"
                     f"{only} GROUP BY {dim}, value ON CONFLICT(field, dim, dimval, value) DO "
                     f"UPDATE SET n = n + excluded.n", (field,))
        if sums:
            conn.execute(f"INSERT INTO value_dim_counts(field, dim, dimval, value, n) SELECT ?, "
                         f"'{dim}', {dim}, ?, sum(n) FROM {_BATCH} WHERE {dim} IS NOT NULL "
                         f"GROUP BY {dim} ON CONFLICT(field, dim, dimval, value) DO "
                         f"UPDATE SET n = n + excluded.n", (field, SUM))


def _scalar_dims(conn: sqlite3.Connection, field: str, values: list, upto: int) -> None:
    """Fill the batch with the (value, host, type, program, events) of the scalar ``values``
    in the rows up to ``upto``, each an index range (host, type and program are in the value
    index: no document read)."""
    x, index = json_value_sql(field, "events."), json_index_name(field)
    dims = ", ".join("events." + d for d in DIMS)
    for value in values:
        conn.execute(f"INSERT INTO {_BATCH} SELECT ?, {dims}, count(*) FROM events "
                     f"INDEXED BY {index} WHERE {x} = ? AND events.rowid <= ? "
                     f"GROUP BY 2, 3, 4", (value, value, upto))


def _start_dims(conn: sqlite3.Connection, field: str, upto: int) -> None:
    """Decide whether the field is counted per dim (its counts over every event, up to the
    mark ``upto``, are complete) and if so count its dims rows up to the mark: along its value
    index when there is one (a range per distinct scalar value, host/type/program read from
    the index: no document read), the lists and objects element by element."""
    conn.execute("DELETE FROM value_dim_counts WHERE field = ?", (field,))
    index = json_index_name(field)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                    (index,)).fetchone() is None:
        _set_dims(conn, field, NONE)
        return
    every = not _too_many(conn, field)
    if not every and (_has_lists(conn, field) or _too_heavy(conn, field)):
        _set_dims(conn, field, NONE)
        return
    x, path = json_value_sql(field, "events."), field_path(field)
    _batch(conn, field, "events.rowid <= ? AND false", (upto,))  # (an empty table)
    values = [r[0] for r in conn.execute(f"SELECT value FROM value_counts WHERE field = ?"
                                         f"{'' if every else ' AND n > 1'}", (field,))]
    # (elements of lists too: their range holds no scalar, or some)
    _scalar_dims(conn, field, values, upto)
    dims = ", ".join("events." + d for d in DIMS)
    if every:
        conn.execute(f"INSERT INTO {_BATCH} SELECT j.value, {dims}, count(DISTINCT "
                     f"events.rowid) FROM events INDEXED BY {index}, json_each(events.doc, ?) "
                     f"AS j WHERE {x} >= x'' AND events.rowid <= ? AND {_ELEMENTS} "
                     f"GROUP BY 1, 2, 3, 4", (path, upto))
    _add_batch(conn, field, everything=False, sums=every)
    if not every:
        # the sums over every value (scalars only: one per event), along the index alone
        conn.execute(f"DELETE FROM {_BATCH}")
        conn.execute(f"INSERT INTO {_BATCH} SELECT NULL, {dims}, count(*) FROM events "
                     f"INDEXED BY {index} WHERE {x} < x'' AND events.rowid <= ? "
                     f"GROUP BY 2, 3, 4", (upto,))
        for dim in DIMS:
            conn.execute(f"INSERT INTO value_dim_counts(field, dim, dimval, value, n) SELECT ?, "
                         f"'{dim}', {dim}, ?, sum(n) FROM {_BATCH} WHERE {dim} IS NOT NULL "
                         f"GROUP BY {dim}", (field, SUM))
    conn.execute(f"DROP TABLE {_BATCH}")
    _set_dims(conn, field, ALL if every else HEAVY)


def _add_from_index(conn: sqlite3.Connection, field: str, upto: int) -> None:
    """Count the field's values in the rows up to ``upto`` along its value index: the scalars
    grouped in the index alone (each group named by one of its rowids, whose document gives
    the value: one document read per distinct value, not per event), the lists and objects
    (BLOBs, after every scalar) element by element, as _add counts them."""
    x, index, path = json_value_sql(field, "events."), json_index_name(field), field_path(field)
    upsert = "WHERE true ON CONFLICT(field, value) DO UPDATE SET n = n + excluded.n"
    conn.execute(f"INSERT INTO value_counts(field, value, n) SELECT ?, (SELECT "
                 f"json_extract(one.doc, ?) FROM events AS one WHERE one.rowid = g.r), g.n "
                 f"FROM (SELECT events.rowid AS r, count(*) AS n FROM events INDEXED BY {index} "
                 f"WHERE {x} < x'' AND events.rowid <= ? GROUP BY {x}) AS g {upsert}",
                 (field, path, upto))
    conn.execute(f"INSERT INTO value_counts(field, value, n) SELECT ?, value, n FROM (SELECT "
                 f"j.value AS value, count(DISTINCT events.rowid) AS n FROM events INDEXED BY "
                 f"{index}, json_each(events.doc, ?) AS j WHERE {x} >= x'' AND events.rowid <= ? "
                 f"AND {_ELEMENTS} GROUP BY j.value) {upsert}", (field, path, upto))


def start(conn: sqlite3.Connection, field: str) -> bool:
    """Start counting ``field`` (its value index has just been built): its values in the rows
    up to the mark, now, along the index (inside the caller's write transaction). When no
    field is counted yet the mark moves to the last row first, so that one pass counts
    everything. Returns False when the store has no table (made before the counts) or the
    field is counted already."""
    if not has_table(conn):
        return False
    if is_counted(conn, field):
        if dims_state(conn, field) is not None or not has_dim_table(conn):
            return False
        mark = _mark(conn)   # (counted: there is one)
        _start_dims(conn, field, 0 if mark is None else mark)
        return True
    mark = _mark(conn)
    if mark is None or not counted_fields(conn):
        mark = _last_rowid(conn)
        _set_mark(conn, mark)
    conn.execute("DELETE FROM value_counts WHERE field = ?", (field,))  # nothing stale
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                    (json_index_name(field),)).fetchone():
        _add_from_index(conn, field, mark)  # (2x to 50x faster than reading every document)
    else:
        _add(conn, field, 0, mark)
    conn.execute("INSERT INTO meta(key, value) VALUES (?, strftime('%s', 'now'))",
                 (COUNTED_PREFIX + field,))
    if has_dim_table(conn):
        _start_dims(conn, field, mark)
    return True


def stop(conn: sqlite3.Connection, field: str) -> None:
    """Forget the counts of ``field`` (its value index is gone)."""
    conn.execute("DELETE FROM value_counts WHERE field = ?", (field,))
    conn.execute("DELETE FROM meta WHERE key IN (?, ?)",
                  (COUNTED_PREFIX + field, DIMS_PREFIX + field))
    if has_dim_table(conn):
        conn.execute("DELETE FROM value_dim_counts WHERE field = ?", (field,))


def drop_stale(conn: sqlite3.Connection) -> list[str]:
    """Stop counting the fields whose value index (in the current layout) is gone; returns
    them. Inside the caller's write transaction."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                        "AND name LIKE ?", (JSON_INDEX_PREFIX + "%",))}
    stale = [f for f in counted_fields(conn) if json_index_name(f) not in names]
    for field in stale:
        stop(conn, field)
    return stale


def step_rows(fields: int) -> int:
    """Rows per catch-up step for ``fields`` cells a row (a field counted per dim: DIM_CELLS)."""
    return max(MIN_STEP_ROWS, STEP_CELLS // max(1, fields))


def catch_up_step(conn: sqlite3.Connection, limit: int | None = None) -> int:
    """Count the rows above the mark for every counted field, at most ``limit`` rows (default
    :func:`step_rows`); returns how many rowids the mark moved over (0: caught up, or nothing
    counted). Runs inside the caller's write transaction."""
    if not has_table(conn):
        return 0
    drop_stale(conn)
    fields = counted_fields(conn)
    mark = _mark(conn)
    if not fields or mark is None:
        return 0
    top = _last_rowid(conn)
    if mark >= top:
        return 0
    dims = has_dim_table(conn)
    state_of = {f: dims_state(conn, f) if dims else None for f in fields}
    cells = sum(DIM_CELLS if state_of[f] in (ALL, HEAVY) else 1 for f in fields)
    rows = step_rows(cells) if limit is None else min(limit, step_rows(cells))
    upto = min(top, mark + max(1, rows))
    for field in fields:
        state = state_of[field]
        if state == HEAVY and _has_lists(conn, field, mark, upto):
            _drop_dims(conn, field)
            state = NONE
        if state == ALL:
            _batch(conn, field, "events.rowid > ? AND events.rowid <= ?", (mark, upto))
            _add_batch(conn, field)
            conn.execute(f"DROP TABLE {_BATCH}")
            if _too_many(conn, field):
                _to_heavy(conn, field)
        elif state == HEAVY:
            _batch(conn, field, "events.rowid > ? AND events.rowid <= ?", (mark, upto))
            # the values of one event up to the mark that the batch gives a second: their
            # first event's dims too (a scalar: no list up to the mark)
            second = [r[0] for r in conn.execute(
                f"SELECT DISTINCT b.value FROM {_BATCH} AS b JOIN value_counts AS c ON "
                f"c.field = ? AND c.value = b.value AND c.n = 1", (field,))]
            _add_batch(conn, field, heavy=True)
            conn.execute(f"DELETE FROM {_BATCH}")
            _scalar_dims(conn, field, second, mark)
            _add_batch(conn, field, everything=False, sums=False)
            conn.execute(f"DROP TABLE {_BATCH}")
            if _too_heavy(conn, field):
                _drop_dims(conn, field)
        else:
            _add(conn, field, mark, upto)
    _set_mark(conn, upto)
    return upto - mark


def forget(conn: sqlite3.Connection, rowids: list[int]) -> None:
    """Retention is deleting the rows ``rowids``: take those at or below the mark out of the
    counts, dropping values no event holds any more (inside the caller's write transaction,
    before the rows go)."""
    mark = _mark(conn)
    if mark is None or not rowids or not has_table(conn):
        return
    gone = sorted(r for r in rowids if r <= mark)
    if not gone:
        return
    ids = orjson.dumps(gone).decode()
    dims = has_dim_table(conn)
    for field in counted_fields(conn):
        state = dims_state(conn, field) if dims else None
        if state in (ALL, HEAVY):
            _forget_batch(conn, field, ids, heavy=state == HEAVY)
            continue
        left = conn.execute(f"UPDATE value_counts SET n = value_counts.n - g.n FROM "
                            f"({_values_sql('events.rowid IN (SELECT value FROM json_each(?))')}"
                            f") AS g WHERE value_counts.field = ? AND value_counts.value = "
                            f"g.value RETURNING value_counts.value, value_counts.n",
                            (field_path(field), ids, field)).fetchall()
        conn.executemany("DELETE FROM value_counts WHERE field = ? AND value = ?",
                         [(field, value) for value, n in left if n <= 0])


def _forget_batch(conn: sqlite3.Connection, field: str, ids: str, heavy: bool) -> None:
    """forget for a field counted per dim: its counts and its dims rows, from one batch
    (``heavy``: the rows of a value left with one event go too)."""
    _batch(conn, field, "events.rowid IN (SELECT value FROM json_each(?))", (ids,))
    left = conn.execute(f"UPDATE value_counts SET n = value_counts.n - g.n FROM (SELECT value, "
                        f"sum(n) AS n FROM {_BATCH} GROUP BY value) AS g WHERE "
                        f"value_counts.field = ? AND value_counts.value = g.value RETURNING "
                        f"value_counts.value, value_counts.n", (field,)).fetchall()
    conn.executemany("DELETE FROM value_counts WHERE field = ? AND value = ?",
                     [(field, value) for value, n in left if n <= 0])
    for dim in DIMS:
        left = conn.execute(f"UPDATE value_dim_counts SET n = value_dim_counts.n - g.n FROM "
                            f"(SELECT {dim} AS dimval, value, sum(n) AS n FROM {_BATCH} WHERE "
                            f"{dim} IS NOT NULL GROUP BY 1, 2) AS g WHERE "
                            f"value_dim_counts.field = ? AND value_dim_counts.dim = '{dim}' AND "
                            f"value_dim_counts.dimval = g.dimval AND value_dim_counts.value = "
                            f"g.value RETURNING value_dim_counts.dimval, value_dim_counts.value, "
                            f"value_dim_counts.n", (field,)).fetchall()
        conn.executemany("DELETE FROM value_dim_counts WHERE field = ? AND dim = ? AND "
                         "dimval = ? AND value = ?",
                         [(field, dim, dimval, value) for dimval, value, n in left if n <= 0])
        left = conn.execute(f"UPDATE value_dim_counts SET n = value_dim_counts.n - g.n FROM "
                            f"(SELECT {dim} AS dimval, sum(n) AS n FROM {_BATCH} WHERE {dim} IS "
                            f"NOT NULL GROUP BY 1) AS g WHERE value_dim_counts.field = ? AND "
                            f"value_dim_counts.dim = '{dim}' AND value_dim_counts.dimval = "
                            f"g.dimval AND value_dim_counts.value = ? RETURNING "
                            f"value_dim_counts.dimval, value_dim_counts.n", (field, SUM)).fetchall()
        conn.executemany("DELETE FROM value_dim_counts WHERE field = ? AND dim = ? AND "
                         "dimval = ? AND value = ?",
                         [(field, dim, dimval, SUM) for dimval, n in left if n <= 0])
    if heavy:
        conn.execute(f"DELETE FROM value_dim_counts WHERE field = ?1 AND value IN (SELECT value "
                     f"FROM {_BATCH}) AND NOT EXISTS (SELECT 1 FROM value_counts AS c WHERE "
                     f"c.field = ?1 AND c.value = value_dim_counts.value AND c.n > 1)", (field,))
    conn.execute(f"DROP TABLE {_BATCH}")


def clamp_mark(conn: sqlite3.Connection) -> None:
    """After retention: the mark never stays above the last row (a later row could get a rowid
    at or below it and never be counted)."""
    conn.execute(f"UPDATE meta SET value = min(CAST(value AS INTEGER), "
                 f"(SELECT COALESCE(MAX(rowid), 0) FROM events)) "
                 f"WHERE key = '{VALUE_COUNT_MARK}'")


def _rank(item: tuple) -> tuple:
    # Elasticsearch's order: count descending, then the value in SQLite's order (numbers
    # before text, text by its bytes = code points)
    value, n = item
    return -n, isinstance(value, str), value


def counted_top(conn: sqlite3.Connection, field: str, size: int, dim: str = "",
                values: list | tuple = ()) -> list[tuple] | None:
    """The ``size`` top (value, events) of ``field`` over every event (``dim`` '') or over the
    events whose ``dim`` (host, type or program) is one of ``values`` (a term on that column:
    its value, and the value as a number), from the counts and the rows above the mark, read
    in the caller's snapshot; None when the counts cannot serve it (no table, the field not
    counted, or not per dim, a tail longer than TAIL_ROWS)."""
    if not has_table(conn) or not is_counted(conn, field):
        return None
    state = dims_state(conn, field) if dim and has_dim_table(conn) else None
    if dim and state not in (ALL, HEAVY):
        return None
    mark = _mark(conn)
    if mark is None or _last_rowid(conn) - mark > TAIL_ROWS:
        return None
    if dim:
        return _counted_dim_top(conn, field, size, dim, list(values), mark, state == HEAVY)
    # the tail's values with their whole counts (stored + tail; a value only in the tail
    # has no stored row)
    tail = conn.execute(f"SELECT t.value, t.n + COALESCE(c.n, 0) FROM "
                        f"({_values_sql('events.rowid > ?')}) AS t LEFT JOIN value_counts AS c "
                        f"ON c.field = ? AND c.value = t.value",
                        (field_path(field), mark, field)).fetchall()
    # the tail only adds to counts: a value outside the tail that is not among the stored top
    # ``size`` has ``size`` values ahead of it still. The values of more than one event first
    # (the top index holds only those), then those of one, in value order (the primary key;
    # at most size - 1 values of more events are passed over on the way)
    stored = conn.execute("SELECT value, n FROM value_counts INDEXED BY value_counts_top "
                          "WHERE field = ? AND n > 1 ORDER BY n DESC, value LIMIT ?",
                          (field, size)).fetchall()
    if len(stored) < size:
        stored += conn.execute("SELECT value, n FROM value_counts WHERE field = ? AND n = 1 "
                               "ORDER BY value LIMIT ?", (field, size - len(stored))).fetchall()
    merged = dict(stored)
    merged.update(tail)
    return sorted(merged.items(), key=_rank)[:size]


def _counted_dim_top(conn: sqlite3.Connection, field: str, size: int, dim: str, values: list,
                     mark: int, heavy: bool) -> list[tuple] | None:
    """counted_top under a term on a dim: every stored (value, events) of the term's dim values
    (at most about DIM_DISTINCT_MAX, or HEAVY_MAX, of them: all are read, summed over the
    values a term on a number-like text matches), plus the tail's matches. ``heavy``: the rows
    hold only the values of more than one event; those of one event are found by
    :func:`_with_single_values`. None when that would take too long."""
    assert dim in DIMS, dim
    marks = ", ".join("?" * len(values))
    stored = dict(conn.execute(
        f"SELECT value, sum(n) FROM value_dim_counts WHERE field = ? AND dim = ? AND dimval IN "
        f"({marks}) GROUP BY value", (field, dim, *values)).fetchall())
    total = stored.pop(SUM, 0)
    counts: Counter = Counter(stored)
    tail = conn.execute(_values_sql(f"events.rowid > ? AND events.{dim} IN ({marks})"),
                        (field_path(field), mark, *values)).fetchall()
    for value, n in tail:
        counts[value] += n
    if heavy:
        # the stored values of one event that match: the sum less the values of several
        single = total - sum(stored.values())
        return _with_single_values(conn, field, size, dim, values, mark, counts,
                                   [v for v, _ in tail], single)
    return sorted(counts.items(), key=_rank)[:size]


class _WalkTooLong(Exception):
    """More than SINGLE_WALK values of one event walked: the caller counts over the index."""


def _single_values(conn: sqlite3.Connection, field: str, matches: str, params: list):
    """The stored values of one event of ``field`` in value order, each with ``matches`` (a
    count whose SQL names the value ``c.value``; ``params`` its parameters) for it, read a
    chunk at a time; raises _WalkTooLong past SINGLE_WALK values."""
    after, walked, chunk = None, 0, 32
    while True:
        rows = conn.execute(
            f"SELECT c.value, ({matches}) FROM value_counts AS c WHERE c.field = ? AND c.n = 1"
            + ("" if after is None else " AND c.value > ?") + " ORDER BY c.value LIMIT ?",
            [*params, field, *(() if after is None else (after,)), chunk]).fetchall()
        if not rows:
            return   # every value of one event walked
        walked += len(rows)
        if walked > SINGLE_WALK:
            raise _WalkTooLong
        chunk = min(512, chunk * 2)
        for value, hit in rows:
            after = value
            yield value, hit


def _with_single_values(conn: sqlite3.Connection, field: str, size: int, dim: str,
                        values: list, mark: int, counts: Counter, tail: list,
                        single: int) -> list[tuple] | None:
    """The top of a field counted per dim for its values of more than one event only (no list
    up to the mark): ``counts`` holds those (stored rows) and the tail's. A tail value of one
    stored event gets that event when it matches (an index lookup). Every value missing from
    ``counts`` matches at most one event (``single`` of them do, up to the mark): when the top
    needs values of one event, they are the smallest such, in value order, found by walking
    the stored values of one event (at most SINGLE_WALK of them, else None: counted over the
    index), no further than the last of them."""
    if tail:
        # in one statement: the tail's values of one stored event, and whether it matches
        x, index = json_value_sql(field, "events."), json_index_name(field)
        marks = ", ".join("?" * len(values))
        for value, hit in conn.execute(
                f"SELECT t.value, (SELECT count(*) FROM events INDEXED BY {index} WHERE "
                f"{x} = t.value AND events.rowid <= ? AND events.{dim} IN ({marks})) FROM "
                f"json_each(?) AS t JOIN value_counts AS c ON c.field = ? AND c.value = t.value "
                f"AND c.n = 1", (mark, *values, orjson.dumps(tail).decode(), field)):
            counts[value] += hit
            single -= hit
    ranked = sorted(((v, n) for v, n in counts.items() if n > 0), key=_rank)
    several = [(v, n) for v, n in ranked if n > 1]
    need = size - len(several)
    if need <= 0:
        return several[:size]
    known = [v for v, n in ranked if n == 1]   # (in value order: _rank at equal counts)
    x, index = json_value_sql(field, "events."), json_index_name(field)
    matches = (f"SELECT count(*) FROM events INDEXED BY {index} WHERE {x} = c.value AND "
               f"events.rowid <= ? AND events.{dim} IN ({', '.join('?' * len(values))})")
    return _with_ones(conn, field, matches, [mark, *values], several, known, counts, need,
                      single)


def _with_ones(conn: sqlite3.Connection, field: str, matches: str, params: list,
               several: list, known: list, counted, need: int,
               single: int | None = None) -> list[tuple] | None:
    """``several`` (the top values of several events) and then the ``need`` smallest values
    of one event: those of ``known`` and the stored values of one event not ``counted`` whose
    event ``matches`` (_single_values), walked no further than the last needed one (or than
    ``single`` found, when that many are all there are). None when the walk is too long."""
    found: list = []
    try:
        for value, hit in (_single_values(conn, field, matches, params)
                           if single is None or single > 0 else ()):
            if hit and value not in counted:
                found.append(value)
                if single is not None and len(found) >= single:   # every one of them
                    break
            # enough values of one event up to this one: none walked later comes before them
            if len(found) + sum(1 for v in known if _rank((v, 1)) <= _rank((value, 1))) >= need:
                break
    except _WalkTooLong:
        return None
    ones = sorted([*known, *found], key=lambda v: _rank((v, 1)))[:need]
    return several + [(v, 1) for v in ones]


def top_under_query(conn: sqlite3.Connection, field: str, size: int, where: str,
                    params: list) -> list[tuple] | None:
    """The ``size`` top (value, events) of ``field`` under any query (``where``: its condition
    in the form that checks one event, with ``params``), in the caller's snapshot, for a field
    counted HEAVY (no list up to the mark; its values of more than one event are few): only
    those values, and the tail's, can match more than one event, so each is counted under the
    query (an index range of a few events each); the values of one event come after them, the
    smallest in value order, found by walking the stored values of one event and checking
    each one's event (at most SINGLE_WALK of them). None when that does not serve: not HEAVY,
    a list in the tail, a long tail, too many candidates, or too long a walk (a query that few
    events match): the caller counts over the index."""
    if not has_table(conn) or not has_dim_table(conn) or dims_state(conn, field) != HEAVY:
        return None
    mark = _mark(conn)
    if mark is None or _last_rowid(conn) - mark > TAIL_ROWS:
        return None
    path = field_path(field)
    if conn.execute("SELECT 1 FROM events NOT INDEXED WHERE rowid > ? AND json_type(doc, ?) IN "
                    "('array', 'object') LIMIT 1", (mark, path)).fetchone():
        return None
    candidates = {r[0] for r in conn.execute(
        "SELECT DISTINCT json_extract(doc, ?) FROM events NOT INDEXED WHERE rowid > ? AND "
        "json_type(doc, ?) NOT IN ('null', 'array', 'object')", (path, mark, path))}
    if len(candidates) > SINGLE_WALK:
        return None
    x, index = json_value_sql(field, "events."), json_index_name(field)
    matching = f"SELECT count(*) FROM events INDEXED BY {index} WHERE {x} = {{v}} AND ({where})"
    counts: dict = {}
    for value in candidates:   # the tail's values: every event of theirs counted
        n = conn.execute(matching.format(v="?"), [value, *params]).fetchone()[0]
        if n:
            counts[value] = n
    # the stored values of several events, in the counts' order (events desc, value asc): a
    # value's count under the query is at most its count over everything (no tail event of it
    # left), so once one cannot beat the size-th so far, none after it can
    best = sorted(counts.items(), key=_rank)[:size]
    for value, total in conn.execute(
            "SELECT value, n FROM value_counts INDEXED BY value_counts_top WHERE field = ? "
            "AND n > 1 ORDER BY n DESC, value", (field,)):
        if value in candidates:
            continue
        if len(best) >= size and _rank((value, total)) > _rank(best[-1]):
            break
        candidates.add(value)
        n = conn.execute(matching.format(v="?"), [value, *params]).fetchone()[0]
        if n:
            counts[value] = n
            best = sorted([*best, (value, n)], key=_rank)[:size]
    ranked = sorted(counts.items(), key=_rank)
    several = [(v, n) for v, n in ranked if n > 1]
    need = size - len(several)
    if need <= 0:
        return several[:size]
    known = [v for v, n in ranked if n == 1]   # (in value order)
    return _with_ones(conn, field, matching.format(v="c.value"), params, several, known,
                      candidates, need)


__all__ = ["top_under_query", "more_values_than",
           "DIMS_PREFIX", "DIM_DISTINCT_MAX", "dims_state", "has_dim_table", "undecided_fields",
           "COUNTED_PREFIX", "STEP_CELLS", "TAIL_ROWS", "VALUE_COUNT_MARK", "catch_up_step",
           "clamp_mark", "counted_fields", "counted_top", "drop_stale", "forget", "has_table",
           "is_counted", "start", "step_rows", "stop"]
