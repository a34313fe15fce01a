"""Settings both sides use: where the state lives and where the broker and the store are.

Settings come from, in order: command-line flags, environment (``LOGPIPE_REDIS_URL``,
``LOGPIPE_STORE_URL``, ``LOGPIPE_HOME``), then the embedded services that ``logpipe up`` started
(recorded in ``$LOGPIPE_HOME/services.json``). The pipeline config (grok types) is the indexer's:
:mod:`indexer.pipeline_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

from logpipe.common.errors import ConfigError

ENV_REDIS = "LOGPIPE_REDIS_URL"
ENV_REDIS_FILE = "LOGPIPE_REDIS_URL_FILE"
ENV_STORE = "LOGPIPE_STORE_URL"
ENV_HOME = "LOGPIPE_HOME"


def home() -> Path:
    """The state directory: registry, embedded services, the embedded store."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".logpipe")


# --- where the broker and the store are -------------------------------------------------------

def services_file() -> Path:
    """Written by ``logpipe up``: the URLs and pids of the embedded services."""
    return home() / "services.json"


def read_services() -> dict:
    """The one reader of the ``logpipe up`` state: what it recorded ({} when nothing is)."""
    import json

    try:
        info = json.loads(services_file().read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def embedded_services() -> dict:
    """What ``logpipe up`` recorded, while its services are up (``down`` clears ``ready``)."""
    info = read_services()
    return info if info.get("ready") else {}


def resolve_redis_url(explicit: str | None = None, role: str = "indexer") -> str:
    """Flag, then ``LOGPIPE_REDIS_URL``, then ``LOGPIPE_REDIS_URL_FILE``, then the broker
    ``logpipe up`` started (the URL file of its ``role`` user: shipper or indexer).

    A flag or variable naming a file (a path, no ``scheme://``) is read as a URL file, so the
    secret need not be in argv: the file must be private (0600)."""
    url = explicit or os.environ.get(ENV_REDIS)
    if url and "://" not in url:
        if not os.path.exists(url):
            raise ConfigError(f"broker {url!r} is neither a URL (redis://[user:password@]host:"
                              f"port/db, rediss:// for TLS) nor an existing URL file")
        return _read_url_file(url)
    if url:
        return url
    if os.environ.get(ENV_REDIS_FILE):
        return _read_url_file(os.environ[ENV_REDIS_FILE])
    embedded = embedded_services().get("url_files", {}).get(role)
    if embedded:
        return _read_url_file(embedded, embedded=True)
    raise ConfigError("no broker: pass --redis redis://[user:password@]host:port/db or a URL "
                      f"file, set {ENV_REDIS} or {ENV_REDIS_FILE}, or run `logpipe up` to start "
                      "the embedded one")


# URL -> the file it was read from (and whether that file is `logpipe up`'s), so that a refused
# password can name the file that holds it: the stale one after a rotation.
_URL_FILES: dict[str, tuple[str, bool]] = {}


def _read_url_file(path: str, embedded: bool = False) -> str:
    from logpipe.common.private import read_secret

    url = read_secret(path, "broker URL file")
    remember_url_file(url, path, embedded)
    return url


def remember_url_file(url: str, path: str, embedded: bool = False) -> None:
    """Say that ``url`` came from the URL file ``path`` (a child process given the URL by its
    parent, which read the file): a reconnect then reads the file's current password, and a
    refused password names the file."""
    for one in [url, *url.split()]:
        _URL_FILES[one.strip()] = (str(path), embedded)


def url_file_of(url: str | None) -> tuple[str, bool] | None:
    """The file a broker URL was read from in this process, and whether it is one of the
    embedded broker's (``logpipe up``); None for a URL given as such. Without a URL: the one
    file this process read URLs from, if it read exactly one."""
    if url is None:
        files = set(_URL_FILES.values())
        return files.pop() if len(files) == 1 else None
    return _URL_FILES.get(url.strip())


def default_store_url() -> str:
    return "sqlite:///" + str(home() / "events.db")


def resolve_store_url(explicit: str | None = None) -> str:
    """Flag, then ``LOGPIPE_STORE_URL``, then the store ``logpipe up`` chose, then the embedded
    SQLite store under ``LOGPIPE_HOME``."""
    return (explicit or os.environ.get(ENV_STORE) or embedded_services().get("store_url")
            or default_store_url())
