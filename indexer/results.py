"""What crosses RQ between a batch job and the dispatcher, typed.

A job returns a :class:`BatchResult` (counts per outcome). A job that fails says why in its
``meta["failure"]`` as a :class:`FailureKind`, so the janitor decides on a value, not on a
substring of an error text: a store that is down is not the batch's fault and does not use up
its attempts.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

from logpipe.common.errors import StoreError, is_transient
from logpipe.store.base import Status

FAILURE_META = "failure"  # the job.meta key holding a FailureKind value


class FailureKind(str, enum.Enum):
    STORE_UNAVAILABLE = "store_unavailable"  # the store kept refusing for the whole job
    STORE_ERROR = "store_error"              # the store refused permanently (e.g. bad auth)
    ERROR = "error"                          # anything else (a bug, a lost worker)

    @classmethod
    def of_error(cls, exc: BaseException) -> "FailureKind":
        """What kind of failure an error that ended a job is, by its type: a transient store error
        (the store kept refusing for the whole job) spends none of the batch's attempts."""
        if isinstance(exc, StoreError):
            return cls.STORE_UNAVAILABLE if is_transient(exc) else cls.STORE_ERROR
        return cls.ERROR

    @classmethod
    def of_job(cls, job) -> "FailureKind":
        """What a failed (or vanished) job recorded; ERROR when it recorded nothing."""
        meta = getattr(job, "meta", None) or {}
        try:
            return cls(meta.get(FAILURE_META, cls.ERROR.value))
        except ValueError:
            return cls.ERROR


@dataclass
class BatchResult:
    """What happened to the records of one batch."""

    records: int = 0
    indexed: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0

    def count(self, status: Status) -> None:
        """One record's store outcome (RETRY is not final and is not counted)."""
        if status is Status.INDEXED:
            self.indexed += 1
        elif status is Status.DUPLICATE:
            self.duplicate += 1
        elif status is Status.REJECTED:
            self.dead_lettered += 1

    def counts(self) -> dict[str, int]:
        """The outcome counters, as ``stats.record_out`` keeps them."""
        return {k: v for k, v in asdict(self).items() if k != "seconds"}
