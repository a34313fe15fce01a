"""Message records on Elasticsearch: monthly indices ``logpipe-messages-YYYY.MM``.

A record's document holds the record, the copies searches use (``to``, ``domain``: every
recipient's address and domain; ``message``: the words free text matches; ``@timestamp``:
``first_seen``) and every part it was derived from (``parts``, not indexed). It lives in the
index of the month of its ``first_seen``.

Writes are read-merge-write under optimistic concurrency: the documents that may hold a record
(the months of its new lines, and the month seven days before: a message older than a week in
the queue is expired by every MTA's default) are read in real time (mget), the parts are merged
(``store/messages.py``), and the result is written with ``if_seq_no``/``if_primary_term`` (or
``create`` when new); a copy in another month's index (two workers that began a record on both
sides of a month boundary) is merged in and deleted the same way. Conflicts are read again.
A record the process has not met whose lines name one index is created without the read (see
``ElasticsearchMessages._known_records``): the node refuses the create when it exists, and the
next round reads it.
A record whose months span two indices counts as written only when a read *after* the write
finds it whole and alone, so two workers racing across indices always see each other's write
(each reads after its own); one read from a single index and written back there is done when
its conditional write succeeds (nobody changed it since the read).

Held parts (dovecot LMTP deliveries, keyed by host and msgid, see ``store/messages.py``) live in
``logpipe-held-parts``, one document per (host, msgid), written only by such lines. A held part
is done when a read finds it in its document; then every record with that msgid on that host, as
a search finds them after a refresh, is merged again. A record with a msgid reads the document
before its write (the parts it merges in) and again after it: when the parts changed in between,
it is merged again. Whichever of the two writes came last, its side sees the other's, so no
record misses a delivery. (Records used to register themselves in the document, one more write
for every message although most hosts have no LMTP lines at all; the ``records`` that older
documents list are still merged again.)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

import orjson

from logpipe.common.errors import QueryError, StoreError
from logpipe.query.lucene import compile_query
from logpipe.query.tree import And, Not, Or, Term, Wildcard, Range, Exists
from logpipe.store.elasticsearch.client import ndjson_body
from logpipe.store.elasticsearch.template import REFRESH_INTERVAL
from logpipe.store.messages import (addr_domain, held_key, is_held, merge, msgid_of,
                                     normalise_query, summary_text)

PREFIX = "logpipe-messages-"
PATTERN = PREFIX + "*"
WEEK_MS = 7 * 86_400_000
_ROUNDS = 40
_BULK_PATH = "/_bulk?filter_path=items.*.status,items.*.error"

_KW = {"type": "keyword", "ignore_above": 1024}
# Fields only searched (term, wildcard, range, exists), never sorted on nor counted by a facet,
# keep no doc values: each one was a column the node built and merged for every record written,
# and a record is rewritten as its lines arrive. What sorts (@timestamp, key) and what
# facet_messages counts (status, from, host, to, domain, recipients.status, spam.verdict) keep
# theirs.
_SEARCHED = {**_KW, "doc_values": False}
_LONG, _DOUBLE = ({"type": t, "doc_values": False} for t in ("long", "double"))
MAPPING = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"}, "first_seen": {"type": "date", "doc_values": False},
        "last_seen": {"type": "date", "doc_values": False}, "key": {"type": "keyword"},
        "qid": _SEARCHED, "host": _KW, "status": _KW, "from": _KW, "from_raw": _SEARCHED,
        "msgid": _SEARCHED, "size": _LONG, "delay_s": _DOUBLE, "lines": _LONG,
        "to": _KW, "domain": _KW, "reason": _SEARCHED,
        # free text, matched, never scored (records come sorted by time): no norms
        "message": {"type": "text", "norms": False},
        "spam": {"properties": {"verdict": _KW, "score": _DOUBLE}},
        "client": {"properties": {"hostname": _SEARCHED, "ip": _SEARCHED}},
        "recipients": {"properties": {"to": _SEARCHED, "to_raw": _SEARCHED, "status": _KW,
                                      "dsn": _SEARCHED, "relay": _SEARCHED,
                                      "reason": _SEARCHED, "delay": _DOUBLE}},
        "next": {"properties": {"qid": _SEARCHED, "host": _SEARCHED}},
        "prev": {"properties": {"qid": _SEARCHED, "host": _SEARCHED}},
        # A record's parts are written as one JSON text into this disabled object, which the
        # node stores and never parses: as an object it walked every token of every part, 0.4
        # of all it spent on a record (bench/record_mapping_bench.py). Documents written
        # before hold an object here; readers take both.
        "parts": {"type": "object", "enabled": False},
    },
}
_INTERNAL = ("@timestamp", "key", "to", "domain", "message", "parts", "held")
HELD_INDEX = "logpipe-held-parts"
HELD_MAPPING = {"dynamic": False,
                "properties": {"host": _KW, "msgid": _KW, "last_t": {"type": "long"},
                               "parts": {"type": "object", "enabled": False},
                               "records": {"type": "object", "enabled": False}}}


_DAY_MS = 86_400_000
_months: dict[int, str] = {}


def _month(ms: int) -> str:
    """``YYYY.MM`` of an epoch-ms time, worked out once per day (twice per part per round: it
    was a fifth of the message records' CPU)."""
    day = ms // _DAY_MS
    name = _months.get(day)
    if name is None:
        if len(_months) > 10_000:
            _months.clear()
        name = _months[day] = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y.%m")
    return name


def _stored_parts(source: dict) -> dict:
    """A record document's parts: one JSON text since the node was spared their parsing (see
    ``MAPPING``), an object in documents written before."""
    parts = source.get("parts")
    if isinstance(parts, str):
        return orjson.loads(parts)
    return parts or {}


def _first_ms(parts: dict) -> int:
    return min((p.get("t") or 0) for p in parts.values())


def _record(source: dict) -> dict:
    return {k: v for k, v in source.items() if k not in _INTERNAL}


def _es_fields(q):
    """Record field names to the document's: ``recipients.domain`` is ``domain``."""
    if isinstance(q, (And, Or)):
        return type(q)(tuple(_es_fields(i) for i in q.items))
    if isinstance(q, Not):
        return Not(_es_fields(q.item))
    field = getattr(q, "field", None)
    if field in ("recipients.domain", "recipients.to"):
        new = {"recipients.domain": "domain", "recipients.to": "to"}[field]
        if isinstance(q, Term):
            return Term(new, q.value)
        if isinstance(q, Wildcard):
            return Wildcard(new, q.pattern)
        if isinstance(q, Exists):
            return Exists(new)
        if isinstance(q, Range):
            return Range(new, q.low, q.high, q.include_low, q.include_high)
    if field in ("first_seen",) and isinstance(q, Range):
        return Range("@timestamp", q.low, q.high, q.include_low, q.include_high)
    return q


def message_query(text: str, start_ms: int | None = None, end_ms: int | None = None) -> dict:
    from logpipe.store.elasticsearch.reader import es_query

    query = es_query(_es_fields(normalise_query(compile_query(text or "*"))))
    window: dict = {}
    if start_ms is not None:
        window["gte"] = start_ms
    if end_ms is not None:
        window["lt"] = end_ms
    if window:
        window["format"] = "epoch_millis"
        query = {"bool": {"filter": [query, {"range": {"@timestamp": window}}]}}
    return query


class ElasticsearchMessages:
    """The message-record half of the Elasticsearch store (mixed into ElasticsearchStore)."""

    _message_template = False
    # Records this process wrote or found, by key (bounded: cleared when full). A record not
    # among them whose lines name one index only is written without a read first: ``create``
    # (the node refuses it if the record exists: it is read and merged in the next round), and
    # no read of its held parts either (_settle_held reads them after the write; a delivery
    # logged before its message's first line is rare). Where every message is new to its batch,
    # the read before the write found nothing for almost every record: a round trip and a real-
    # time get per record for nothing.
    _known_records: frozenset[str] | set[str] = frozenset()  # the instance's own from _remember
    # about 5 MB of keys; a message's lines span seconds to minutes, and a key forgotten early
    # costs only a refused create and the read it would have had anyway
    _KNOWN_MAX = 50_000

    def _remember(self, keys: Iterable[str]) -> None:
        known = self._known_records
        if not isinstance(known, set) or len(known) > self._KNOWN_MAX:
            known = self._known_records = set()
        known.update(keys)

    def _ensure_message_template(self) -> None:
        """Templates for the monthly record indices and the held-parts index, both made by their
        first write (no existence probe: a HEAD answering 404 is a failure to a strict proxy).
        A copy of every shard on a second node once there is one, as the events' template
        does: a node lost mid-burst loses no record and stops no batch."""
        if self._message_template:
            return
        try:
            data_nodes = self.client.cluster.health()["number_of_data_nodes"]  # type: ignore[attr-defined]
            settings = {"number_of_shards": 1, "number_of_replicas": 1 if data_nodes > 1 else 0,
                        "refresh_interval": REFRESH_INTERVAL}
            self.client.indices.put_index_template(  # type: ignore[attr-defined]
                name="logpipe-messages", index_patterns=[PATTERN], priority=300,
                template={"settings": settings, "mappings": MAPPING})
            self.client.indices.put_index_template(  # type: ignore[attr-defined]
                name="logpipe-held-parts", index_patterns=[HELD_INDEX], priority=300,
                template={"settings": settings, "mappings": HELD_MAPPING})
        except Exception as exc:
            raise StoreError(f"cannot install the message records' templates: {exc}") from None
        self._message_template = True

    def _mget(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        """{(index, id): (source, seq_no, primary_term)} of the documents that exist (whole:
        filtering the source would make the node parse each one)."""
        if not wanted:
            return {}
        try:
            resp = self.client.mget(  # type: ignore[attr-defined]
                docs=[{"_index": i, "_id": d} for i, d in wanted], realtime=True)
        except Exception as exc:
            raise StoreError(f"message records: cannot read from Elasticsearch: {exc}") from None
        found = {}
        for doc in resp["docs"]:
            if doc.get("found"):
                found[(doc["_index"], doc["_id"])] = (doc["_source"], doc["_seq_no"],
                                                      doc["_primary_term"])
            elif "error" in doc and doc["error"].get("type") != "index_not_found_exception":
                raise StoreError(f"message records: Elasticsearch could not read "
                                f"{doc['_id']}: {doc['error'].get('reason')}")
        return found

    def write_messages(self, grouped: dict[str, tuple[str, str, dict[str, dict]]]) -> int:
        """Merge parts into their records (see the module). Returns how many were written."""
        self._ensure_message_template()
        records = {k: v for k, v in grouped.items() if not is_held(v[1])}
        held = {k: v for k, v in grouped.items() if is_held(v[1])}
        written = self._write_records(records, {}) if records else 0
        if held:
            written += self._write_held(held)
        return written

    def _write_records(self, grouped: dict, hints: dict[str, str]) -> int:
        """The records' read-merge-write rounds; ``hints``: an index a record is known to be in
        (a record merged again for a held part has no new line to name its months)."""
        pending = dict(grouped)
        written = 0
        for round_ in range(_ROUNDS):
            if not pending:
                return written
            first_read = round_ == 0 and not hints  # where a record unknown here may go unread
            indices: dict[str, list[str]] = {}
            wanted = []
            unread: set[str] = set()
            for key, (_, _, new) in pending.items():
                stamps = [p.get("t") or 0 for p in new.values()]
                ms = sorted({_month(t) for t in stamps} | {_month(t - WEEK_MS) for t in stamps})
                names = [PREFIX + m for m in ms]
                if key in hints and hints[key] not in names:
                    names.append(hints[key])
                indices[key] = names
                if first_read and len(names) == 1 and key not in self._known_records:
                    unread.add(key)
                else:
                    wanted += [(i, key) for i in names]
            found = self._mget(wanted)
            self._remember(key for _, key in found)
            seen: dict[str, tuple[list, dict, bool, str | None]] = {}
            for key, (host, qid, new) in list(pending.items()):
                if key in unread:  # see _known_records
                    seen[key] = ([], dict(new), False, msgid_of(new))
                    continue
                copies = [(i, found[(i, key)]) for i in indices[key] if (i, key) in found]
                parts: dict = {}
                for _, (source, _, _) in copies:
                    parts.update(_stored_parts(source))
                complete = all(parts.get(i) == p for i, p in new.items())
                parts.update(new)
                if not parts:
                    del pending[key]  # merged again for a held part, but gone (pruned)
                    continue
                msgid = msgid_of(parts)
                seen[key] = (copies, parts, complete, msgid)
            holders = self._mget(sorted({(HELD_INDEX, held_key(pending[k][0], v[3]))
                                         for k, v in seen.items() if v[3] and k not in unread}))
            lines: list[bytes] = []
            owners: list[str] = []
            alone: set[str] = set()  # written where they were read, and nowhere else
            merged_held: dict[str, dict] = {}  # the held parts each written record took in
            for key, (copies, parts, complete, msgid) in seen.items():
                host, qid, _ = pending[key]
                target = PREFIX + _month(_first_ms(parts))
                if indices[key] == [target]:
                    alone.add(key)
                holder = holders.get((HELD_INDEX, held_key(host, msgid))) if msgid else None
                held = (holder[0].get("parts") or {}) if holder else {}
                in_target = next((c for c in copies if c[0] == target), None)
                whole = complete and len(copies) == 1 and in_target is not None and \
                    sorted(in_target[1][0].get("held") or []) == sorted(held)
                if whole:
                    del pending[key]  # read back whole and alone: done
                    continue
                merged_held[key] = held
                record = merge(host, qid, {**held, **parts})
                doc = {**record, "@timestamp": record["first_seen"], "key": key,
                       "to": [r["to"] for r in record["recipients"]],
                       "domain": sorted({addr_domain(r["to"])
                                         for r in record["recipients"]} - {""}),
                       "message": summary_text(record),
                       "parts": orjson.dumps(parts).decode(),
                       "held": sorted(held)}
                if in_target is None:
                    action = {"create": {"_index": target, "_id": key}}
                else:
                    action = {"index": {"_index": target, "_id": key,
                                        "if_seq_no": in_target[1][1],
                                        "if_primary_term": in_target[1][2]}}
                lines += [orjson.dumps(action), orjson.dumps(doc)]
                owners.append(key)
                for index, (_, seq, term) in copies:
                    if index != target:
                        lines.append(orjson.dumps({"delete": {
                            "_index": index, "_id": key, "if_seq_no": seq,
                            "if_primary_term": term}}))
                        owners.append(key)
            if lines:
                ok, refused = self._message_bulk(lines, owners)
                written += ok
                # A record read from one index only and written back there needs no read after
                # its write: its create / if_seq_no write succeeding means nobody changed it
                # since the read. The read after the write is for records whose months span two
                # indices, where two workers may each write a copy and must see each other's.
                # A record with a msgid still reads its held parts again (see _settle_held).
                settled = set(owners) & alone - refused
                self._remember(owners)
                for key in self._settle_held(settled, merged_held, pending, seen):
                    del pending[key]
        raise StoreError(f"message records: {len(pending)} still contended after {_ROUNDS} "
                        "rounds; the batch is retried")

    def _settle_held(self, written: set[str], merged_held: dict[str, dict], pending: dict,
                     seen: dict) -> set[str]:
        """Of records just written whole, those done: without a msgid, all; with one, those
        whose held parts (read again, now, in real time) are still the ones they took in.

        This orders a record's write against a held part's without a shared document: the
        held side writes its part, then searches the records with its msgid after a refresh
        (:meth:`_records_with`). A record written before that refresh is found and merged
        again there; one written after it reads the part here, after its write, and is merged
        again in the next round."""
        done = {key for key in written if not seen[key][3]}
        check = {key: held_key(pending[key][0], seen[key][3]) for key in written - done}
        if check:
            holders = self._mget(sorted({(HELD_INDEX, doc_id) for doc_id in check.values()}))
            for key, doc_id in check.items():
                holder = holders.get((HELD_INDEX, doc_id))
                if ((holder[0].get("parts") or {}) if holder else {}) == merged_held[key]:
                    done.add(key)
        return done

    def _records_with(self, msgids: set[tuple[str, str]]) -> dict[str, tuple[str, str, str]]:
        """{record key: (host, qid, index)} of the records of these (host, msgid) pairs, as a
        search finds them after a refresh (every record written before it is visible). A msgid
        over the keyword's 1,024 characters is not indexed, so not found: such a delivery line
        stays in the held parts and joins its record when that record is written again."""
        if not msgids:
            return {}
        self.refresh_messages()
        wanted = sorted({m for _, m in msgids})
        found: dict[str, tuple[str, str, str]] = {}
        for start in range(0, len(wanted), 100):
            hits = self._msearch(query={"terms": {"msgid": wanted[start:start + 100]}},
                                 size=10_000, source=["host", "msgid", "qid", "key"])
            for hit in hits["hits"]["hits"]:
                src = hit["_source"]
                if (src.get("host"), src.get("msgid")) in msgids and src.get("key"):
                    found[src["key"]] = (src["host"], src["qid"], hit["_index"])
        return found

    @staticmethod
    def _holder_write(doc_id: str, holder: tuple | None, source: dict) -> list[bytes]:
        if holder is None:
            action = {"create": {"_index": HELD_INDEX, "_id": doc_id}}
        else:
            action = {"index": {"_index": HELD_INDEX, "_id": doc_id, "if_seq_no": holder[1],
                                "if_primary_term": holder[2]}}
        # the newest held line's time: what the prune reads (the parts themselves are not indexed)
        stamps = [p.get("t") or 0 for p in (source.get("parts") or {}).values()]
        return [orjson.dumps(action), orjson.dumps({**source, "last_t": max(stamps, default=0)})]

    def _write_held(self, grouped: dict) -> int:
        """Held parts into their (host, msgid) document; then every record it lists merged
        again (see the module)."""
        pending = dict(grouped)
        again: dict[str, tuple[str, str, str]] = {}
        written = 0
        for _ in range(_ROUNDS):
            if not pending:
                break
            found = self._mget([(HELD_INDEX, key) for key in pending])
            lines: list[bytes] = []
            owners: list[str] = []
            for key, (host, spelled, new) in list(pending.items()):
                holder = found.get((HELD_INDEX, key))
                parts = dict((holder[0].get("parts") or {}) if holder else {})
                records = (holder[0].get("records") or {}) if holder else {}
                if all(parts.get(i) == p for i, p in new.items()):
                    for rkey, (index, rhost, rqid) in records.items():
                        again[rkey] = (rhost, rqid, index)
                    del pending[key]  # read back in the document: done
                    continue
                parts.update(new)
                lines += self._holder_write(key, holder, {"host": host, "msgid": spelled[1:-1],
                                                          "parts": parts, "records": records})
                owners.append(key)
            if lines:
                written += self._message_bulk(lines, owners)[0]
        else:
            raise StoreError(f"message records: {len(pending)} held parts still contended "
                            f"after {_ROUNDS} rounds; the batch is retried")
        # the records with these msgids, as a search finds them once every write made before
        # now is visible; and those the document lists (written before records stopped
        # registering themselves there)
        again.update(self._records_with({(host, spelled[1:-1])
                                         for host, spelled, _ in grouped.values()}))
        if again:
            written += self._write_records({k: (h, q, {}) for k, (h, q, _) in again.items()},
                                           {k: i for k, (_, _, i) in again.items()})
        return written

    def _message_bulk(self, lines: list[bytes], owners: list[str]) -> tuple[int, set[str]]:
        """(items written, the owners of items refused as contended: read again next round)."""
        try:
            # per item only its status and error: what is read here (as the events' bulk does)
            resp = self.client.perform_request(  # type: ignore[attr-defined]
                "POST", _BULK_PATH, body=ndjson_body(lines),
                headers={"content-type": "application/x-ndjson", "accept": "application/json"})
        except Exception as exc:
            raise StoreError(f"message records: bulk write failed: {exc}") from None
        ok = 0
        refused: set[str] = set()
        for item, key in zip(resp.body["items"], owners):
            result = next(iter(item.values()))
            status = result.get("status", 500)
            if status in (200, 201):
                ok += 1
            elif status in (404, 409):
                refused.add(key)  # someone else got there first: read again next round
            else:
                raise StoreError(f"message record {key}: Elasticsearch answered {status}: "
                                f"{result.get('error')}", permanent=400 <= status < 500
                                and status != 429)
        return ok, refused

    # ---------------------------------------------------------------- reading
    def refresh_messages(self) -> None:
        from logpipe.store.elasticsearch.reader import _call

        _call("message records", self.client.indices.refresh,  # type: ignore[attr-defined]
              index=PATTERN, ignore_unavailable=True, allow_no_indices=True)

    def _msearch(self, **kwargs) -> dict:
        from logpipe.store.elasticsearch.reader import _call

        return _call("message search", self.client.search,  # type: ignore[attr-defined]
                     index=PATTERN, ignore_unavailable=True, allow_no_indices=True, **kwargs)

    def _with_prev(self, records: list[dict]) -> list[dict]:
        qids = sorted({r["qid"] for r in records if r.get("qid") and r["qid"] != "NOQUEUE"})
        if not qids:
            return records
        resp = self._msearch(query={"terms": {"next.qid": qids}}, size=1000,
                             source=["qid", "host", "next"])
        found: dict[str, list[dict]] = {}
        for hit in resp["hits"]["hits"]:
            src = hit["_source"]
            for link in src.get("next") or ():
                if link.get("qid") in qids:
                    found.setdefault(link["qid"], []).append({"qid": src["qid"],
                                                              "host": src["host"]})
        for r in records:
            links = found.get(r.get("qid") or "")
            if links:
                r["prev"] = sorted(links, key=lambda x: (x["qid"], x["host"] or ""))
        return records

    def stream_messages(self, query: str = "*", start_ms: int | None = None,
                        end_ms: int | None = None, limit: int | None = None,
                        order: str = "desc", page_size: int = 1000):
        q = message_query(query, start_ms, end_ms)
        direction = "asc" if order == "asc" else "desc"
        after = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            kwargs: dict = {"query": q, "size": size,
                            "sort": [{"@timestamp": direction}, {"key": direction}],
                            "source_excludes": ["parts"]}
            if after is not None:
                kwargs["search_after"] = after
            hits = self._msearch(**kwargs)["hits"]["hits"]
            yield from self._with_prev([_record(h["_source"]) for h in hits])
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
            if left is not None:
                left -= len(hits)

    def count_messages(self, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None) -> int:
        from logpipe.store.elasticsearch.reader import _call

        q = message_query(query, start_ms, end_ms)
        return int(_call("message count", self.client.count,  # type: ignore[attr-defined]
                         index=PATTERN, query=q, ignore_unavailable=True,
                         allow_no_indices=True)["count"])

    def facet_messages(self, field: str, query: str = "*", start_ms: int | None = None,
                       end_ms: int | None = None, size: int = 10) -> list[tuple[str, int]]:
        name = {"recipients.domain": "domain", "recipients.to": "to",
                "recipients.status": "recipients.status"}.get(field, field)
        if name not in ("status", "from", "host", "domain", "to", "recipients.status",
                        "spam.verdict"):
            raise QueryError(f"no facet on {field!r} (status, from, host, domain)")
        q = message_query(query, start_ms, end_ms)
        resp = self._msearch(query=q, size=0, aggs={"f": {"terms": {"field": name,
                                                                    "size": size}}})
        return [(str(b["key"]), b["doc_count"]) for b in resp["aggregations"]["f"]["buckets"]]

    def get_message(self, key: str) -> dict | None:
        resp = self._msearch(query={"term": {"key": key}}, size=1, source_excludes=["parts"])
        hits = resp["hits"]["hits"]
        return self._with_prev([_record(hits[0]["_source"])])[0] if hits else None

    def messages_by_qid(self, qid: str) -> list[dict]:
        resp = self._msearch(query={"term": {"qid": qid}}, size=100, source_excludes=["parts"],
                             sort=[{"key": "asc"}])
        return self._with_prev([_record(h["_source"]) for h in resp["hits"]["hits"]])

    def prune_messages(self, older_than_ms: int) -> int:
        """Delete the records whose last line is older than the cut-off (as the embedded store
        does: a record a late line kept alive stays, whatever month's index holds it). By
        search and bulk delete, a page at a time: the node may lack delete-by-query (the
        reindex module)."""
        from logpipe.store.elasticsearch.reader import _call

        self.refresh_messages()
        query = {"range": {"last_seen": {"lt": older_than_ms, "format": "epoch_millis"}}}
        deleted = 0
        while True:
            hits = self._msearch(query=query, size=1000, source=False,
                                 sort=[{"key": "asc"}])["hits"]["hits"]
            if not hits:
                self._prune_held(older_than_ms)
                return deleted
            body = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            resp = _call("message prune", self.client.bulk,  # type: ignore[attr-defined]
                         operations=body, refresh=True)
            deleted += sum(1 for item in resp["items"]
                           if item["delete"].get("result") == "deleted")

    def _prune_held(self, older_than_ms: int) -> None:
        """The held parts (dovecot deliveries by message-id) whose newest line is older than the
        cut-off, as the embedded store drops its old ``message_held`` rows."""
        from logpipe.store.elasticsearch.reader import _call

        # what was written just before is searched too (the held index's own refresh)
        _call("held parts prune", self.client.indices.refresh,  # type: ignore[attr-defined]
              index=HELD_INDEX, ignore_unavailable=True, allow_no_indices=True)
        while True:
            hits = _call("held parts prune", self.client.search,  # type: ignore[attr-defined]
                         index=HELD_INDEX, ignore_unavailable=True, allow_no_indices=True,
                         query={"range": {"last_t": {"lt": older_than_ms}}}, size=1000,
                         source=False)["hits"]["hits"]
            if not hits:
                return
            body = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            _call("held parts prune", self.client.bulk,  # type: ignore[attr-defined]
                  operations=body, refresh=True)



__all__ = ["ElasticsearchMessages", "MAPPING", "PATTERN", "PREFIX", "message_query"]
