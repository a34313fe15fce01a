"""Delivery: pipelined RPUSH of whole batches, confirmed before any offset moves.

A batch goes out as a few ``RPUSH key v1 v2 ...`` commands (up to ``per_command`` values each)
written in one go on one connection; its replies are read after the next batch was written (two
batches in flight, :class:`Sender`). The commands are framed by the shipper (RESP, in bulk with
C-level joins; the file input's records arrive already framed, :mod:`shipper.framing`) instead of by
redis-py's per-argument encoder, which would cost more per line than building the record; the
connection, AUTH, TLS and error replies are still redis-py's. ``push`` returns the list length after
the batch, which feeds backpressure without an extra round trip.

When the broker has replicas, ``WAIT n timeout`` follows the batch on the same connection (the client's
:class:`common.broker.ReplicaWait`, from the URL's ``wait_replicas``/``wait_timeout_ms``): a push is only
confirmed to the registry once that many replicas hold it, so a failover never loses a confirmed line. Too few
confirmations is retried like an outage (the repeat is harmless: records carry their id).

Errors are classified: :class:`BrokerUnavailable` (connection refused or lost, timeouts, the
server loading its data, out of memory, read-only replica: a transient error of
:mod:`common.errors`) is retried by the agent with backoff;
anything else (wrong password, the key holds a non-list) is a :class:`BrokerError` for the user.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import redis

from logpipe.common.broker import Keys, connect, redact, replica_wait
from logpipe.common.broker.ledgers import ShipperStatus
from logpipe.common.broker.connection import password_refused
from logpipe.common.broker.tls import tls_failure
from logpipe.common.errors import BrokerError, BrokerUnavailable
from logpipe.shipper.framing import Framed, Outgoing, frame

_BULK = b"$%d\r\n%s\r\n"
_RETRYABLE = ("OOM", "LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN",
              "NOREPLICAS")


# redis-py strips the error code from these replies and raises its own classes instead.
_RETRYABLE_KINDS = tuple(getattr(redis.exceptions, name) for name in (
    "OutOfMemoryError", "ReadOnlyError", "TryAgainError", "ClusterDownError", "MasterDownError",
    "BusyLoadingError") if hasattr(redis.exceptions, name))
_NO_PERMISSION = tuple(getattr(redis.exceptions, name) for name in ("NoPermissionError",)
                       if hasattr(redis.exceptions, name))


T = TypeVar("T")


class RepliesLost(BrokerUnavailable):
    """A batch's connection was closed before its replies were read (a batch written before it failed):
    it is sent again, like after an outage, but the broker is not to blame."""


class Sender:
    """One broker. Batches are pipelined on one connection: :meth:`start` writes a batch and returns,
    :meth:`finish` reads its replies, in the order they were started; the agent writes the next batch
    before it reads the replies of the one before, so the broker stores one batch while the agent
    encodes and writes the next. A connection that fails takes every batch in flight on it along:
    their :meth:`finish` raise :class:`BrokerUnavailable` and the agent sends them again."""

    def __init__(self, url: str, key: str, per_command: int = 10_000, timeout: float = 30.0):
        self.url = url
        self.key = key
        self.per_command = per_command
        self.client = connect(url, socket_timeout=timeout, socket_connect_timeout=5,
                              socket_keepalive=True)
        self._wait = replica_wait(self.client)
        k = key.encode("utf-8")
        self._head = b"$5\r\nRPUSH\r\n$%d\r\n%s\r\n" % (len(k), k)
        self._conn = None    # the connection the batches in flight were written on
        self.in_flight = 0
        self._epoch = 0      # counts dropped connections: a handle from an earlier one has lost its replies
        self._started = 0    # batches written on this connection; their replies come back in this order
        self._finished = 0

    def pack(self, values: list[bytes] | Outgoing) -> tuple[list[bytes], int]:
        """The RPUSH commands for ``values`` (at most ``per_command`` values each) and their count."""
        if isinstance(values, Outgoing):
            return self._pack_framed(values.parts)
        out = []
        step = self.per_command
        for i in range(0, len(values), step):
            part = values[i:i + step]
            out.append(b"*%d\r\n" % (len(part) + 2) + self._head)
            out.append(frame(part))
        return out, len(out) // 2

    def _pack_framed(self, parts: list[Framed]) -> tuple[list[bytes], int]:
        """Records already framed: only the commands' headers are made (a run is never split)."""
        out: list[bytes] = []
        blobs: list[bytes] = []
        n = 0
        for part in parts:
            if blobs and n + part.count > self.per_command:
                out.append(b"*%d\r\n" % (n + 2) + self._head)
                out.append(blobs[0] if len(blobs) == 1 else b"".join(blobs))
                blobs, n = [], 0
            blobs.append(part.blob)
            n += part.count
        if blobs:
            out.append(b"*%d\r\n" % (n + 2) + self._head)
            out.append(blobs[0] if len(blobs) == 1 else b"".join(blobs))
        return out, len(out) // 2

    def push(self, values: list[bytes] | Outgoing) -> int:
        """RPUSH every value and read the replies; returns the list length. Raises
        BrokerUnavailable/BrokerError. Batches still in flight lose their replies (a retry must not
        read theirs as its own): they are sent again."""
        if self.in_flight:
            self._drop()
        return self.finish(self.start(values))

    def start(self, values: list[bytes] | Outgoing):
        """Write the batch and return without waiting for the replies (the agent builds the
        next batch meanwhile); :meth:`finish` reads them."""
        payload, ncmd = self.pack(values)
        try:
            needed = self._wait.needed(self.client)
            if needed:
                payload.append(b"*3\r\n$4\r\nWAIT\r\n" + _BULK % (len(str(needed)), str(needed).encode())
                               + _BULK % (len(str(self._wait.timeout_ms)), str(self._wait.timeout_ms).encode()))
            if self._conn is None:
                self._conn = self.client.connection_pool.get_connection()
        except Exception as exc:  # noqa: BLE001 - classified below
            raise self._classify(exc) from None
        conn = self._conn
        assert conn is not None
        try:
            conn.send_packed_command(payload, check_health=False)
        except BaseException as exc:
            self._drop()
            if isinstance(exc, Exception):
                raise self._classify(exc) from None
            raise
        self.in_flight += 1
        self._started += 1
        return conn, self._epoch, self._started, ncmd, needed

    def finish(self, handle) -> int:
        """Read the replies of the oldest batch in flight (``handle`` from its :meth:`start`)."""
        conn, epoch, seq, ncmd, needed = handle
        if epoch != self._epoch:
            raise RepliesLost("the connection was closed before the broker confirmed this batch")
        if seq != self._finished + 1:
            raise RuntimeError(f"batch {seq} finished out of order (next is {self._finished + 1})")
        try:
            length = 0
            error = None
            for _ in range(ncmd):
                try:
                    length = conn.read_response()
                except redis.exceptions.ResponseError as exc:
                    error = error or exc  # read the other replies so the connection stays usable
            if needed:
                acked = conn.read_response()  # read even after an error: the connection stays in step
            if error is not None:
                raise error
            if needed:
                self._wait.check(acked, needed)
        except BaseException as exc:
            # the batches written after this one are sent again after it, in order
            self._drop()
            if isinstance(exc, Exception):
                raise self._classify(exc) from None
            raise
        self.in_flight -= 1
        self._finished += 1
        if not self.in_flight:
            self._release()
        return int(length)

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.client.connection_pool.release(conn)

    def _drop(self) -> None:
        """Close the pipelined connection: the replies of every batch in flight on it are lost."""
        if self._conn is not None:
            self._conn.disconnect()
            self._release()
        self.in_flight = 0
        self._started = self._finished = 0
        self._epoch += 1

    def length(self) -> int:
        try:
            return int(self.client.llen(self.key))
        except Exception as exc:  # noqa: BLE001
            raise self._classify(exc) from None

    def check(self) -> int:
        """Reach the broker and read the list's length: the start-up probe. Raises
        BrokerUnavailable (wait and retry) or BrokerError (a configuration mistake)."""
        return self.length()

    def _classify(self, exc: Exception) -> Exception:
        where = redact(self.url)
        tls = tls_failure(exc, self.url)
        if tls:  # a configuration mistake, not an outage: no retry
            return BrokerError(f"cannot connect to the broker at {where}: {tls}")
        if isinstance(exc, (redis.exceptions.AuthenticationError,
                            redis.exceptions.AuthenticationWrongNumberOfArgsError)):
            return password_refused(self.url, exc)
        if isinstance(exc, _NO_PERMISSION):
            return BrokerError(f"the broker at {where} refused access (NOPERM): {exc}; the user "
                               f"needs RPUSH and LLEN on {self.key!r}")
        if isinstance(exc, _RETRYABLE_KINDS):
            return BrokerUnavailable(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                            OSError)):
            return BrokerUnavailable(str(exc) or type(exc).__name__)
        if isinstance(exc, redis.exceptions.ResponseError):
            text = str(exc)
            code = (getattr(exc, "status_code", None) or text.split(" ", 1)[0]).upper()
            if code in _RETRYABLE:
                return BrokerUnavailable(text)
            if code in ("NOAUTH", "WRONGPASS", "NOPERM"):
                return BrokerError(f"the broker at {where} refused access: {text}")
            if code == "WRONGTYPE" or text.upper().startswith("WRONGTYPE"):
                return BrokerError(f"the key {self.key!r} on {where} is not a list; "
                                   f"pass another --list KEY or delete it")
            return BrokerError(f"the broker at {where} refused RPUSH: {text}")
        return exc

    def publish(self, keys: Keys, name: str, figures: bytes) -> None:
        """Best effort: the agent's figures for ``logpipe stats`` and Prometheus."""
        try:
            ShipperStatus(self.client, keys).publish(name, figures)
        except Exception:  # noqa: BLE001 - figures must never stop the shipping
            pass

    def close(self) -> None:
        self._conn = None
        self.in_flight = self._started = self._finished = 0
        self._epoch += 1
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass


