"""How logpipe connects to Elasticsearch: credentials and TLS.

Secrets never ride on the store URL (it is shown in logs, services.json and argv): a URL with
``user:password@`` is refused. Credentials come from the environment or from a 0600 file:

* ``LOGPIPE_ES_AUTH_FILE=/etc/logpipe/credentials/elasticsearch.auth``: ``key = value`` lines,
  ``username`` + ``password`` (basic auth) or ``api_key`` (base64 ``id:key``, as Elasticsearch
  returns it in ``encoded``); optional ``ca_certs`` / ``fingerprint``. Refused unless 0600.
* or ``LOGPIPE_ES_USERNAME`` + ``LOGPIPE_ES_PASSWORD``, or ``LOGPIPE_ES_API_KEY``.

TLS (``https://``) trusts the system CAs unless told: ``?ca_certs=/path/ca.pem`` on the URL (or
``LOGPIPE_ES_CA_CERTS``), or ``?fingerprint=SHA256HEX`` (the server certificate's SHA-256, as
Elasticsearch prints it at first start; or ``LOGPIPE_ES_FINGERPRINT``). Credentials are never
sent over plain ``http://``.
"""

from __future__ import annotations

import os
from pathlib import Path

from logpipe.common.errors import ConfigError

ENV_AUTH_FILE = "LOGPIPE_ES_AUTH_FILE"
ENV_USERNAME = "LOGPIPE_ES_USERNAME"
ENV_PASSWORD = "LOGPIPE_ES_PASSWORD"
ENV_API_KEY = "LOGPIPE_ES_API_KEY"
ENV_CA = "LOGPIPE_ES_CA_CERTS"
ENV_FINGERPRINT = "LOGPIPE_ES_FINGERPRINT"

URL_OPTIONS = ("ca_certs", "fingerprint")  # non-secret options a store URL may carry
_FILE_KEYS = {"username", "password", "api_key", "ca_certs", "fingerprint"}


def _read_auth_file(path: str) -> dict[str, str]:
    from logpipe.common.private import read_secret

    text = read_secret(path, "Elasticsearch credentials file")
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError("expected key = value (username, password, api_key, ca_certs, "
                              "fingerprint)", path, number)
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in _FILE_KEYS:
            raise ConfigError(f"unknown key {key!r} (known: {', '.join(sorted(_FILE_KEYS))})",
                              path, number)
        values[key] = value.strip("\"'")
    return values


def _settings(url_options: dict[str, str]) -> dict[str, str]:
    """Where each setting comes from: the auth file, then the environment, then the URL."""
    env = os.environ
    found: dict[str, str] = {}
    if env.get(ENV_AUTH_FILE):
        found.update(_read_auth_file(env[ENV_AUTH_FILE]))
    for key, name in (("username", ENV_USERNAME), ("password", ENV_PASSWORD),
                      ("api_key", ENV_API_KEY), ("ca_certs", ENV_CA),
                      ("fingerprint", ENV_FINGERPRINT)):
        if env.get(name) and key not in found:
            found[key] = env[name]
    for key in URL_OPTIONS:
        if url_options.get(key) and key not in found:
            found[key] = url_options[key]
    return found


def client_options(url: str, url_options: dict[str, str]) -> dict:
    """Keyword arguments for ``elasticsearch.Elasticsearch(url, ...)``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ConfigError(f"the store URL carries credentials: remove them from it (URLs end up "
                          f"in logs and command lines) and put them in a 0600 file named by "
                          f"{ENV_AUTH_FILE} (username = ..., password = ... or api_key = ...)")
    s = _settings(url_options)
    options: dict = {}
    if "api_key" in s:
        options["api_key"] = s["api_key"]
    elif "username" in s or "password" in s:
        if not (s.get("username") and s.get("password")):
            raise ConfigError("Elasticsearch basic auth needs both a username and a password "
                              f"({ENV_AUTH_FILE}, or {ENV_USERNAME} and {ENV_PASSWORD})")
        options["basic_auth"] = (s["username"], s["password"])
    if options and parts.scheme != "https":
        raise ConfigError(f"Elasticsearch credentials are configured but the store URL is "
                          f"{parts.scheme}://{parts.netloc}: they would travel in clear text. "
                          f"Use https://")
    if s.get("ca_certs"):
        if parts.scheme != "https":
            raise ConfigError("ca_certs is for https:// store URLs")
        if not Path(s["ca_certs"]).exists():
            raise ConfigError("the Elasticsearch CA file (ca_certs) does not exist", s["ca_certs"])
        options["ca_certs"] = s["ca_certs"]
    if s.get("fingerprint"):
        options["ssl_assert_fingerprint"] = s["fingerprint"].replace(":", "").lower()
    return options


def describe_failure(exc: BaseException, url: str) -> str | None:
    """A message a person can act on for an authentication or TLS failure, else None."""
    text = _all_text(exc)
    status = getattr(getattr(exc, "meta", None), "status", None) or \
        getattr(exc, "status_code", None)
    if status == 401:
        return (f"Elasticsearch at {url} refused the credentials (HTTP 401): check the username "
                f"and password or API key ({ENV_AUTH_FILE})")
    if status == 403:
        return (f"Elasticsearch at {url} denied this user the request (HTTP 403): give the "
                f"user the index privileges logpipe needs")
    if "plain HTTP request was sent to HTTPS port" in text or (
            status == 400 and "HTTPS" in str(getattr(exc, "body", ""))):
        return f"{url} speaks HTTPS: use an https:// store URL"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (f"the TLS certificate of {url} was not accepted: give the CA that signed it "
                f"(?ca_certs=/path/ca.pem on the store URL or {ENV_CA}) or its SHA-256 "
                f"fingerprint (?fingerprint=...)")
    if "Fingerprints did not match" in text:
        return f"the TLS certificate of {url} does not have the configured fingerprint"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"{url} does not speak TLS: use an http:// store URL"
    return None


def _all_text(exc: BaseException) -> str:
    """The messages of an exception, the errors it wraps and its causes (the client's TlsError
    says only "TLS error"; the reason is in what it wraps)."""
    parts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts.append(f"{current} {getattr(current, 'message', '')}")
        todo.extend(e for e in getattr(current, "errors", ()) if isinstance(e, BaseException))
        todo.extend([current.__cause__, current.__context__])
    return " ".join(parts)
