"""The web page's one adapter to the rest of logpipe: stores, query language, dead letters, stats.

Every call the page makes into other packages goes through here, so that moving the stores and
the query language (issue 11) changes this module only. Everything returned is plain data
(dicts, lists, numbers, strings); nothing here knows about HTTP or HTML.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from logpipe.common.errors import BrokerError, ConfigError, LogpipeError, QueryError
from logpipe.query.datemath import MAX_BUCKETS, parse_interval, time_arg
from logpipe.query.lucene import compile_query
from logpipe.query.phrase import field_phrase, phrase
from logpipe.search.stores import open_store_url
from logpipe.store.base import Page, SearchRequest, Store

PAGE_SIZE = 100
MAX_PAGE_SIZE = 5000      # under Elasticsearch's 10,000-hit window per request
# what one answer sends at most: a value is cut at VALUE_MAX characters (the whole value comes
# on demand: /api/event/ID?field=NAME), a hit keeps its first HIT_FIELDS_MAX fields (and a list
# or object in it its first HIT_FIELDS_MAX items), one page of results stops at PAGE_BYTES of
# hits (its cursor continues where it stopped)
VALUE_MAX = 4096
HIT_FIELDS_MAX = 500
NEST_MAX = 32
PAGE_BYTES = 2 * 1024 * 1024
LETTER_PREVIEW = 64 * 1024    # bytes of a dead letter's record shown (the rest: download)
LETTER_LIST_PREVIEW = 1024    # ... in the list of dead letters
GROK_LINE_MAX = 8 * 1024      # the closest pattern is looked for on this much of the line
HISTOGRAM_BARS = 100

# bucket sizes the histogram picks from: the smallest giving at most ~100 bars
_STEPS = ["1s", "2s", "5s", "10s", "15s", "30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h",
          "2h", "3h", "6h", "12h", "1d", "2d", "7d", "14d", "30d", "90d", "365d"]


MIN_MS = int(datetime(1, 1, 2, tzinfo=timezone.utc).timestamp() * 1000)
MAX_MS = int(datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp() * 1000)


def _ms(value) -> int | None:
    """Epoch milliseconds of an ISO time string or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def _time(value: str | None, option: str, now: datetime) -> datetime | None:
    """``from``/``to`` as :func:`time_arg` reads them; a time past what a date can hold
    (``0001-01-01`` minus an hour, ``now-1000000000000d``) is a QueryError too."""
    try:
        return time_arg(value, option, now)
    except (OverflowError, ValueError) as exc:
        raise QueryError(f"{option} {value!r}: out of range ({exc}); use a date from year "
                         "1 to 9999") from None


