"""Error types shared by every part of logpipe.

Each error carries a message a person can act on: what went wrong, where (file and line when a
file is involved), and what to do about it. The CLI prints ``str(error)`` without a traceback.

Whether trying again can help is decided by type, in one place: a :class:`Transient` error (a
broker or store away or pushing back) is retried under a :class:`common.retry.RetryPolicy`; a
:class:`Permanent` one (a configuration, a password, a refused request) stops at once, and so does
any error that is not Transient.
"""

# A query error is defined by the query language, which imports no other logpipe package;
# it is one of logpipe's errors all the same (the CLI prints it without a traceback).
from logpipe.query.errors import QueryError as QueryError


class LogpipeError(Exception):
    """Base class: a failure the user can understand and fix."""


class Transient(LogpipeError):
    """Worth another try: what failed may be back (an outage, back-pressure)."""


class Permanent(LogpipeError):
    """Trying again cannot help until someone changes something (a setting, a password, a
    request the other side refuses)."""


def is_transient(exc: BaseException) -> bool:
    """The one retry decision: whether ``exc`` is worth another try."""
    return isinstance(exc, Transient)


class ServiceError(LogpipeError):
    """An embedded service (Valkey, the Elasticsearch node) failed to start or stop."""


class ConfigError(Permanent):
    """A configuration file or option is wrong; the message names the file, line and key."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class BrokerError(LogpipeError):
    """The Redis-protocol broker cannot be reached or refused a command."""


class BrokerUnavailable(BrokerError, Transient):
    """The broker is away, not answering, or pushing back (loading, read-only replica, out of
    memory): the command is sent again once it answers."""


class BrokerSetupError(BrokerError, Permanent):
    """The broker lacks what an admin sets up for logpipe (its function library, a user's
    rules): the message names the command that fixes it (``logpipe acl setup``)."""


class DecodeError(LogpipeError):
    """A raw item on the broker list is not a record logpipe understands.

    ``field`` names the offending field of a JSON item (None when the item as a whole is wrong:
    not UTF-8, empty, not a JSON object); ``reason`` is the message without the field's name.
    """

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(f"field {field!r}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class RecordRefused(LogpipeError):
    """The indexer will not store one record as it is; it is dead-lettered with this reason
    (the rest of its batch is stored)."""


class OversizeError(RecordRefused):
    """A record over one of the indexer's bounds (``[limits]`` of the pipeline config)."""


class ReservedFieldError(RecordRefused):
    """A record or filter sets a field the stores keep for themselves, and the name it would
    be renamed to is taken."""


class GrokError(LogpipeError):
    """A grok pattern cannot be compiled (unknown %{NAME}, bad regex, reference cycle)."""

    def __init__(self, message: str, pattern: str | None = None, position: int | None = None,
                 path: str | None = None, line: int | None = None):
        parts = []
        if path:
            parts.append(f"{path}:{line}:" if line else f"{path}:")
        parts.append(message)
        if pattern is not None:
            parts.append(f"\n  pattern: {pattern}")
            if position is not None:
                parts.append(f"\n           {' ' * position}^ (position {position})")
        super().__init__(" ".join(parts[:2]) + "".join(parts[2:]) if path else "".join(parts))
        self.pattern = pattern
        self.position = position
        self.path = path
        self.line = line


class StoreError(LogpipeError):
    """The store refused or could not be reached. The type says which: :class:`StoreUnreachable`
    (transient, retried) or :class:`StoreRefused` (permanent). ``StoreError(message,
    permanent=...)``, as the stores say it, makes the matching one."""

    def __new__(cls, message: str = "", permanent: bool = False):
        if cls is StoreError:
            cls = StoreRefused if permanent else StoreUnreachable
        return super().__new__(cls, message)

    def __init__(self, message: str = "", permanent: bool = False):
        super().__init__(message)

    @property
    def permanent(self) -> bool:
        """Derived from the type (kept for callers that ask it so)."""
        return not is_transient(self)


class StoreUnreachable(StoreError, Transient):
    """The store is down, not answering or pushing back (429, 5xx): the write is retried."""


class StoreRefused(StoreError, Permanent):
    """The store refuses for good (bad credentials, no permission, a store that cannot be
    opened): retrying cannot help until its setting is fixed."""


class QueryTooExpensive(LogpipeError):
    """A store query ran out of its time budget and was stopped; the message says what to
    narrow. The web answers it with ``http_status``."""

    http_status = 422


class StoreBusy(LogpipeError):
    """Too many store queries are running or waiting: this one was not started (try again)."""

    http_status = 503


class QueryCancelled(LogpipeError):
    """A store query was stopped because whoever asked for it went away."""

    http_status = 499
