"""The embedded store's layout: tables, indexes, the full-text index, the meta keys, and the
store URL. Writer, reader and retention all build on it.

Layout::

    events(rowid, id UNIQUE, ts = @timestamp in epoch ms, host, type, program, qid, size, doc JSON)
        indexes: id, ts, (host, ts), (program, ts), (qid, ts) and (size, ts) (the last two
        partial: only the events that have the field)
    events_fts   FTS5 over the message's tokens (the Elasticsearch standard analyzer's rules,
                 computed in Python by query.analyzer.analyze), rowid = events.rowid;
                 contentless, detail=full (phrases need the positions)
    events_fts_vocab   the FTS5 vocabulary (for wildcards inside a message word)

A value that does not fit its typed field (:mod:`store.fields`) is kept in the document under
``_malformed_source`` instead of its own key, so no column, condition or top-values path sees it
(it is not indexed under its type, as with Elasticsearch's ``ignore_malformed``); the reader puts
it back where it was (:func:`returned_doc`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import parse_qsl, unquote

import orjson

from logpipe.common.errors import ConfigError
from logpipe.query.analyzer import ANALYZER_VERSION, TOKEN_EXTRA_CHARS
from logpipe.store.fields import HIDDEN_MALFORMED, MALFORMED_FIELD, mark_malformed

# Fields the embedded store keeps in real, indexed columns (fixed identifiers, never user text).
# Everything else is read from the JSON document with a bound path.
SQL_COLUMNS = {"host": "host", "type": "type", "program": "program", "qid": "qid",
               "size": "size"}
FTS_TABLE = "events_fts"
FTS_VOCAB = "events_fts_vocab"
# FTS5 only has to split what it is given (fts_text: the message with the non-joining punctuation
# blanked, or analyze()'s lower-cased tokens joined by spaces) and fold ASCII case: the ascii
# tokenizer does exactly that (bytes >= 0x80 are token characters, so a non-ASCII token is kept
# as analyze() made it) and costs less than unicode61. Stores made with unicode61 stay readable.
FTS_TOKENIZE = "ascii tokenchars '" + TOKEN_EXTRA_CHARS.replace("'", "''") + "'"
# FTS5 merges its segments less often (faster loading; queries barely notice)
FTS_AUTOMERGE = 16
PROMOTED = tuple(SQL_COLUMNS)  # host, type, program, qid, size
assert PROMOTED == ("host", "type", "program", "qid", "size")  # _prepare_rows
# The layout, part by part, in the order the parts came (store.sqlite.migrations makes them,
# one numbered step each; every statement is safe to run again)
EVENTS_SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS events (
        id TEXT NOT NULL,
        ts INTEGER,
        {", ".join(SQL_COLUMNS[f] for f in PROMOTED)},
        doc TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events(id)",
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
    "CREATE INDEX IF NOT EXISTS events_host_ts ON events(host, ts)",
    "CREATE INDEX IF NOT EXISTS events_program_ts ON events(program, ts)",
    # most events have no qid or size: partial indexes skip them (any comparison on the column
    # implies IS NOT NULL, so SQLite still uses them)
    "CREATE INDEX IF NOT EXISTS events_qid_ts ON events(qid, ts) WHERE qid IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_size_ts ON events(size, ts) WHERE size IS NOT NULL",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
        body, content='', columnsize=0, tokenize="{FTS_TOKENIZE}")""",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_VOCAB} USING fts5vocab({FTS_TABLE}, 'row')",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
]
COUNTS_SCHEMA = [
    # event counts per hour and per day (store.sqlite.rollup; unit and start in epoch ms): for
    # every event (dim '') and per value of the low-cardinality promoted columns, of the rows
    # up to meta.rollup_mark
    """CREATE TABLE IF NOT EXISTS counts (
        unit INTEGER NOT NULL, dim TEXT NOT NULL, value NOT NULL, start INTEGER NOT NULL,
        n INTEGER NOT NULL, PRIMARY KEY (unit, dim, value, start)) WITHOUT ROWID""",
]
VALUE_COUNTS_SCHEMA = [
    # events per value of each field with a value index (store.sqlite.value_counts), of the
    # rows up to meta.value_count_mark; values keep their SQLite type (no affinity). The
    # second index hands out a field's top values in Elasticsearch's order; it leaves out the
    # values of one event (most of them in a field with many values: half the table's disk),
    # which come after all others, in value order, from the primary key
    """CREATE TABLE IF NOT EXISTS value_counts (
        field TEXT NOT NULL, value NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (field, value)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS value_counts_top ON value_counts(field, n DESC, value) "
    "WHERE n > 1",
]
VALUE_DIMS_SCHEMA = [
    # the same per value of host, type and program (dim, dimval), only for the counted fields
    # with few distinct values (value_counts.DIM_DISTINCT_MAX; meta value_dims:<field>), so
    # that top values under one term on such a column read them too; up to the same mark
    """CREATE TABLE IF NOT EXISTS value_dim_counts (
        field TEXT NOT NULL, dim TEXT NOT NULL, dimval NOT NULL, value NOT NULL,
        n INTEGER NOT NULL, PRIMARY KEY (field, dim, dimval, value)) WITHOUT ROWID""",
]
# one record per message (store.sqlite.messages)
MESSAGE_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS messages (
        key TEXT NOT NULL, host TEXT, qid TEXT, first_ms INTEGER, last_ms INTEGER,
        status TEXT, sender TEXT, size INTEGER, delay_s REAL, spam_score REAL,
        spam_verdict TEXT, msgid TEXT, body TEXT, doc TEXT NOT NULL, parts TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_key ON messages(key)",
    "CREATE INDEX IF NOT EXISTS messages_first ON messages(first_ms)",
    "CREATE INDEX IF NOT EXISTS messages_status_first ON messages(status, first_ms)",
    "CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender)",
    "CREATE INDEX IF NOT EXISTS messages_qid ON messages(qid)",
    "CREATE INDEX IF NOT EXISTS messages_msgid ON messages(msgid, host)",
    # held parts: lines that name their message by message-id only (dovecot LMTP deliveries),
    # merged into the records of their host with that msgid whichever side is written first
    """CREATE TABLE IF NOT EXISTS message_held (
        host TEXT NOT NULL, msgid TEXT NOT NULL, line TEXT NOT NULL, part TEXT NOT NULL,
        PRIMARY KEY (msgid, host, line))""",
    """CREATE TABLE IF NOT EXISTS message_rcpts (
        mid INTEGER NOT NULL, addr TEXT, domain TEXT, status TEXT, relay TEXT)""",
    "CREATE INDEX IF NOT EXISTS message_rcpts_mid ON message_rcpts(mid)",
    "CREATE INDEX IF NOT EXISTS message_rcpts_addr ON message_rcpts(addr)",
    "CREATE INDEX IF NOT EXISTS message_rcpts_domain ON message_rcpts(domain)",
    # hand-offs: a record's ``next`` queue ids, so the record handed to fills its ``prev``
    "CREATE TABLE IF NOT EXISTS message_links (mid INTEGER NOT NULL, qid TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS message_links_mid ON message_links(mid)",
    "CREATE INDEX IF NOT EXISTS message_links_qid ON message_links(qid)",
]
COLUMNS = ["rowid", "id", "ts", *(SQL_COLUMNS[f] for f in PROMOTED), "doc"]


@functools.lru_cache(maxsize=64)
def insert_sql(table: str, columns: tuple[str, ...], rows: int, tail: str = "") -> str:
    """A multi-row INSERT ... VALUES (?, ...), ... : a whole chunk in one statement, one
    sqlite3_step that runs without the GIL (overlapping the preparation of the next chunk).
    Plain parameters, not a JSON array: SQLite 3.40 parses a JSON row once per column it
    extracts, which cost more than the insert itself (~12 us per event)."""
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table}({', '.join(columns)}) VALUES {', '.join([one] * rows)}{tail}"


def insert_rows(rows: int) -> str:
    return insert_sql("events", tuple(COLUMNS), rows, " ON CONFLICT(id) DO NOTHING")


def insert_fts(rows: int) -> str:
    return insert_sql(FTS_TABLE, ("rowid", "body"), rows)




# Fields promoted by use: a term, wildcard or range query (or top) on a field of the JSON
# document that has no index yet records the wish (meta key WANTED_PREFIX + field) and reads
# the documents; the store's idle maintenance (SqliteStore.maintain, or promote() when asked)
# builds the index on its value (json_value_sql), so no search ever builds one under the write
# lock. A list or an object is indexed as a
# BLOB of its JSON text: blobs sort after every number and string, so the index alone tells
# scalars (answered from the index) from lists and objects (read element by element), which no
# value of a scalar can be confused with. SQLite matches an indexed expression by its text, so
# the path is a literal here, not a bound parameter: only names made of these characters qualify,
# and no query text is ever pasted into SQL otherwise. Each such index costs every later write
# two JSON lookups per row (~3 us); at most JSON_INDEX_LIMIT of them, other fields are read from
# the documents as before.
JSON_INDEX_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
JSON_INDEX_PREFIX = "events_jt_"
JSON_INDEX_LIMIT = 32
# the layout of a value index, part of its name: (value, ts, host, type, program) since v2, so
# that top values of a field under a query on the promoted columns read the index alone
# (v1, (value, ts), made a table lookup per entry: 8x slower); maintenance replaces v1 ones
JSON_INDEX_VERSION = "2"
JSON_INDEX_COVERS = ("host", "type", "program")
WANTED_PREFIX = "want_index:"  # meta key prefix: a field a search wanted an index for
# meta key prefix: a wanted field no event had up to this rowid (maintenance looked; a search
# never spends one of the JSON_INDEX_LIMIT slots on a field the store does not hold)
ABSENT_PREFIX = "want_absent_upto:"
PINNED_PREFIX = "pinned_index:"  # meta key prefix: an index asked for by name (maintain --index)
_NOT_PROMOTED = frozenset(("message", "@timestamp", "_id", "tags"))


def json_indexable(field: str) -> bool:
    return (field not in SQL_COLUMNS and field not in _NOT_PROMOTED
            and JSON_INDEX_FIELD.fullmatch(field) is not None)


def json_index_name(field: str, version: str = JSON_INDEX_VERSION) -> str:
    key = field if version == "1" else f"{version}:{field}"
    return JSON_INDEX_PREFIX + hashlib.sha1(key.encode()).hexdigest()[:16]


def json_literal_path(field: str) -> str:
    """The SQL text of the field's JSON path (only for json_indexable names)."""
    assert json_indexable(field), field
    return "'$.\"" + field + "\"'"


def json_value_sql(field: str, table: str = "") -> str:
    """The indexed value of a field: the scalar itself (NULL when missing or null), a list's or
    object's JSON text as a BLOB. ``table`` qualifies the column (``events.``) in queries."""
    path, doc = json_literal_path(field), table + "doc"
    return (f"iif(json_type({doc}, {path}) IN ('array', 'object'), "
            f"CAST(json_extract({doc}, {path}) AS BLOB), json_extract({doc}, {path}))")


def json_index_sql(field: str) -> str:
    # (value, ts, ...): a query on the value alone counts and orders its hits by time from the
    # index; the promoted columns after ts let a query on them be checked in the index too
    return (f"CREATE INDEX IF NOT EXISTS {json_index_name(field)} ON "
            f"events({json_value_sql(field)}, ts, {', '.join(JSON_INDEX_COVERS)})")


# HIDDEN_MALFORMED (store.fields): field -> its malformed value, out of every query's reach;
# a record cannot set it (store.fields.RESERVED_FIELDS)


def stored_doc(doc: dict) -> dict:
    """The document as the embedded store keeps it: ``doc`` itself, or (a typed field does not
    fit) marked as :func:`store.fields.mark_malformed` says, its malformed values moved under
    ``_malformed_source``."""
    marked = mark_malformed(doc)
    if marked is doc:
        return doc
    hidden = {name: marked.pop(name) for name in marked[MALFORMED_FIELD] if name in marked}
    if hidden:
        marked[HIDDEN_MALFORMED] = hidden
    return marked


def returned_doc(data: str | bytes) -> dict:
    """A stored document (JSON) as search returns it: malformed values back in their fields."""
    doc = orjson.loads(data)
    hidden = doc.pop(HIDDEN_MALFORMED, None)
    if isinstance(hidden, dict):
        doc.update(hidden)
    return doc


FTS_MARK = "fts_mark"  # meta key: the highest rowid the full-text index has caught up with
MARK_SQL = f"SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{FTS_MARK}'"
# the first rowid a write may use is above both the last row and the mark: a pruned tail must
# not hand out rowids again that the full-text index has already passed
NEXT_ROWID_SQL = (f"SELECT max(COALESCE((SELECT MAX(rowid) FROM events), 0), "
                   f"COALESCE(({MARK_SQL}), 0))")
# the last row and the mark (None: a store from before the catch-up) at the start of a write
TOP_AND_MARK_SQL = f"SELECT COALESCE((SELECT MAX(rowid) FROM events), 0), ({MARK_SQL})"


def parse_url(url: str) -> tuple[str, dict]:
    """``sqlite:///rel.db`` -> ('rel.db', {});
    ``sqlite:////abs.db?timeout=5`` -> ('/abs.db', {'timeout': '5'})."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError(f"not an embedded store URL: {url!r} (use sqlite:///path/to/events.db)")
    rest, _, query = rest.partition("?")
    if rest in ("", "/"):
        raise ConfigError(f"the store URL {url!r} names no file: use sqlite:///relative.db or "
                          "sqlite:////absolute/path.db")
    if not rest.startswith("/"):
        raise ConfigError(f"the store URL {url!r} has a host part; use sqlite:///relative.db or "
                          "sqlite:////absolute/path.db (three or four slashes)")
    path = unquote(rest[1:])
    if path != ":memory:":
        path = os.path.expanduser(path)
    return path, dict(parse_qsl(query))


__all__ = ["HIDDEN_MALFORMED", "returned_doc", "stored_doc",
           "ANALYZER_VERSION", "COLUMNS", "FTS_AUTOMERGE", "FTS_MARK", "FTS_TABLE", "FTS_TOKENIZE",
           "FTS_VOCAB", "MARK_SQL", "NEXT_ROWID_SQL", "PROMOTED", "EVENTS_SCHEMA", "COUNTS_SCHEMA",
           "VALUE_COUNTS_SCHEMA", "VALUE_DIMS_SCHEMA", "MESSAGE_SCHEMA",
           "SQL_COLUMNS", "TOP_AND_MARK_SQL", "insert_fts", "insert_rows", "parse_url",
           "JSON_INDEX_LIMIT", "JSON_INDEX_PREFIX", "JSON_INDEX_VERSION", "WANTED_PREFIX",
           "ABSENT_PREFIX", "PINNED_PREFIX",
           "json_indexable", "json_index_name", "json_index_sql", "json_literal_path",
           "json_value_sql"]


# id of a writing connection -> (the connection, the open lock file its writers queue on; see
# immediate()): the connection is held so its id is not reused before unqueue_writers()
_WRITER_QUEUES: dict[int, tuple[sqlite3.Connection, int, float]] = {}
_QUEUE_POLL_S = 0.0005


def queue_writers(conn: sqlite3.Connection, path: str, timeout: float) -> None:
    """Make the writers of this store file (every process's) take turns on a lock file before
    SQLite's write lock. SQLite's own wait for a busy lock sleeps 1, 2, 5 ... up to 100 ms
    between tries, so a writer that arrives while another holds the lock for a few
    milliseconds often sleeps several times that: with two workers writing batch after
    batch, the store's write lock stood idle a large share of the time. The lock file is
    polled every half millisecond; it only orders the writers, SQLite's lock still guards the
    data (a writer that cannot get the file within the store's timeout goes on to SQLite's)."""
    fd = os.open(path + "-writers.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    old = _WRITER_QUEUES.get(id(conn))
    _WRITER_QUEUES[id(conn)] = (conn, fd, timeout)
    if old is not None:
        os.close(old[1])


def unqueue_writers(conn: sqlite3.Connection) -> None:
    entry = _WRITER_QUEUES.pop(id(conn), None)
    if entry is not None:
        os.close(entry[1])


@contextmanager
def _writers_turn(conn: sqlite3.Connection) -> Iterator[None]:
    entry = _WRITER_QUEUES.get(id(conn))
    if entry is None:
        yield
        return
    _, fd, timeout = entry
    deadline = None
    held = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
            break
        except BlockingIOError:
            now = time.monotonic()
            deadline = deadline or now + timeout
            if now > deadline:
                break  # SQLite's own wait (and its timeout error) from here
            time.sleep(_QUEUE_POLL_S)
        except OSError:
            break
    try:
        yield
    finally:
        if held:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction (the write lock taken up front, so two writers never
    deadlock upgrading a read): committed when the block ends, rolled back when anything raises
    (the original error goes on; a failing rollback does not hide it). Writers take turns
    first (:func:`queue_writers`)."""
    with _writers_turn(conn):
        with _transaction(conn):
            yield conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
