"""Replay dead letters through the normal pipeline, after a pattern or mapping fix.

Idempotent: records are written with their original ids, so one already stored counts as
``duplicate``. An entry is removed only once its record is stored; one that fails again stays in
the queue with the new reason (each record judged alone, as in a batch job).
"""

from __future__ import annotations

from logpipe.common.record import decode
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.limits import bound_event, bound_line, check_item
from logpipe.indexer.store_write import write_isolated
from logpipe.store.base import Status, Writer


def replay(dlq: DeadLetterQueue, pipeline, sink: Writer, chunk: int = 500, **filters) -> dict:
    return replay_letters(dlq, pipeline, sink, list(dlq.iter(**filters)), chunk)


def replay_letters(dlq: DeadLetterQueue, pipeline, sink: Writer, letters: list, chunk: int = 500) -> dict:
    """Replay the given letters (the web page's "replay these"); :func:`replay` picks them by
    filter."""
    counts = {"replayed": 0, "indexed": 0, "duplicate": 0, "still_failing": 0}
    limits = pipeline.config.bounds  # the same bounds as a batch job
    for start in range(0, len(letters), chunk):
        part = letters[start:start + chunk]
        done, events, owners = [], [], []
        for letter in part:
            counts["replayed"] += 1
            try:
                check_item(letter.record, limits)
                record = decode(letter.record, letter.record_id)
                bound_line(record, limits)
                event = pipeline.process(record)
                if event is not None:
                    bound_event(event, limits, len(letter.record))
                if event is None:  # dropped by a drop filter: nothing to store
                    done.append(letter)
                    continue
                events.append(event)
                owners.append(letter)
            except Exception as exc:  # still broken: keep it, say why
                dlq.set_reason(letter, f"{type(exc).__name__}: {exc}")
                counts["still_failing"] += 1
        # one checked outcome per event (a store that miscounts raises: nothing is deleted)
        outcomes = write_isolated(sink, events)
        for letter, outcome in zip(owners, outcomes, strict=True):
            if outcome.status is Status.INDEXED:
                counts["indexed"] += 1
                done.append(letter)
            elif outcome.status is Status.DUPLICATE:
                counts["duplicate"] += 1
                done.append(letter)
            else:
                dlq.set_reason(letter, outcome.reason)
                counts["still_failing"] += 1
        dlq.delete(done)
    return counts

