"""Delivery: pipelined RPUSH of whole batches, confirmed before any offset moves.

A batch goes out as a few ``RPUSH key v1 v2 ...`` commands (up to ``per_command`` values each)
written in one go on one connection, then every reply is read. The commands are framed here
(RESP, in bulk with C-level joins) instead of by redis-py's per-argument encoder, which would
cost more per line than building the record; the connection, AUTH, TLS and error replies are
still redis-py's. ``push`` returns the list length after the batch, which feeds backpressure
without an extra round trip.

Errors are classified: :class:`BrokerUnavailable` (connection refused or lost, timeouts, the
server loading its data, out of memory, read-only replica) is retried by the agent with backoff;
anything else (wrong password, the key holds a non-list) is a :class:`BrokerError` for the user.
"""

from __future__ import annotations

import redis

from common.broker import connect, redact
from common.broker.tls import tls_failure
from common.errors import BrokerError

_BULK = b"$%d\r\n%s\r\n"
_RETRYABLE = ("OOM", "LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN",
              "NOREPLICAS")


# redis-py strips the error code from these replies and raises its own classes instead.
_RETRYABLE_KINDS = tuple(getattr(redis.exceptions, name) for name in (
    "OutOfMemoryError", "ReadOnlyError", "TryAgainError", "ClusterDownError", "MasterDownError",
    "BusyLoadingError") if hasattr(redis.exceptions, name))
_NO_PERMISSION = tuple(getattr(redis.exceptions, name) for name in ("NoPermissionError",)
                       if hasattr(redis.exceptions, name))


class BrokerUnavailable(Exception):
    pass


class Sender:
    def __init__(self, url: str, key: str, per_command: int = 10_000, timeout: float = 30.0):
        self.url = url
        self.key = key
        self.per_command = per_command
        self.client = connect(url, socket_timeout=timeout, socket_connect_timeout=5,
                              socket_keepalive=True)
        k = key.encode("utf-8")
        self._head = b"$5\r\nRPUSH\r\n$%d\r\n%s\r\n" % (len(k), k)

    def pack(self, values: list[bytes]) -> tuple[list[bytes], int]:
        out = []
        step = self.per_command
        for i in range(0, len(values), step):
            part = values[i:i + step]
            out.append(b"*%d\r\n" % (len(part) + 2) + self._head)
            out.append(b"".join(map(_BULK.__mod__, zip(map(len, part), part))))
        return out, len(out) // 2

    def push(self, values: list[bytes]) -> int:
        """RPUSH every value; returns the list length. Raises BrokerUnavailable/BrokerError."""
        return self.finish(self.start(values))

    def start(self, values: list[bytes]):
        """Write the batch and return without waiting for the replies (the agent builds the
        next batch meanwhile); :meth:`finish` reads them."""
        payload, ncmd = self.pack(values)
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except Exception as exc:  # noqa: BLE001 - classified below
            raise self._classify(exc) from None
        try:
            conn.send_packed_command(payload, check_health=False)
        except BaseException as exc:
            conn.disconnect()
            pool.release(conn)
            if isinstance(exc, Exception):
                raise self._classify(exc) from None
            raise
        return conn, ncmd

    def finish(self, handle) -> int:
        conn, ncmd = handle
        pool = self.client.connection_pool
        try:
            length = 0
            error = None
            for _ in range(ncmd):
                try:
                    length = conn.read_response()
                except redis.exceptions.ResponseError as exc:
                    error = error or exc  # read the other replies so the connection stays usable
            if error is not None:
                raise error
            return int(length)
        except BaseException as exc:
            if not isinstance(exc, redis.exceptions.ResponseError):
                conn.disconnect()
            if isinstance(exc, Exception):
                raise self._classify(exc) from None
            raise
        finally:
            pool.release(conn)

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
            return BrokerError(f"the broker at {where} refused the password: {exc}")
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

    def publish(self, hash_key: str, field: str, blob: bytes) -> None:
        """Best effort: the agent's figures for ``logpipe stats`` and Prometheus."""
        try:
            self.client.hset(hash_key, field, blob)
        except Exception:  # noqa: BLE001 - figures must never stop the shipping
            pass

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