class BrokerSet:
    """Several brokers behind :class:`Sender`'s interface: batches go round-robin over the brokers that are up;
    a broker that fails is left out (backoff from 1 s to 30 s, one log line when it goes and when it is back) and
    its batch goes to the next one. Offsets stay right because a batch is confirmed only by the broker that
    answered for it; the agent sees :class:`BrokerUnavailable` only when every broker is down."""

    RETRY_MIN, RETRY_MAX = 1.0, 30.0

    def __init__(self, urls: list[str], key: str, log=None, **kwargs):
        self.urls = urls
        self.key = key
        self.log = log
        self.senders = [Sender(url, key, **kwargs) for url in urls]
        self._down_until = [0.0] * len(urls)
        self._delay = [0.0] * len(urls)
        self._next = 0

    def _order(self) -> list[int]:
        """Brokers to try, starting with the next in turn; those backing off go last (they may be back)."""
        now = time.monotonic()
        turn = [(self._next + k) % len(self.senders) for k in range(len(self.senders))]
        self._next = (self._next + 1) % len(self.senders)
        return [i for i in turn if self._down_until[i] <= now] + [i for i in turn if self._down_until[i] > now]

    def _failed(self, i: int, exc: Exception) -> None:
        first = self._delay[i] == 0.0
        self._delay[i] = min(max(self._delay[i] * 2, self.RETRY_MIN), self.RETRY_MAX)
        self._down_until[i] = time.monotonic() + self._delay[i]
        if first and self.log is not None:
            self.log.warning("broker_down", broker=redact(self.urls[i]), error=str(exc)[:200],
                             action="sending to the other brokers")

    def _worked(self, i: int) -> None:
        if self._delay[i] and self.log is not None:
            self.log.info("broker_up", broker=redact(self.urls[i]))
        self._delay[i] = 0.0
        self._down_until[i] = 0.0

    def _first_that_takes(self, order: list[int], attempt: Callable[[Sender], T]) -> tuple[int, T]:
        """Try ``attempt`` on each broker of ``order`` in turn until one takes it (an unavailable one is left
        out for a while); returns that broker's index and its answer."""
        error: Exception | None = None
        for i in order:
            try:
                return i, attempt(self.senders[i])
            except BrokerUnavailable as exc:
                self._failed(i, exc)
                error = exc
        raise BrokerUnavailable(f"every broker is down; last error: {error}")

    def start(self, values: list[bytes] | Outgoing):
        i, handle = self._first_that_takes(self._order(), lambda sender: sender.start(values))
        return i, handle, values

    def finish(self, handle) -> int:
        i, inner, values = handle
        try:
            length = self.senders[i].finish(inner)
        except RepliesLost:
            return self.push(values)  # a batch before it failed; this broker is not to blame
        except BrokerUnavailable as exc:
            self._failed(i, exc)
            return self.push(values)  # maybe partly on the failed one too: the ids make a repeat harmless
        self._worked(i)
        return length

    def push(self, values: list[bytes] | Outgoing) -> int:
        """The retry path: write and confirm ``values`` on the first broker that takes them (one with no
        batch in flight first: a retry on another's connection makes that one's batches go again)."""
        order = sorted(self._order(), key=lambda i: self.senders[i].in_flight > 0)
        i, length = self._first_that_takes(order, lambda sender: sender.push(values))
        self._worked(i)
        return length

    def length(self) -> int:
        """The shortest list among the brokers that answer (backpressure resumes when any has room)."""
        lengths = []
        for i in self._order():
            if self._down_until[i] > time.monotonic():
                continue
            try:
                lengths.append(self.senders[i].length())
            except BrokerUnavailable as exc:
                self._failed(i, exc)
        if not lengths:
            raise BrokerUnavailable("every broker is down")
        return min(lengths)

    def check(self) -> int:
        """The start-up probe: every broker is asked (a configuration mistake on any one is a BrokerError);
        one that answers is enough to start, the others are tried again later."""
        lengths = []
        for i, sender in enumerate(self.senders):
            try:
                lengths.append(sender.check())
            except BrokerUnavailable as exc:
                self._failed(i, exc)
        if not lengths:
            raise BrokerUnavailable("every broker is down")
        return min(lengths)

    def publish(self, keys: Keys, name: str, figures: bytes) -> None:
        for i, sender in enumerate(self.senders):
            if self._down_until[i] <= time.monotonic():
                sender.publish(keys, name, figures)

    def close(self) -> None:
        for sender in self.senders:
            sender.close()


def open_sender(url: str, key: str, log=None):
    """A :class:`Sender`, or a :class:`BrokerSet` when ``url`` holds several broker URLs separated by spaces."""
    urls = url.split()
    if len(urls) > 1:
        return BrokerSet(urls, key, log=log)
    return Sender(url.strip(), key)
