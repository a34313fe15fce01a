"""Opening a store for reading, as ``logpipe search``/``trace`` and the page do: one place that
turns a store whose client module is missing into an error saying what to install."""

from __future__ import annotations

from logpipe.common.errors import ConfigError


def open_store_url(url: str):
    """The store at ``url`` (``sqlite:///...`` or ``http(s)://...``); ConfigError when its
    client module is not installed."""
    from logpipe.store import open_store

    try:
        return open_store(url)
    except ImportError as exc:
        raise ConfigError(f"the store {url} needs a module that is not available ({exc}); "
                          "install logpipe[indexer]") from None


def open_store(explicit: str | None = None):
    """The store ``--store`` names, else the default one (:func:`common.config.resolve_store_url`:
    ``LOGPIPE_STORE_URL``, the store ``logpipe up`` started, ``$LOGPIPE_HOME/events.db``)."""
    from logpipe.common.config import resolve_store_url

    return open_store_url(resolve_store_url(explicit))


__all__ = ["open_store", "open_store_url"]
