"""The dead-letter queue: records that could not be indexed, with the stage and the reason.

A Redis stream (``<prefix>:dlq``): entry ids carry time, ranges are cheap, and entries can be
deleted one by one after a replay. Each entry holds::

    record   the raw item exactly as it was on the raw list (bytes)
    id       the record id (or the batch position for undecodable items)
    stage    decode | parse | index
    reason   what went wrong, in the words of the stage that failed
    type     the record type when known
    time     when it was dead-lettered (epoch seconds)

Adding is idempotent per record id (a hash ``<prefix>:dlq:ids`` maps record id -> entry id), so a
batch processed twice does not dead-letter the same record twice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterator

from logpipe.common.broker import Keys
from logpipe.common.broker.ledgers import DeadLetters

STAGES = ("decode", "parse", "index")
# what a listing or a page shows of one record by default (the whole is in ``record``)
PREVIEW_BYTES = 16 * 1024


_ENTRY_ID_RE = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?", re.ASCII)   # 0-9 only


def valid_entry_id(text: str) -> bool:
    """Whether ``text`` is a stream entry id (``ms-seq`` or ``ms``, each below 2^64): anything
    else the broker refuses with an error rather than finding nothing."""
    m = _ENTRY_ID_RE.fullmatch(text or "")
    if m is None:
        return False
    return all(int(part) < 2 ** 64 for part in m.groups() if part is not None)


@dataclass
class DeadLetter:
    entry_id: str
    record: bytes
    record_id: str
    stage: str
    reason: str
    type: str
    time: float

    def preview(self, limit: int = PREVIEW_BYTES) -> tuple[str, bool]:
        """The record as text, at most ``limit`` bytes of it (never a cut character), and
        whether it was cut."""
        raw = self.record
        if len(raw) <= limit:
            return raw.decode("utf-8", "replace"), False
        head = raw[:limit]
        # back off over a UTF-8 character the cut split (up to 3 bytes of it)
        for back in range(1, 4):
            if len(head) >= back and head[-back] & 0xC0 == 0xC0:  # the split char's lead byte
                need = 2 if head[-back] < 0xE0 else 3 if head[-back] < 0xF0 else 4
                if back < need:
                    head = head[:-back]
                break
            if len(head) < back or head[-back] & 0xC0 != 0x80:
                break
        return head.decode("utf-8", "replace"), True

    def to_dict(self, preview: int | None = PREVIEW_BYTES) -> dict:
        """The letter as JSON-ready data; the record as text, at most ``preview`` bytes of it
        (None: whole). ``record_bytes`` is its full size, ``record_cut`` says it was cut."""
        if preview is None:
            text, cut = self.record.decode("utf-8", "replace"), False
        else:
            text, cut = self.preview(preview)
        return {"entry": self.entry_id, "id": self.record_id, "stage": self.stage,
                "reason": self.reason, "type": self.type, "time": self.time,
                "record": text, "record_bytes": len(self.record), "record_cut": cut}


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _entry(letter: DeadLetter) -> tuple[str, str, str]:
    """What deleting a letter needs: its entry id, record id and stage."""
    return letter.entry_id, letter.record_id, letter.stage


class DeadLetterQueue:
    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()
        # the stream, its record-id index and its counts by stage (kept with every add and
        # delete: O(1) stats), and the commands on them
        self.letters = DeadLetters(client, self.keys)

    def add(self, raw: bytes | str, record_id: str, stage: str, reason: str,
            rtype: str = "", pipe=None) -> None:
        assert stage in STAGES, stage
        self.letters.add(raw, record_id, stage, reason, rtype, time.time(), pipe=pipe)

    def __len__(self) -> int:
        return self.letters.length()

    def counts_by_stage(self) -> dict[str, int]:
        return {**{stage: 0 for stage in STAGES}, **self.letters.counts()}

    def iter(self, stage: str | None = None, reason: str | None = None, rtype: str | None = None,
             since: float | None = None, until: float | None = None,
             count: int | None = None) -> Iterator[DeadLetter]:
        """Entries oldest first, filtered; ``reason`` matches as a case-insensitive substring."""
        # entry ids start at 0 (1970): a bound before that is the start of the stream
        if until is not None and until < 0:
            return
        start = f"{int(since * 1000)}-0" if since and since > 0 else "-"
        end = f"{int(until * 1000)}" if until is not None else "+"
        yielded = 0
        while True:
            chunk = self.letters.range(start, end, count=500)
            if not chunk:
                return
            for entry_id, fields in chunk:
                letter = self._letter(entry_id, fields)
                if stage and letter.stage != stage:
                    continue
                if reason and reason.lower() not in letter.reason.lower():
                    continue
                if rtype and letter.type != rtype:
                    continue
                yield letter
                yielded += 1
                if count is not None and yielded >= count:
                    return
            last = _text(chunk[-1][0])
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"

    def get(self, entry_id: str) -> DeadLetter | None:
        if not valid_entry_id(entry_id):
            return None
        found = self.letters.range(entry_id, entry_id)
        return self._letter(*found[0]) if found else None

    def delete(self, letters: list[DeadLetter]) -> int:
        return self.letters.delete([_entry(letter) for letter in letters])

    def set_reason(self, letter: DeadLetter, reason: str) -> None:
        """Streams cannot update an entry: replace it (a new entry id, the same record), in one
        step, so a crash never leaves the record out of the queue."""
        if not reason or reason == letter.reason:
            return
        self.letters.replace(_entry(letter), letter.record, reason, letter.type, time.time())

    def purge(self, **filters) -> int:
        total = 0
        batch: list[DeadLetter] = []
        for letter in self.iter(**filters):
            batch.append(letter)
            if len(batch) >= 500:
                total += self.delete(batch)
                batch = []
        return total + self.delete(batch)

    @staticmethod
    def _letter(entry_id, fields: dict) -> DeadLetter:
        f = {_text(k): v for k, v in fields.items()}
        raw = f.get("record", b"")
        return DeadLetter(entry_id=_text(entry_id),
                          record=raw if isinstance(raw, bytes) else str(raw).encode(),
                          record_id=_text(f.get("id")), stage=_text(f.get("stage")),
                          reason=_text(f.get("reason")), type=_text(f.get("type")),
                          time=float(_text(f.get("time")) or 0))
