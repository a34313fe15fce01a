"""TLS to the broker: checking a ``rediss://`` URL's options and naming TLS failures.

A URL carries its TLS settings as query parameters, which redis-py passes to its SSL
connection::

    rediss://user:password@host:6380/0?ssl_ca_certs=/etc/logpipe/ca.pem
        &ssl_certfile=/etc/logpipe/client.pem&ssl_keyfile=/etc/logpipe/client.key

``ssl_ca_certs`` (a CA bundle; without it the system's CAs), ``ssl_certfile`` and
``ssl_keyfile`` (a client certificate, when the server asks for one; the key file must be 0600),
``ssl_check_hostname`` (default true). Files are checked before connecting, so a typo is a clear
error naming the file. A server certificate that the CA does not vouch for, or a TLS client
talking to a plain port (or the other way round), is a configuration mistake: it is reported at
once with what to check, instead of being retried like an outage.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from logpipe.common.errors import ConfigError
from logpipe.common.private import check_private

FILE_OPTIONS = {"ssl_ca_certs": "CA file", "ssl_certfile": "client certificate",
                "ssl_keyfile": "client key", "ssl_ca_path": "CA directory"}
KNOWN = set(FILE_OPTIONS) | {"ssl_cert_reqs", "ssl_check_hostname", "ssl_password",
                             "ssl_min_version", "ssl_ca_data"}


def check_tls_options(url: str) -> None:
    """Raise :class:`ConfigError` for a TLS option that cannot work (before any connection)."""
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = {k: v for k, v in options.items() if k.startswith("ssl_")}
    if not tls:
        return
    where = "broker URL option"
    if parts.scheme != "rediss":
        raise ConfigError(f"{where}s {', '.join(sorted(tls))} need a TLS URL: use rediss:// "
                          f"instead of {parts.scheme}://")
    unknown = sorted(set(tls) - KNOWN)
    if unknown:
        raise ConfigError(f"unknown {where} {unknown[0]} (known: {', '.join(sorted(KNOWN))})")
    for option, what in FILE_OPTIONS.items():
        if option in tls:
            path = Path(tls[option])
            if not path.exists():
                raise ConfigError(f"the {what} given by {option} does not exist", str(path))
            if option == "ssl_keyfile":
                check_private(path, "TLS client key")
    if ("ssl_certfile" in tls) != ("ssl_keyfile" in tls):
        raise ConfigError("a client certificate needs both ssl_certfile and ssl_keyfile")


def tls_failure(exc: BaseException, url: str | None = None) -> str | None:
    """A message for a TLS handshake that failed for a configuration reason, else None.

    With TLS 1.3 a server that refuses the client's certificate says so after the handshake; a
    client that writes first may see only "EOF occurred in violation of protocol". Given the
    ``url``, such an ambiguous failure is settled by :func:`probe` (one more connection that
    reads the server's verdict before writing anything that matters)."""
    found = _classify(exc)
    if found is None and url and url.startswith("rediss://") and \
            "EOF occurred in violation of protocol" in _chain_text(exc):
        found = probe(url)
    return found


def _chain_text(exc: BaseException) -> str:
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " ".join(parts)


def probe(url: str, timeout: float = 3.0) -> str | None:
    """Connect with the URL's TLS settings and wait for the server's first word without sending
    anything: a TLS alert names the configuration problem; silence (the server waits for a
    command, as it should) or anything else: None."""
    import socket

    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        if options.get("ssl_check_hostname", "true").lower() in ("false", "0", "no"):
            context.check_hostname = False
        if options.get("ssl_certfile"):
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                      timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                tls.settimeout(1.5)
                tls.recv(64)
    except ssl.SSLError as exc:
        return _classify(exc)
    except OSError:
        return None
    return None


def _classify(exc: BaseException) -> str | None:
    text = str(exc)
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            text = str(cause)
            break
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(cause, ssl.SSLCertVerificationError):
        return ("the broker's TLS certificate was not accepted (" + _reason(text) + "): check "
                "ssl_ca_certs names the CA that signed the server's certificate, and that the "
                "host name in the URL is in the certificate")
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return ("TLS handshake failed: the port does not speak TLS (use redis:// for a plain "
                "port, rediss:// only for the server's tls-port)")
    if "TLSV13_ALERT_CERTIFICATE_REQUIRED" in text or "CERTIFICATE_REQUIRED" in text or \
            "SSLV3_ALERT_HANDSHAKE_FAILURE" in text or "alert bad certificate" in text.lower():
        return ("the broker requires a client certificate it accepts: give ssl_certfile and "
                "ssl_keyfile signed by the server's client CA")
    return None


def _reason(text: str) -> str:
    marker = "certificate verify failed:"
    if marker in text:
        return text.split(marker, 1)[1].split("(_ssl", 1)[0].strip().rstrip(".")
    return "certificate verify failed"