def iso(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def refine(query: str, field_name: str, value: str, keep: bool) -> str:
    """The query with ``field:"value"`` ANDed in (keep) or out (not keep)."""
    term = field_phrase(field_name, value)
    base = (query or "").strip()
    if base in ("", "*"):
        return term if keep else f"* AND NOT {term}"
    return f"({base}) AND {term}" if keep else f"({base}) AND NOT {term}"


@dataclass
class Results:
    """One page of hits as the page and the API send it: bounded (see PAGE_BYTES)."""
    total: int | None              # None when the total was not asked for
    hits: list[dict]
    next: str | None
    total_relation: str = "eq"
    cut: dict[str, dict] = field(default_factory=dict)   # hit id -> what of it was cut
    capped: bool = False          # the page stopped at PAGE_BYTES before its size

    @property
    def total_text(self) -> str:
        return Page(self.total, [], None, self.total_relation).total_text


def _bounded(value, depth: int = 0):
    """(value cut to the bounds, whether anything was cut)."""
    if isinstance(value, str):
        return (value[:VALUE_MAX], True) if len(value) > VALUE_MAX else (value, False)
    if isinstance(value, (list, tuple, dict)):
        if depth >= NEST_MAX:
            return "[nested too deep: download the event]", True
        items = list(value.items() if isinstance(value, dict) else value)
        cut = len(items) > HIT_FIELDS_MAX
        out = []
        for item in items[:HIT_FIELDS_MAX]:
            key, v = item if isinstance(value, dict) else (None, item)
            v, c = _bounded(v, depth + 1)
            cut = cut or c
            out.append((key, v))
        return (dict(out) if isinstance(value, dict) else [v for _, v in out]), cut
    return value, False


def bounded_hit(h: dict) -> tuple[dict, dict | None]:
    """A hit cut to the bounds, and what was cut ({"fields": [names whose value was cut],
    "omitted_fields": how many fields were left out, "fields_total"}) or None."""
    names = list(h)
    out, cut_names = {}, []
    for name in names[:HIT_FIELDS_MAX + 1]:          # + 1: "id" is the store's, not a field
        value, cut = _bounded(h[name])
        out[name] = value
        if cut:
            cut_names.append(name)
    omitted = len(names) - len(out)
    if not cut_names and not omitted:
        return h, None
    return out, {"fields": cut_names, "omitted_fields": omitted, "fields_total": len(names) - 1}


@dataclass
class Window:
    """A search's time window as the user gave it (strings) and as times."""
    start: datetime | None = None
    end: datetime | None = None
    from_text: str = ""
    to_text: str = ""


@dataclass
class Histogram:
    interval: str
    step_ms: int
    start_ms: int | None
    end_ms: int | None
    bars: list[tuple[int, int]] = field(default_factory=list)   # (bucket start ms, count)

    @property
    def peak(self) -> int:
        return max((n for _, n in self.bars), default=0)


def hit(event: dict) -> dict:
    """A stored event as the API shows it: ``id`` first, then the document."""
    out = {"id": event.get("_id")}
    if "@timestamp" in event:
        out["@timestamp"] = event["@timestamp"]
    for key, value in event.items():
        if key not in ("_id", "@timestamp", "id"):
            out[key] = value
    return out


class Data:
    """The store and the broker of one ``logpipe ui``; opened on first use, shared by requests
    (the stores' readers are thread-safe: the embedded store reads on one connection per thread,
    Elasticsearch's client is shared). Store calls run on the gate's threads under a time budget
    (search/web/gate.py, store/budget.py)."""

    def __init__(self, store_url: str, redis_url: str | None = None,
                 broker_error: str | None = None, prefix: str = "logpipe",
                 raw_list: str = "logpipe:raw", config_path: str | None = None,
                 follow_state: bool = False):
        self.store_url = store_url
        self.redis_url = redis_url
        self.broker_error = broker_error
        # The broker URL came from `logpipe up`'s state (no flag, no variable): follow it when
        # `down` + `up` start the broker on another port (services.json changes).
        self.follow_state = follow_state
        self._state_seen = _state_mark() if follow_state else None
        self._state_stale = False
        self.prefix, self.raw_list, self.config_path = prefix, raw_list, config_path
        self._sink: Store | None = None
        self._client = None
        self._lock = threading.Lock()
        self._pipeline: Any = None  # the parse pipeline, loaded on first use

    # ------------------------------------------------------------------ plumbing
    @property
    def sink(self) -> Store:
        with self._lock:
            if self._sink is None:
                self._sink = open_store_url(self.store_url)
            return self._sink

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._client is not None:
            self._client.close()

    def window(self, from_text: str | None, to_text: str | None,
               now: datetime | None = None) -> Window:
        now = now or datetime.now(timezone.utc)
        window = Window(start=_time(from_text, "from", now), end=_time(to_text, "to", now),
                        from_text=(from_text or "").strip(), to_text=(to_text or "").strip())
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise QueryError(f"from {window.from_text!r} is not before to {window.to_text!r}")
        return window

    @staticmethod
    def check_query(q: str) -> str:
        """The query to run (``*`` when empty); QueryError with the position when it is bad."""
        text = (q or "").strip() or "*"
        try:
            compile_query(text, datetime.now(timezone.utc))
        except RecursionError:
            raise QueryError("the query nests too deeply (parentheses or NOTs inside each "
                             "other); write it flatter") from None
        except (OverflowError, ValueError) as exc:
            raise QueryError(f"the query holds a number or date out of range ({exc}); "
                             "use a smaller one") from None
        return text

    def _request(self, q: str, window: Window, size: int = 0, order: str = "desc"):
        return SearchRequest(query=self.check_query(q), start=window.start, end=window.end,
                             limit=size, order=order)

    # ------------------------------------------------------------------ search
    def search(self, q: str, window: Window, size: int = PAGE_SIZE, after: str | None = None,
               order: str = "desc", with_total: bool = True) -> Results:
        """One page, bounded: values cut, and no more hits than fit in PAGE_BYTES (at least
        one, so paging always moves on); ``next`` continues after the last hit sent."""
        size = max(0, min(int(size), MAX_PAGE_SIZE))
        request = self._request(q, window, size, "asc" if order == "asc" else "desc")
        page = self.sink.search_page(request, after or None, with_total)
        hits: list[dict] = []
        cut: dict[str, dict] = {}
        used = 0
        for event in page.hits:
            h, what = bounded_hit(hit(event))
            used += len(orjson.dumps(h, option=orjson.OPT_NON_STR_KEYS))
            if hits and used > PAGE_BYTES:
                break
            hits.append(h)
            if what:
                cut[str(h["id"])] = what
        if len(hits) == len(page.hits):
            return Results(page.total, hits, page.next, page.total_relation, cut)
        # stopped short: the cursor of the last hit kept is the store's to make, so ask for
        # exactly that many (the same first hits, the same order)
        shorter = self.sink.search_page(dataclasses.replace(request, limit=len(hits)),
                                        after or None, False)
        hits = [bounded_hit(hit(e))[0] for e in shorter.hits]
        cut = {k: v for k, v in cut.items() if k in {str(h["id"]) for h in hits}}
        return Results(page.total, hits, shorter.next, page.total_relation, cut, capped=True)

    def every(self, q: str, window: Window, order: str = "desc"):
        """Every match, streamed by the store's no-cap cursor (Reader.stream, what
        ``logpipe search --all`` reads): a lazy iterator of stored events."""
        request = SearchRequest(query=self.check_query(q), start=window.start, end=window.end,
                                limit=None, order="asc" if order == "asc" else "desc")
        return self.sink.stream(request)

    def count(self, q: str, window: Window) -> int:
        return self.sink.count(self._request(q, window, 0))

    def bounds(self, q: str, window: Window, oldest: int | None = None,
               newest: int | None = None) -> tuple[int | None, int | None]:
        """First and last matching event times (ms), within the window; a bound already
        known (the first hit of a page sorted that way) is not looked up again."""
        found: list[int] = []
        for known, order in ((oldest, "asc"), (newest, "desc")):
            if known is not None:
                found.append(known)
                continue
            first = self.sink.search_page(self._request(q, window, 1, order), None, False).hits
            ms = _ms(first[0].get("@timestamp")) if first else None
            if ms is None:
                return None, None
            found.append(ms)
        return found[0], found[1]

    def histogram(self, q: str, window: Window, bars: int = HISTOGRAM_BARS,
                  interval: str | None = None, page: "Page | Results | None" = None,
                  order: str = "desc") -> Histogram:
        """About ``bars`` buckets over the window (or over the matching data when the window
        is open), every bucket present, empty ones too. ``page``: the first page of the same
        search in ``order``, whose first hit is one end of the data."""
        start = _ms(window.start)
        end = _ms(window.end)
        if start is None or end is None:
            edge = _ms(page.hits[0].get("@timestamp")) if page and page.hits else None
            lo, hi = self.bounds(q, window, oldest=edge if order == "asc" else None,
                                 newest=edge if order != "asc" else None)
            if lo is None or hi is None:
                return Histogram(interval or "1h", parse_interval(interval or "1h"), start, end)
            start = lo if start is None else start
            end = hi + 1 if end is None else end
        if interval:
            step = parse_interval(interval)
            if (end - start) // step > MAX_BUCKETS:
                raise QueryError(f"interval {interval} gives too many buckets over this window; "
                                 "pick a larger one")
        else:
            interval, step = _STEPS[-1], parse_interval(_STEPS[-1])
            for name in _STEPS:
                ms = parse_interval(name)
                if (end - start) / ms <= bars:
                    interval, step = name, ms
                    break
        request = SearchRequest(query=self.check_query(q),
                                start=datetime.fromtimestamp(start / 1000, timezone.utc),
                                end=datetime.fromtimestamp(end / 1000, timezone.utc))
        counts = {_ms(when): n for when, n in self.sink.histogram(request, interval)}
        first = start - start % step
        out = [(t, counts.get(t, 0)) for t in range(first, end, step)]
        return Histogram(interval, step, start, end, out)

    def top(self, q: str, window: Window, field_name: str, size: int = 10) -> dict:
        """Top values of a field over the whole result (the store counts every match), with
        the queries that filter each value in or out."""
        q = self.check_query(q)
        if not field_name or not field_name.strip():
            raise QueryError("top values of which field? pass field=NAME")
        request = self._request(q, window, 0)
        values = self.sink.top(request, field_name, max(1, min(int(size), 100)))
        total = self.count(q, window)
        return {"field": field_name, "total": total,
                "values": [{"value": v, "count": n,
                            "plus": refine(q, field_name, v, True),
                            "minus": refine(q, field_name, v, False)} for v, n in values]}

    def event(self, event_id: str) -> dict | None:
        """The whole stored event (unbounded: for a download or one field's value)."""
        found = self.sink.get_event(event_id)
        return hit(found) if found else None

    def surrounding(self, event_id: str, lines: int = 5) -> dict | None:
        """The lines just before and after an event from the same host and program."""
        event = self.sink.get_event(event_id)
        if event is None:
            return None
        ts = _ms(event.get("@timestamp"))
        if ts is None:
            return {"query": "", "id": event_id, "hits": [hit(event)]}
        parts = [field_phrase(name, event[name]) for name in ("host", "program")
                 if isinstance(event.get(name), (str, int))]
        q = " AND ".join(parts) or "*"
        at = datetime.fromtimestamp(ts / 1000, timezone.utc)
        before = self.sink.search_page(SearchRequest(query=q, end=at, limit=lines,
                                                     order="desc"), None, False)[1]
        after = self.sink.search_page(SearchRequest(query=q, start=at, limit=lines * 2 + 1,
                                                    order="asc"), None, False)[1]
        rows = [hit(e) for e in reversed(before)] + [hit(e) for e in after]
        # the event itself and up to `lines` after it (events sharing its millisecond included)
        idx = next((i for i, e in enumerate(rows) if e["id"] == event_id), len(before))
        rows = [bounded_hit(h)[0] for h in rows[:idx + lines + 1]]
        return {"query": q, "id": event_id, "hits": rows}

    def trace(self, qid: str) -> list[tuple[str, list[dict]]]:
        """Every event of a message, and of the queue ids it was handed to (when stored):
        [(qid, hits oldest first), ...] (search/trace.py, as ``logpipe trace``)."""
        from logpipe.search.trace import trace
        return [(q, [hit(e) for e in events]) for q, events in trace(self.sink, qid)]

    def tail_start(self, q: str) -> tuple[int, set]:
        """Where a live tail begins: the newest matching event's time and the ids there."""
        request = self._request(q, Window(), 50, "desc")
        events = self.sink.search_page(request, None, False)[1]
        if not events:
            return int(time.time() * 1000) - 1, set()
        top = _ms(events[0].get("@timestamp")) or 0
        return top, {e["_id"] for e in events if _ms(e.get("@timestamp")) == top}

    def tail_next(self, q: str, since: int, seen: set, size: int = 500) -> tuple[list, int, set]:
        """Matches at or after ``since`` not yet sent; returns (hits, new since, new seen)."""
        request = self._request(q, Window(start=datetime.fromtimestamp(since / 1000,
                                                                       timezone.utc)), size, "asc")
        events = [e for e in self.sink.search_page(request, None, False)[1]
                  if e["_id"] not in seen]
        for e in events:
            ts = _ms(e.get("@timestamp")) or since
            if ts > since:
                since, seen = ts, set()
            seen.add(e["_id"])
        return [hit(e) for e in events], since, seen

    # ------------------------------------------------------------------ broker side
    @property
    def client(self):
        with self._lock:
            if self.follow_state:
                mark = _state_mark()
                if mark != self._state_seen or self._state_stale:
                    self._state_seen, self._state_stale = mark, False
                    self._follow_state()
            if self.redis_url is None:
                raise BrokerError(self.broker_error or "no broker configured: pass --redis")
            if self._client is None:
                from logpipe.common.broker import connect
                self._client = connect(self.redis_url)
            return self._client

    def _follow_state(self) -> None:
        """Read the broker URL from `logpipe up`'s state again (under the lock)."""
        from logpipe.common.config import resolve_redis_url
        try:
            url, error = resolve_redis_url(None), None
        except ConfigError as exc:  # `logpipe down`: no broker until the next `up`
            url, error = None, str(exc)
        if url != self.redis_url and self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - the old broker is gone
                pass
            self._client = None
        self.redis_url, self.broker_error = url, error

    def _keys(self):
        from logpipe.common.broker import Keys
        return Keys(prefix=self.prefix, raw=self.raw_list)

    def _dlq(self):
        from logpipe.indexer.api import dead_letters
        try:
            return dead_letters(self.client, self._keys())
        except LogpipeError:
            raise
        except Exception as exc:  # the client's connection errors
            self._state_stale = True
            raise BrokerError(f"cannot reach the broker: {exc}") from None

    def _broker(self, fn, *args, **kwargs):
        from redis.exceptions import RedisError
        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            self._state_stale = True  # following the state: read it again at the next call
            raise BrokerError(f"the broker did not answer: {exc}") from None

    @staticmethod
    def dlq_filters(stage: str | None, reason: str | None, rtype: str | None) -> dict:
        from logpipe.indexer.api import STAGES
        stage = (stage or "").strip() or None
        if stage and stage not in STAGES:
            raise QueryError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
        return {"stage": stage, "reason": (reason or "").strip() or None,
                "rtype": (rtype or "").strip() or None}

    def dlq_overview(self, filters: dict, limit: int = 100) -> dict:
        """Counts by stage and by reason, how many match the filter, the first ``limit``."""
        dlq = self._dlq()

        def read():
            by_stage = dlq.counts_by_stage()
            by_reason: dict[str, int] = {}
            letters: list[dict] = []
            matching = 0
            for letter in dlq.iter():
                key = letter.reason.split("\n", 1)[0][:120]
                by_reason[key] = by_reason.get(key, 0) + 1
            for letter in dlq.iter(**filters):
                matching += 1
                if len(letters) < limit:
                    letters.append(letter_dict(letter, LETTER_LIST_PREVIEW))
            reasons = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
            return {"by_stage": by_stage, "by_reason": reasons, "matching": matching,
                    "letters": letters, "total": sum(by_stage.values())}
        return self._broker(read)

    def dlq_count(self, filters: dict) -> int:
        dlq = self._dlq()
        return self._broker(lambda: sum(1 for _ in dlq.iter(**filters)))

    def _get_letter(self, dlq, entry: str):
        """The letter of a stream entry id; None when there is none, or when ``entry`` is not
        an entry id at all (the broker would refuse it as an error)."""
        from logpipe.indexer.api import valid_entry_id
        if not valid_entry_id(str(entry)):
            return None
        return self._broker(dlq.get, entry)

    def dlq_letter(self, entry: str) -> dict | None:
        dlq = self._dlq()
        letter = self._get_letter(dlq, entry)
        if letter is None:
            return None
        out = letter_dict(letter, LETTER_PREVIEW)
        if letter.stage == "parse":
            out["closest"] = self.closest_pattern(letter.record, letter.record_id)
        return out

    def dlq_raw(self, entry: str) -> bytes | None:
        """A dead letter's record as it was queued (for a download)."""
        letter = self._get_letter(self._dlq(), entry)
        return None if letter is None else letter.record

    def _pipeline_config(self):
        from logpipe.indexer.api import load_parse_pipeline
        if self._pipeline is None:
            self._pipeline = load_parse_pipeline(self.config_path)
        return self._pipeline

    def closest_pattern(self, raw: bytes, record_id: str) -> dict | None:
        """Which of the record type's patterns got furthest on its line (``grok debug``'s
        answer, indexer.api.closest_pattern): {type, pattern, matched, pieces, good,
        failed_piece, line, end, start}; the line cut at GROK_LINE_MAX."""
        from logpipe.indexer.api import closest_pattern
        return closest_pattern(self._pipeline_config(), raw, record_id, GROK_LINE_MAX)

    def _letters(self, dlq, entries: list[str] | None, filters: dict | None) -> list:
        if entries is not None:
            letters = [self._get_letter(dlq, e) for e in entries]
            return [letter for letter in letters if letter is not None]
        return list(self._broker(lambda: list(dlq.iter(**(filters or {})))))

    def dlq_replay(self, entries: list[str] | None = None, filters: dict | None = None) -> dict:
        """Replay the given entries, or all matching the filter: the code of `logpipe dlq
        replay` (indexer.api.replay_letters), into this page's store."""
        from logpipe.indexer.api import replay_letters
        dlq = self._dlq()
        letters = self._letters(dlq, entries, filters)
        sink = self.sink
        sink.prepare()
        return self._broker(replay_letters, dlq, self._pipeline_config(), sink, letters)

    def dlq_purge(self, entries: list[str] | None = None, filters: dict | None = None) -> int:
        dlq = self._dlq()
        letters = self._letters(dlq, entries, filters)
        return self._broker(dlq.delete, letters)

    def health(self) -> dict:
        """``logpipe stats``'s figures (each shipper carries ``age_s`` and ``silent``), the
        last hour minute by minute (``history``) and the broker's memory (``memory``)."""
        from logpipe.indexer.api import health_figures
        return self._broker(health_figures, self.client, self._keys())

    def store_size(self) -> dict:
        """Events and bytes on disk of the store (``size()`` of its sink)."""
        return self.sink.size()


def _state_mark() -> tuple | None:
    """Identity of `logpipe up`'s services.json (rewritten by every `up` and `down`)."""
    from logpipe.common.config import services_file
    try:
        st = services_file().stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def letter_dict(letter, preview: int) -> dict:
    """A dead letter as the page shows it: the record's first ``preview`` bytes, its size."""
    out = {"entry": letter.entry_id, "id": letter.record_id, "stage": letter.stage,
           "reason": letter.reason, "type": letter.type, "time": letter.time,
           "record": letter.record[:preview].decode("utf-8", "replace")}
    out["record_bytes"] = len(letter.record)
    out["record_cut"] = len(letter.record) > preview
    return out


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def shifted(window_start: int, window_end: int, how: str) -> tuple[int, int]:
    """The window zoomed out (twice as wide, same centre) or shifted by half its width."""
    width = max(1000, window_end - window_start)
    if how == "out":
        lo, hi = window_start - width // 2, window_end + width // 2
    elif how == "earlier":
        lo, hi = window_start - width // 2, window_end - width // 2
    else:
        lo, hi = window_start + width // 2, window_end + width // 2
    # inside the times a date can hold (years 1 to 9999), so the link can be written
    return max(MIN_MS, min(lo, MAX_MS - 1000)), max(MIN_MS + 1000, min(hi, MAX_MS))


__all__ = ["Data", "Window", "Page", "Results", "Histogram", "bounded_hit", "iso", "refine", "phrase", "shifted",
           "utc_now", "timedelta", "PAGE_SIZE"]
