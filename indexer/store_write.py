"""Writing a batch's events to a store record by record: one event that makes the store's
client raise (a value it cannot serialise, a bug in a backend) becomes that event's REJECTED
outcome, never the batch's failure.

A store answers per event (:class:`store.base.Outcome`); a write that raises something other than
:class:`StoreError` (the whole-batch "store unreachable / refused" signal) is split in halves until
the events that raise are alone, each then rejected with the exception as its reason. Repeating
the halves is safe: stores write by record id, so what a half stored before the raise answers
DUPLICATE the second time. The answers are checked strictly (one outcome per event), so a store
that miscounts fails the job loudly instead of losing records silently.
"""

from __future__ import annotations

import weakref
from typing import Sequence

from logpipe.common.errors import StoreError
from logpipe.store.base import Event, Outcome, OutcomeMismatch, Status, Writer, check_outcomes

# Stores prepared in this process. prepare() happens on the first write, not when the store is
# opened, because the store may be down at first; a weak set, so a new store is never mistaken
# for a dead one that had the same id().
_prepared: "weakref.WeakSet" = weakref.WeakSet()


def _prepare(sink: Writer) -> None:
    if sink not in _prepared:
        sink.prepare()  # the store's own set-up: its failure is the batch's, not an event's
        _prepared.add(sink)


def write_isolated(sink: Writer, events: Sequence[Event]) -> list[Outcome]:
    """One checked outcome per event. Raises StoreError (the store as a whole) and
    OutcomeMismatch (a store that broke its contract); any other exception is pinned on the
    events that cause it."""
    if not events:
        return []
    _prepare(sink)
    try:
        return check_outcomes(events, sink.write(events))
    except (StoreError, OutcomeMismatch):
        raise
    except Exception as exc:  # judged record by record below
        if len(events) == 1:
            return [Outcome(Status.REJECTED, f"the store could not take this event: "
                                             f"{type(exc).__name__}: {exc}")]
    middle = len(events) // 2
    return write_isolated(sink, events[:middle]) + write_isolated(sink, events[middle:])

