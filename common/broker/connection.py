"""Broker URL -> Redis client; URLs with their password hidden for messages and logs.

URLs: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS), ``unix://``, and Sentinel's
``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/db]`` / ``rediss+sentinel://``. Several
brokers are several URLs separated by spaces (the shipper spreads over them, ``index`` runs one indexer each).
Every client carries a :class:`ReplicaWait` (``?wait_replicas=majority|N&wait_timeout_ms=T``, majority by
default): when the primary has replicas, writes that are relied on (a shipper's push, a claim, a batch deletion)
are followed by ``WAIT``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import redis
import redis.credentials
import redis.sentinel

from logpipe.common.errors import BrokerError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
MAJORITY = -1                # wait_replicas=majority: more than half of the primary's replicas
DEFAULT_WAIT_REPLICAS = MAJORITY
DEFAULT_WAIT_TIMEOUT_MS = 2000  # below redis-py's 5 s socket timeout: WAIT blocks the reply that long
_REPLICA_RECHECK_SECONDS = 5.0

log = logging.getLogger("logpipe.broker")


class NotReplicated(redis.exceptions.ConnectionError):
    """A write reached the primary but not enough replicas confirmed it in time: retried like an outage (the
    write may be repeated; records carry their id, so the store keeps one copy)."""


@dataclass
class ReplicaWait:
    """How many replicas must hold a write before it is relied on (``WAIT``). Set per URL with
    ``?wait_replicas=majority|N&wait_timeout_ms=T`` (``wait_replicas=0`` turns it off).

    ``majority`` (the default): more than half of the replicas the primary has had connected since this
    client first saw it (``INFO replication``; the count is a high-water mark, reset only when the primary
    changes, i.e. its replication id), so a replica that drops away does not lower the bar: with two
    replicas both must confirm, and whichever of them Sentinel promotes holds every confirmed write; a
    primary cut off with one of them cannot confirm anything (the shipper keeps its offsets and retries).
    A number N is an upper bound instead: min(N, connected), so a lone server works as before."""

    replicas: int = DEFAULT_WAIT_REPLICAS
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS
    explicit: bool = False  # the URL asked for it (then a user that may not check is worth a warning)
    _connected: int = 0
    _seen: int = 0          # most replicas connected to this primary while this client watched it
    _replid: str = ""
    _checked_at: float = float("-inf")

    def needed(self, client) -> int:
        """Replicas to wait for now (the count re-read every few seconds): min(wanted, connected), or for
        ``majority`` more than half of the most seen connected."""
        if self.replicas == 0 or self.replicas < MAJORITY:
            return 0
        now = time.monotonic()
        if now - self._checked_at > _REPLICA_RECHECK_SECONDS:
            try:
                info = client.info("replication")
            except redis.exceptions.NoPermissionError:
                # a least-privilege user (e.g. a shipper allowed RPUSH only) cannot see the replicas
                (log.warning if self.explicit else log.info)(
                    "this broker user may not run INFO: writes are not confirmed on replicas "
                    "(grant it +info +wait where the broker has replicas)")
                self.replicas = 0
                return 0
            self._connected = int(info.get("connected_slaves", 0)) if info.get("role") == "master" else 0
            replid = str(info.get("master_replid", ""))
            if replid != self._replid:  # another primary (a failover): count its replicas afresh
                self._replid, self._seen = replid, 0
            self._seen = max(self._seen, self._connected)
            self._checked_at = now
        if self.replicas == MAJORITY:
            return self._seen // 2 + 1 if self._seen else 0
        return min(self.replicas, self._connected)

    def check(self, acked: int, needed: int) -> None:
        if int(acked) < needed:
            self._checked_at = float("-inf")  # a replica may be gone: count again before the retry
            raise NotReplicated(f"NOREPLICAS only {acked} of {needed} replica(s) confirmed the write within "
                                f"{self.timeout_ms} ms")

    def confirm(self, client, pipe) -> list:
        """Execute ``pipe`` (a non-transactional pipeline of ``client`` holding the writes) with ``WAIT`` appended
        on the same connection; their results, or :class:`NotReplicated` if too few replicas took them."""
        needed = self.needed(client)
        if needed:
            pipe.execute_command("WAIT", needed, self.timeout_ms)
        results = pipe.execute()
        if needed:
            self.check(results[-1], needed)
            results = results[:-1]
        return results


def replica_wait(client) -> ReplicaWait:
    """The WAIT policy :func:`connect` attached to ``client`` (the default for clients made elsewhere)."""
    policy = getattr(client, "logpipe_replica_wait", None)
    if policy is None:
        policy = ReplicaWait()
        client.logpipe_replica_wait = policy
    return policy


class _LoggedSentinelProxy(redis.sentinel.SentinelConnectionPoolProxy):
    """Where Sentinel's connections ask for the primary's address: says once which primary it is, and once per
    failover."""

    def get_master_address(self):
        address = super().get_master_address()
        before = getattr(self, "_logged_address", None)
        if address != before:
            self._logged_address = address
            if before is None:
                log.warning("broker primary for %s is %s:%s", self.service_name, *address)
            else:
                log.warning("broker failover: primary for %s moved from %s:%s to %s:%s", self.service_name,
                            *before, *address)
        return address


class _LoggedSentinelPool(redis.sentinel.SentinelConnectionPool):
    def __init__(self, service_name, sentinel_manager, **kwargs):
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.proxy = _LoggedSentinelProxy(connection_pool=self, is_master=self.is_master,
                                          check_connection=self.check_connection, service_name=service_name,
                                          sentinel_manager=sentinel_manager)
        self.connection_kwargs["connection_pool"] = self.proxy


class UrlFileCredentials(redis.credentials.CredentialProvider):
    """The user and password of a broker URL read from a URL file, read again for every new
    connection: after ``logpipe acl setup`` rotates the passwords and rewrites the file, a
    long-running process (a worker, the dispatcher, a shipper) that has to reconnect (a socket
    timeout, a broker restart) authenticates with the new password instead of retrying the old
    one forever. A file that cannot be read any more leaves the credentials it started with."""

    def __init__(self, path: str, url: str):
        self.path, self.address = path, _address(url)
        self.initial = _credentials(url)

    def get_credentials(self) -> tuple[str, str] | tuple[str]:
        from logpipe.common.errors import ConfigError
        from logpipe.common.private import read_secret

        try:
            urls = read_secret(self.path, "broker URL file").split()
        except ConfigError:
            return self.initial
        for one in urls:
            if _address(one) == self.address:
                return _credentials(one)
        return self.initial


def _address(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


def _credentials(url: str) -> tuple[str, str] | tuple[str]:
    parts = urllib.parse.urlsplit(url)
    password = urllib.parse.unquote(parts.password or "")
    return (urllib.parse.unquote(parts.username), password) if parts.username else (password,)


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=_address(url)))


def _split_query(url: str) -> tuple[str, dict[str, str]]:
    base, _, query = url.partition("?")
    return base, dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def _sentinel_client(url: str, query: dict[str, str], decode_responses: bool, kwargs: dict):
    """``redis[s]+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/db]``: the client follows the
    primary the sentinels name. The credentials (and TLS) apply to the sentinels and the data servers alike."""
    scheme, rest = url.split("://", 1)
    netloc, _, path = rest.partition("/")
    creds, _, hosts = netloc.rpartition("@")
    username, _, password = creds.partition(":") if creds else ("", "", "")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("the path must be /SERVICE or /SERVICE/DB (the name the sentinels monitor)")
    service, db = parts[0], int(parts[1]) if len(parts) == 2 else 0
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    auth: dict[str, Any] = {"username": urllib.parse.unquote(username) or None,
                            "password": urllib.parse.unquote(password) or None}
    parsers: dict[str, Any] = redis.connection.URL_QUERY_ARGUMENT_PARSERS  # from_url's typing of options
    common = dict({k: parsers[k](v) if k in parsers else v for k, v in query.items()}, **kwargs)
    if scheme.startswith("rediss"):
        common["ssl"] = True
    common.pop("health_check_interval", None)
    sentinel = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=dict(auth, **common), **common)
    return sentinel.master_for(service, connection_pool_class=_LoggedSentinelPool, db=db,
                               decode_responses=decode_responses, health_check_interval=30, **auth)


def connect(url: str, decode_responses: bool = False, **kwargs):
    """A Redis client for ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS), ``unix://``, or
    ``redis+sentinel://`` / ``rediss+sentinel://`` URLs (see :func:`_sentinel_client`). Query parameters
    ``wait_replicas`` and ``wait_timeout_ms`` set the client's :class:`ReplicaWait`; ``ssl_*`` ones are TLS
    options (:mod:`common.broker.tls`). Connection problems surface on first use."""
    from logpipe.common.broker.tls import check_tls_options

    # TLS files named in the URL exist, before any connection (a sentinel URL is checked as its data URL)
    check_tls_options(url.replace("+sentinel://", "://", 1))
    base, query = _split_query(url)
    try:
        explicit = "wait_replicas" in query
        wanted = query.pop("wait_replicas", "majority").strip().lower()
        wait = ReplicaWait(MAJORITY if wanted == "majority" else int(wanted),
                           int(query.pop("wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS)), explicit)
        # WAIT holds its reply for up to its timeout: the socket must wait longer than that
        kwargs.setdefault("socket_timeout", max(5.0, wait.timeout_ms / 1000 + 2))
        if base.split("://", 1)[0].lower() in SENTINEL_SCHEMES:
            client = _sentinel_client(base, query, decode_responses, kwargs)
        else:
            if query:
                base += "?" + urllib.parse.urlencode(query)
            source = _url_file(url)
            if source and "@" in base.split("://", 1)[-1]:
                kwargs.setdefault("credential_provider", UrlFileCredentials(source, base))
                base = _without_credentials(base)
            client = redis.Redis.from_url(base, decode_responses=decode_responses,
                                          health_check_interval=30, **kwargs)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {redact(url)!r}: {exc}") from None
    client.logpipe_replica_wait = wait
    return client


def _url_file(url: str) -> str | None:
    from logpipe.common.config import url_file_of

    source = url_file_of(url)
    return source[0] if source else None


def redact(url: str) -> str:
    """The URL with its password (and a TLS key passphrase) replaced, for messages and logs (each of several,
    space-separated)."""
    if len(url.split()) > 1:
        return " ".join(redact(one) for one in url.split())
    if "ssl_password=" in url:
        import re
        url = re.sub(r"(ssl_password=)[^&#]*", r"\1***", url)
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def password_refused(url: str | None, exc: BaseException) -> BrokerError:
    """The one-line error for a password the broker refused, naming the URL file it came from
    (after a rotation by ``logpipe acl setup`` that file is the stale one). Without ``url``
    (not known where the refusal surfaced): the one URL file this process read, if any."""
    from logpipe.common.config import url_file_of

    where, source = (f"the broker at {redact(url)}" if url else "the broker"), url_file_of(url)
    said = str(exc).rstrip(". ")
    if source is None:
        return BrokerError(f"{where} refused the password: {said} (check the password in the "
                           f"broker URL)")
    path, embedded = source
    if embedded:
        fix = ("run `logpipe acl setup` (without --redis: it rotates the embedded broker's users "
               "and rewrites that file) or restart with `logpipe down` and `logpipe up`")
    else:
        fix = ("replace it with the one the latest `logpipe acl setup` wrote in its --dir (or "
               "run `logpipe acl setup --dir` again and copy the new files)")
    return BrokerError(f"{where} refused the password in {path}: {said}; the file is stale if "
                       f"`logpipe acl setup` rotated the passwords after writing it: {fix}")


def connect_checked(url: str, **kwargs):
    """A client that has answered a PING: a broker that is not there fails here, clearly."""
    client = connect(url, **kwargs)
    try:
        client.ping()
    except Exception as exc:
        from logpipe.common.broker.tls import tls_failure
        raise BrokerError(f"cannot reach the broker at {redact(url)}: "
                          f"{tls_failure(exc, url) or exc}") from None
    return client
