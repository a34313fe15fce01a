"""Message records on the embedded store: their own tables beside ``events``.

``messages`` holds one row per record (``host/qid``): the record's JSON (``doc``), every part it
was derived from (``parts``, keyed by line id) and the columns searches use; ``message_rcpts``
one row per recipient (address, domain, status, relay) so ``to:``/``recipients.to:`` read an
index. A write merges the new parts into the stored ones and derives the record again
(``store/messages.py``), all inside one ``BEGIN IMMEDIATE`` transaction: writers are serialised
by SQLite's lock, each reads what the previous one committed, so any number of workers, any
order and any repeat give the same record.

Queries use the same language as line searches (``query/``), translated here to SQL on these
tables: ``status:bounced AND from:*@example.com AND delay_s:>3600``, ``to:dave@example.org``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Iterator

import orjson

from logpipe.common.errors import QueryError, StoreError
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (All, And, Exists, Not, Nothing, Or, Pattern, Range, Term, Text,
                                TextWildcard, TimeRange, Wildcard, numeric)
from logpipe.store.messages import (addr_domain, is_held, merge, normalise_query,
                                     summary_text)
from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.schema import immediate

# query field -> column of ``messages`` (m) or ``message_rcpts`` (r)
_COLUMNS = {"qid": "m.qid", "host": "m.host", "status": "m.status", "from": "m.sender",
            "size": "m.size", "delay_s": "m.delay_s", "spam.score": "m.spam_score",
            "spam.verdict": "m.spam_verdict", "msgid": "m.msgid", "_id": "m.key"}
_RCPT = {"to": "addr", "recipients.to": "addr", "domain": "domain",
         "recipients.domain": "domain", "recipients.status": "status",
         "recipients.relay": "relay", "relay": "relay"}
_BROAD = ("domain", "status")
_LISTS = ("recipients", "next", "prev")  # record fields that hold a list of objects
_NUMERIC = {"m.size", "m.delay_s", "m.spam_score"}
_FIELDS = ("first_ms", "last_ms", "status", "sender", "size", "delay_s", "spam_score",
           "spam_verdict", "msgid", "body", "doc", "parts")
_INSERT = (f"INSERT INTO messages(key, host, qid, {', '.join(_FIELDS)}) VALUES "
           f"({', '.join('?' * (len(_FIELDS) + 3))})")
_UPDATE = f"UPDATE messages SET {', '.join(f + ' = ?' for f in _FIELDS)} WHERE rowid = ?"


def _ms_of(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _json_path(field: str) -> str:
    return "$." + ".".join('"' + p.replace('"', '') + '"' for p in field.split("."))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# an address with at least this many recipient rows is "common": its records are
# found by reading newest first and checking each (about 20 x records / COMMON rows read for a
# page of 20); below it, through the address index, sorting at most this many records
COMMON = 4000


def message_sql(q, params: list, common=None) -> str:
    """A WHERE condition on ``messages m`` for a query's intermediate form. ``common(column,
    value)`` says whether a recipient value is shared by many records (the plan then checks it
    per record while reading newest first); without it, every value is read through its
    index."""
    if isinstance(q, All):
        return "1"
    if isinstance(q, Nothing):
        return "0"
    if isinstance(q, And):
        return "(" + " AND ".join(message_sql(i, params, common) for i in q.items) + ")"
    if isinstance(q, Or):
        return "(" + " OR ".join(message_sql(i, params, common) for i in q.items) + ")"
    if isinstance(q, Not):
        return f"NOT {message_sql(q.item, params, common)}"
    if isinstance(q, Text):
        params.append("%" + _like_escape(" ".join(q.tokens).lower()) + "%")
        return "m.body LIKE ? ESCAPE '\\'"
    if isinstance(q, TextWildcard):
        params.append("*" + q.pattern.lower().glob() + "*")
        return "m.body GLOB ?"
    if isinstance(q, TimeRange):
        out = []
        if q.start is not None:
            params.append(q.start)
            out.append("m.first_ms >= ?")
        if q.end is not None:
            params.append(q.end)
            out.append("m.first_ms < ?")
        return "(" + " AND ".join(out or ["1"]) + ")"
    field = getattr(q, "field", None)
    if field in ("@timestamp", "first_seen", "last_seen") and isinstance(q, Range):
        col = "m.last_ms" if field == "last_seen" else "m.first_ms"
        out = []
        for bound, op in ((q.low, ">=" if q.include_low else ">"),
                          (q.high, "<=" if q.include_high else "<")):
            if bound is not None:
                params.append(_ms_of(bound) if not bound.lstrip("-").isdigit() else int(bound))
                out.append(f"{col} {op} ?")
        return "(" + " AND ".join(out or ["1"]) + ")"
    if field in _RCPT:
        inner = _cond(f"r.{_RCPT[field]}", q, params)
        if _RCPT[field] in _BROAD or (common is not None and isinstance(q, Term)
                                      and common(_RCPT[field], params[-1])):
            # a few values shared by many records (a domain, a status): checked per record
            # while reading newest first, so a page stops after its 20, where the IN list
            # below would first collect every record of the domain (490 ms at 1M records)
            return f"EXISTS (SELECT 1 FROM message_rcpts r WHERE r.mid = m.rowid AND {inner})"
        # a rare value (a recipient's address, most often): its few records through the index
        return f"m.rowid IN (SELECT r.mid FROM message_rcpts r WHERE {inner})"
    head, _, sub = (field or "").partition(".")
    if sub and head in _LISTS:
        # a field of the objects in a list (recipients.dsn, next.qid): true when one of them
        # has it, as Elasticsearch answers for an array of objects
        inner = _cond(f"json_extract(je.value, {_quote(_json_path(sub))})", q, params)
        return f"EXISTS (SELECT 1 FROM json_each(m.doc, '$.{head}') je WHERE {inner})"
    column = _COLUMNS.get(field or "") or f"json_extract(m.doc, {_quote(_json_path(field or ''))})"
    return _cond(column, q, params)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cond(column: str, q, params: list) -> str:
    numeric_col = column in _NUMERIC
    if isinstance(q, Term):
        n = numeric(q.value)
        if numeric_col and n is None:
            return "0"
        params.append(n if (numeric_col or (n is not None and column.startswith("json"))) else q.value)
        if not numeric_col and n is not None and column.startswith("json"):
            params.append(q.value)
            return f"({column} = ? OR {column} = ?)"
        return f"{column} = ?"
    if isinstance(q, Wildcard):
        params.append(q.pattern.glob())
        return f"{column} GLOB ?"
    if isinstance(q, Exists):
        return f"{column} IS NOT NULL"
    if isinstance(q, Range):
        out = []
        for bound, op in ((q.low, ">=" if q.include_low else ">"),
                          (q.high, "<=" if q.include_high else "<")):
            if bound is None:
                continue
            n = numeric(bound)
            params.append(n if n is not None else bound)
            out.append(f"{column} {op} ?")
        return "(" + " AND ".join(out or [f"{column} IS NOT NULL"]) + ")"
    raise QueryError(f"this query cannot be asked of message records: {q!r}"[:200])


def compile_messages(text: str, start_ms: int | None, end_ms: int | None,
                     now: datetime | None = None, common=None) -> tuple[str, list]:
    tree = normalise_query(compile_query(text or "*", now))
    params: list = []
    where = message_sql(tree, params, common)
    if start_ms is not None:
        where += " AND m.first_ms >= ?"
        params.append(start_ms)
    if end_ms is not None:
        where += " AND m.first_ms < ?"
        params.append(end_ms)
    return where, params


class SqliteMessages:
    """The message-record part of the embedded store (:class:`store.sqlite.SqliteStore`)."""

    def __init__(self, db: Database):
        self.db = db

    def _message_conn(self) -> sqlite3.Connection:
        """The writing connection, the message tables made (by the schema migrations)."""
        if not self.db.migrated:
            self.db.prepare()
        return self.db.connect(create=True)

    def write_messages(self, grouped: dict[str, tuple[str, str, dict[str, dict]]]) -> int:
        """Merge parts into their records: {key: (host, qid, {line id: part})}. Returns how
        many records changed. Raises StoreError when the store cannot be written (retry).

        The merge (the costly part, pure Python) runs *outside* SQLite's write lock, on the
        parts read from the last committed state, so two workers merge at the same time and
        the lock is held only for the writes. Under the lock each record's stored parts are
        checked again: parts only ever grow (a union keyed by line id, a repeat replaces its
        part with the same value), so a stored ``length(parts)`` equal to the one read means
        nothing changed in between; a record another worker did change is merged again there,
        from what it committed. So any number of workers, any order and any repeat still give
        the same record."""
        changed = 0
        keys = [k for k, v in grouped.items() if not is_held(v[1])]
        held = [k for k, v in grouped.items() if is_held(v[1])]
        with self.db.lock:
            try:
                conn = self._message_conn()
                plans = [(chunk, self._plan_chunk(conn, grouped, chunk))
                         for chunk in (keys[i:i + 500] for i in range(0, len(keys), 500))]
                # one write transaction for the batch: each hand-over of the store's write lock
                # between workers costs a wait, several per batch cost more than the writes
                with immediate(conn):
                    for chunk, planned in plans:
                        changed += self._write_chunk_of_records(conn, grouped, chunk, planned)
                    for start in range(0, len(held), 500):
                        changed += self._write_held(conn, grouped, held[start:start + 500])
            except sqlite3.Error as exc:
                raise StoreError(f"embedded store {self.db.path}: message records: {exc}") \
                    from None
        return changed

    @staticmethod
    def _stored_parts(conn: sqlite3.Connection, chunk: list[str]) -> dict:
        rows = conn.execute(f"SELECT rowid, key, parts FROM messages WHERE key IN "
                            f"({','.join('?' * len(chunk))})", chunk).fetchall()
        return {k: (rowid, len(p), p) for rowid, k, p in rows}

    @staticmethod
    def _merged(host: str, qid: str, stored: str | None, new: dict, held: dict | None = None,
                force: bool = False) -> tuple | None:
        """(record, row values) of a record's stored parts (JSON text), new ones and the held
        parts of its msgid; None when the new parts are all there already (a repeat) unless
        ``force``. The row keeps the record's own parts; held ones stay in ``message_held``."""
        parts = orjson.loads(stored) if stored is not None else None
        if not force and parts is not None and all(parts.get(i) == p for i, p in new.items()):
            return None
        parts = {**(parts or {}), **new}
        everything = {**held, **parts} if held else parts
        record = merge(host, qid, everything)
        spam = record.get("spam") or {}
        stamps = [p["t"] for p in everything.values() if p.get("t") is not None]
        return record, (min(stamps, default=0), max(stamps, default=0),
                        record["status"], record["from"], record["size"], record["delay_s"],
                        spam.get("score"), spam.get("verdict"), record["msgid"],
                        summary_text(record).lower(), orjson.dumps(record).decode(),
                        orjson.dumps(parts).decode())

    def _plan_chunk(self, conn: sqlite3.Connection, grouped: dict, chunk: list[str]) -> dict:
        """Each record merged from the last committed parts, before the write lock is taken:
        {key: (length of the stored parts read or -1, merged or None)}."""
        stored = self._stored_parts(conn, chunk)
        planned = {}
        for key in chunk:
            host, qid, new = grouped[key]
            _, length, text = stored.get(key, (None, -1, None))
            planned[key] = (length, self._merged(host, qid, text, new), text)
        return planned

    @staticmethod
    def _held_parts(conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> dict:
        """{(host, msgid): {line id: part}} of the held parts of these pairs."""
        wanted = set(pairs)
        msgids = sorted({m for _, m in pairs})
        found: dict = {}
        for start in range(0, len(msgids), 500):
            chunk = msgids[start:start + 500]
            for host, msgid, line, part in conn.execute(
                    f"SELECT host, msgid, line, part FROM message_held WHERE msgid IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                if (host, msgid) in wanted:
                    found.setdefault((host, msgid), {})[line] = orjson.loads(part)
        return found

    def _write_held(self, conn: sqlite3.Connection, grouped: dict, chunk: list[str]) -> int:
        """Keep held parts (under the write lock) and merge again every record of their host
        and msgid already stored: the other half of the join, so neither order loses one."""
        rows, pairs = [], set()
        for key in chunk:
            host, spelled, parts = grouped[key]
            msgid = spelled[1:-1]
            pairs.add((host, msgid))
            rows += [(host, msgid, line, orjson.dumps(p).decode()) for line, p in parts.items()]
        conn.executemany("INSERT OR REPLACE INTO message_held(host, msgid, line, part) "
                         "VALUES (?,?,?,?)", rows)
        msgids = sorted({m for _, m in pairs})
        targets = [(k, h, q) for k, h, q, m in conn.execute(
            f"SELECT key, host, qid, msgid FROM messages WHERE msgid IN "
            f"({','.join('?' * len(msgids))})", msgids) if (h, m) in pairs]
        if not targets:
            return 0
        again: dict[str, tuple[str, str, dict]] = {key: (host, qid, {})
                                                   for key, host, qid in targets}
        keys = list(again)
        stored = self._stored_parts(conn, keys)
        planned = {key: (stored[key][1], self._merged(again[key][0], again[key][1],
                                                      stored[key][2], {}, force=True),
                         stored[key][2]) for key in keys}
        return self._write_chunk_of_records(conn, again, keys, planned)

    def _join_held(self, conn: sqlite3.Connection, grouped: dict, chunk: list[str],
                   planned: dict) -> None:
        """Under the write lock: the records about to be written merged again with the held
        parts of their host and msgid, if there are any (a delivery line seen before them)."""
        pairs: dict[tuple[str, str], list[str]] = {}
        for key in chunk:
            done = planned[key][1]
            if done is not None and done[0].get("msgid"):
                pairs.setdefault((grouped[key][0], done[0]["msgid"]), []).append(key)
        if not pairs:
            return
        for pair, parts in self._held_parts(conn, list(pairs)).items():
            for key in pairs[pair]:
                host, qid, new = grouped[key]
                length, _, text = planned[key]
                planned[key] = (length, self._merged(host, qid, text, new, parts, force=True),
                                text)

    def _write_chunk_of_records(self, conn: sqlite3.Connection, grouped: dict,
                                chunk: list[str], planned: dict) -> int:
        rows = conn.execute(f"SELECT rowid, key, length(parts) FROM messages WHERE key IN "
                            f"({','.join('?' * len(chunk))})", chunk).fetchall()
        now = {k: (rowid, length) for rowid, k, length in rows}
        stale = [k for k in chunk if now.get(k, (None, -1))[1] != planned[k][0]]
        if stale:  # another worker wrote these since they were read: merge them again
            again = self._stored_parts(conn, stale)
            for key in stale:
                host, qid, new = grouped[key]
                planned[key] = (again[key][1], self._merged(host, qid, again[key][2], new),
                                again[key][2])
        self._join_held(conn, grouped, chunk, planned)
        updates, inserts, records = [], [], {}
        for key in chunk:
            done = planned[key][1]
            if done is None:
                continue  # a repeat: nothing new
            host, qid, _ = grouped[key]
            record, values = done
            rowid = now.get(key, (None, -1))[0]
            records[key] = record
            if rowid is None:
                inserts.append((key, host, qid) + values)
            else:
                updates.append(values + (rowid,))
        if updates:
            conn.executemany(_UPDATE, updates)
            mids = [(u[-1],) for u in updates]
            conn.executemany("DELETE FROM message_rcpts WHERE mid = ?", mids)
            conn.executemany("DELETE FROM message_links WHERE mid = ?", mids)
        if inserts:
            conn.executemany(_INSERT, inserts)
        if not records:
            return 0
        mid_of = {k: rowid for k, (rowid, _) in now.items()}
        fresh = [i[0] for i in inserts]
        if fresh:
            mid_of.update({k: rowid for rowid, k in conn.execute(
                f"SELECT rowid, key FROM messages WHERE key IN ({','.join('?' * len(fresh))})",
                fresh)})
        rcpts, links = [], []
        for key, record in records.items():
            mid = mid_of[key]
            rcpts += [(mid, r["to"], addr_domain(r["to"]), r["status"], r["relay"])
                      for r in record["recipients"]]
            links += [(mid, link["qid"]) for link in record["next"]]
        if rcpts:
            conn.executemany("INSERT INTO message_rcpts(mid, addr, domain, status, relay) "
                             "VALUES (?,?,?,?,?)", rcpts)
        if links:
            conn.executemany("INSERT INTO message_links(mid, qid) VALUES (?,?)", links)
        return len(records)

    def _with_prev(self, records: list[dict]) -> list[dict]:
        """``prev`` of each record: the records whose ``next`` names its queue id (derived when
        read, so neither side's order of arrival matters)."""
        qids = sorted({r["qid"] for r in records if r.get("qid") and r["qid"] != "NOQUEUE"})
        if not qids:
            return records
        found: dict[str, list[dict]] = {}
        for start in range(0, len(qids), 500):
            chunk = qids[start:start + 500]
            for qid, pqid, phost in self._message_rows(
                    f"SELECT l.qid, m.qid, m.host FROM message_links l JOIN messages m ON "
                    f"m.rowid = l.mid WHERE l.qid IN ({','.join('?' * len(chunk))})", chunk):
                found.setdefault(qid, []).append({"qid": pqid, "host": phost})
        for r in records:
            links = found.get(r.get("qid") or "")
            if links:
                r["prev"] = sorted(links, key=lambda x: (x["qid"], x["host"] or ""))
        return records

    # ---------------------------------------------------------------- reading
    def _message_rows(self, sql: str, params: list):
        with self.db.reading() as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a store that has kept no records yet
                    return []
                raise

    def stream_messages(self, query: str = "*", start_ms: int | None = None,
                        end_ms: int | None = None, limit: int | None = None,
                        order: str = "desc", page_size: int = 1000) -> Iterator[dict]:
        """Records matching a query, newest (by first_seen) first, paged by keyset. The plan of
        a recipient condition is chosen by how many records share its value (``COMMON``)."""
        where, params = compile_messages(query, start_ms, end_ms, common=self._common_value)
        desc = order != "asc"
        op, direction = ("<", "DESC") if desc else (">", "ASC")
        after: tuple | None = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            cond, extra = where, list(params)
            if after is not None:
                cond += f" AND (m.first_ms, m.rowid) {op} (?, ?)"
                extra += list(after)
            rows = self._message_rows(
                f"SELECT m.rowid, m.first_ms, m.doc FROM messages m WHERE {cond} "
                f"ORDER BY m.first_ms {direction}, m.rowid {direction} LIMIT ?",
                extra + [size])
            yield from self._with_prev([orjson.loads(doc) for _, _, doc in rows])
            if len(rows) < size:
                return
            after = (rows[-1][1], rows[-1][0])
            if left is not None:
                left -= len(rows)

    def _common_value(self, column: str, value) -> bool:
        """Whether at least ``COMMON`` recipient rows hold this value (read through the
        column's index, stopping at ``COMMON``)."""
        if column != "addr" or not isinstance(value, str):
            return False  # relay: no index to count with; read as before
        rows = self._message_rows(
            "SELECT COUNT(*) FROM (SELECT 1 FROM message_rcpts INDEXED BY message_rcpts_addr "
            "WHERE addr = ? LIMIT ?)", [value, COMMON])
        return bool(rows) and rows[0][0] >= COMMON

    def count_messages(self, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None) -> int:
        where, params = compile_messages(query, start_ms, end_ms)
        rows = self._message_rows(f"SELECT COUNT(*) FROM messages m WHERE {where}", params)
        return rows[0][0] if rows else 0

    def facet_messages(self, field: str, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None, size: int = 10) -> list[tuple[str, int]]:
        """Top values of ``status``, ``domain`` (recipients') or ``from`` among matches."""
        where, params = compile_messages(query, start_ms, end_ms)
        if field in ("domain", "recipients.domain", "to", "recipients.to",
                     "recipients.status"):
            col = {"domain": "domain", "recipients.domain": "domain", "to": "addr",
                   "recipients.to": "addr", "recipients.status": "status"}[field]
            sql = (f"SELECT r.{col}, COUNT(*) FROM message_rcpts r JOIN messages m ON "
                   f"m.rowid = r.mid WHERE {where} GROUP BY r.{col} ORDER BY 2 DESC, 1 LIMIT ?")
        else:
            column = _COLUMNS.get(field)
            if column is None:
                raise QueryError(f"no facet on {field!r} (status, from, host, domain)")
            sql = (f"SELECT {column}, COUNT(*) FROM messages m WHERE {where} GROUP BY {column} "
                   f"ORDER BY 2 DESC, 1 LIMIT ?")
        return [(str(v), n) for v, n in self._message_rows(sql, params + [size])
                if v is not None]

    def get_message(self, key: str) -> dict | None:
        rows = self._message_rows("SELECT doc FROM messages WHERE key = ?", [key])
        return self._with_prev([orjson.loads(rows[0][0])])[0] if rows else None

    def messages_by_qid(self, qid: str) -> list[dict]:
        """Every record with this queue id (one per host)."""
        rows = self._message_rows("SELECT doc FROM messages WHERE qid = ? ORDER BY host", [qid])
        return self._with_prev([orjson.loads(d) for (d,) in rows])

    def prune_messages(self, older_than_ms: int) -> int:
        with self.db.lock:
            conn = self._message_conn()
            with immediate(conn):
                for table in ("message_rcpts", "message_links"):
                    conn.execute(f"DELETE FROM {table} WHERE mid IN (SELECT rowid FROM "
                                 "messages WHERE last_ms < ?)", (older_than_ms,))
                conn.execute("DELETE FROM message_held WHERE json_extract(part, '$.t') < ?",
                             (older_than_ms,))
                return conn.execute("DELETE FROM messages WHERE last_ms < ?",
                                    (older_than_ms,)).rowcount


__all__ = ["SqliteMessages", "compile_messages", "message_sql", "Pattern"]
