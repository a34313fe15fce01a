"""Waiting for the broker and the store, at start-up and whenever they go away.

Start order never matters: ``logpipe index`` and the ``logpipe dlq`` commands wait for a broker or
store that is not up yet, with backoff, saying so in one line when the wait starts and one when it
ends (``broker_unreachable`` / ``broker_back``, ``store_unreachable`` / ``store_back``), the same
lines as when it goes away later. Only a configuration mistake stops at once, with a message a
person can act on and no password in it: a URL that cannot work, a wrong password, a user without
permission (:class:`BrokerError`, a permanent :class:`StoreError`).
"""

from __future__ import annotations

import time
from typing import Callable

from logpipe.common.broker import Keys, connect, ensure_library, redact
from logpipe.common.broker.connection import password_refused
from logpipe.common.broker.ledgers import RawList
from logpipe.common.console import emit
from logpipe.common.errors import BrokerError, StoreError
from logpipe.common.retry import BROKER_OUTAGE, RetryPolicy


class Outage:
    """One log line when ``what`` (broker, store) goes away, one when it is back; backoff in
    between."""

    def __init__(self, what: str, policy: RetryPolicy = BROKER_OUTAGE, **context):
        self.what = what
        self.context = context
        self.since: float | None = None
        self.backoff = policy.start()

    def wait(self, exc: BaseException, sleep: Callable[[float], None] = time.sleep) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.backoff.reset()
            emit(f"{self.what}_unreachable", **self.context, error=str(exc)[:200],
                 action=f"waiting for the {self.what}")
        self.backoff.wait(sleep)

    def ended(self) -> None:
        if self.since is not None:
            emit(f"{self.what}_back", **self.context,
                 down_seconds=round(time.monotonic() - self.since, 1))
            self.since = None
            self.backoff.reset()


def broker_problem(url: str, exc: BaseException) -> BrokerError | None:
    """The configuration mistake behind a broker error (to stop at once), or None when the
    broker is only away (to wait for)."""
    import redis.exceptions as rx

    where = redact(url)
    if isinstance(exc, (rx.AuthenticationError, rx.AuthenticationWrongNumberOfArgsError)):
        return password_refused(url, exc)
    if isinstance(exc, getattr(rx, "NoPermissionError", ())):
        return BrokerError(f"the broker at {where} refused access (NOPERM): {exc}")
    if isinstance(exc, (rx.BusyLoadingError,)):
        return None  # still loading its data set: up soon
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        from logpipe.common.broker.tls import tls_failure

        tls = tls_failure(exc, url)
        if tls:  # a certificate the CA does not vouch for: configuration, not an outage
            return BrokerError(f"cannot connect to the broker at {where}: {tls}")
        if "Permission denied" in str(exc):  # a unix socket this user may not open
            return BrokerError(f"no permission to connect to the broker at {where}: {exc}")
        return None
    if isinstance(exc, rx.ResponseError):
        code = str(exc).split(" ", 1)[0].upper()
        if code in ("LOADING", "MASTERDOWN", "TRYAGAIN"):
            return None
        return BrokerError(f"the broker at {where} refused a command: {exc}")
    return None


def broker_when_up(url: str, keys: Keys | None = None, functions: bool = False):
    """A client once the broker answers a PING and a read of the raw list (so a missing
    permission shows now, not mid-way), and with ``functions`` holds logpipe's function library
    of this version (a missing or outdated one: :class:`BrokerSetupError` telling the admin to
    run ``logpipe acl setup``). Waits while the broker is away; raises BrokerError for a
    configuration mistake."""
    client = connect(url)  # a URL that cannot work raises BrokerError here
    keys = keys or Keys()
    outage = Outage("broker", broker=redact(url))
    while True:
        try:
            client.ping()
            RawList(client, keys).length()
            if functions:
                ensure_library(client)
        except BrokerError:
            raise
        except Exception as exc:
            problem = broker_problem(url, exc)
            if problem is not None:
                raise problem from None
            outage.wait(exc)
            continue
        outage.ended()
        return client


def store_when_up(sink) -> None:
    """Prepare the store (template, schema) once it can be reached. Waits while the store is
    away; a permanent StoreError (wrong password, no permission) is raised at once."""
    outage = Outage("store", store=redact(sink.url))
    while True:
        try:
            sink.prepare()
        except StoreError as exc:
            if not outage.backoff.policy.retries(exc):
                raise
            outage.wait(exc)
            continue
        outage.ended()
        return
