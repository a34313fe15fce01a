"""Broker URL -> Redis client; URLs with their password hidden for messages and logs."""

from __future__ import annotations

from common.errors import BrokerError


def connect(url: str, decode_responses: bool = False, **kwargs):
    """A Redis client for ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
    ``unix://`` URLs. Connection problems surface as :class:`BrokerError` on first use."""
    import redis

    from common.broker.tls import check_tls_options

    check_tls_options(url)  # TLS files named in the URL exist, before any connection
    try:
        return redis.Redis.from_url(url, decode_responses=decode_responses,
                                    health_check_interval=30, **kwargs)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {redact(url)!r}: {exc}") from None


def redact(url: str) -> str:
    """The URL with its password (and a TLS key passphrase) replaced, for messages and logs."""
    if "ssl_password=" in url:
        import re
        url = re.sub(r"(ssl_password=)[^&#]*", r"\1***", url)
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def connect_checked(url: str, **kwargs):
    """A client that has answered a PING: a broker that is not there fails here, clearly."""
    client = connect(url, **kwargs)
    try:
        client.ping()
    except Exception as exc:
        from common.broker.tls import tls_failure
        raise BrokerError(f"cannot reach the broker at {redact(url)}: "
                          f"{tls_failure(exc, url) or exc}") from None
    return client
