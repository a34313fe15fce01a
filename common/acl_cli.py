"""``logpipe acl setup``: create or update the broker's logpipe users and write their URL files.

Against the embedded broker (``logpipe up``'s, the default without ``--redis``) the state
directory's ``shipper.url`` and ``indexer.url`` are rewritten in the same step, so the embedded
services and every later command keep working after a rotation (``--dir`` is then optional and
gets a copy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import typer

from logpipe.common.errors import BrokerError, ConfigError

acl_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Least-privilege broker users for shippers and indexers.")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@acl_app.callback()
def acl() -> None:
    """Least-privilege broker users for shippers and indexers (Redis ACLs)."""


def embedded_url_files(admin_url: str) -> dict[str, str] | None:
    """role -> URL file of the running embedded broker (``logpipe up``) when ``admin_url`` is
    that broker, else None."""
    from logpipe.common.config import embedded_services

    info = embedded_services()
    files, broker = info.get("url_files") or {}, info.get("broker") or ""
    if not broker or not all(files.get(role) for role in ("shipper", "indexer")):
        return None
    host, _, port = broker.rpartition(":")
    try:
        parts = urlsplit(admin_url.split()[0])
        same = parts.port == int(port) and (parts.hostname == host or
                                            {parts.hostname, host} <= _LOOPBACK)
    except ValueError:
        return None
    return {role: files[role] for role in ("shipper", "indexer")} if same else None


@acl_app.command("setup")
def setup(redis: Optional[str] = typer.Option(
              None, "--redis", help="An admin's broker URL, or a 0600 file holding it (else "
                                    "LOGPIPE_REDIS_URL[_FILE], else `logpipe up`'s broker)."),
          directory: Optional[Path] = typer.Option(
              None, "--dir", help="Where to write shipper.url and indexer.url (0600, directory "
                                  "0700). Optional for the embedded broker, whose state "
                                  "directory's files are always rewritten."),
          raw_list: str = typer.Option("logpipe:raw", "--list", help="Raw list key."),
          prefix: str = typer.Option("logpipe", "--prefix", help="Prefix of logpipe's keys."),
          functions_only: bool = typer.Option(
              False, "--functions-only", help="Only load (or upgrade) logpipe's function "
                                              "library; the users and passwords stay as they are."),
          ) -> None:
    """Create or update logpipe-shipper and logpipe-indexer with fresh passwords (rotation),
    and load logpipe's function library (the Lua the indexer calls with FCALL)."""
    from logpipe.common.broker import Keys, connect, load_library, redact
    from logpipe.common.broker.acl import ROLES, setup_users, write_url_files
    from logpipe.common.broker.connection import password_refused
    from logpipe.common.broker.functions import LIBRARY_NAME, LIBRARY_VERSION
    from logpipe.common.config import resolve_redis_url
    from logpipe.common.private import private_dir, write_private

    admin_url = resolve_redis_url(redis, role="admin")
    embedded = None if functions_only else embedded_url_files(admin_url)
    if directory is None and embedded is None and not functions_only:
        raise ConfigError("--dir is required: the directory to write shipper.url and indexer.url "
                          "to (only the embedded broker of `logpipe up` has files of its own)")
    client = connect(admin_url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        from redis.exceptions import AuthenticationError
        if isinstance(exc, AuthenticationError):
            raise password_refused(admin_url, exc) from None
        raise BrokerError(f"cannot reach the broker at {redact(admin_url)}: {exc}") from None
    if functions_only:
        load_library(client)
        typer.echo(f"function library {LIBRARY_NAME} version {LIBRARY_VERSION} loaded")
        return
    if directory is not None:  # before the rotation: a directory that cannot be made fails now
        private_dir(directory)
    urls = setup_users(client, admin_url, Keys(prefix=prefix, raw=raw_list))
    written: dict[Path, str] = {}
    if embedded:  # the embedded services' own files, in the same step (issue 20.4)
        for role, name in embedded.items():
            written[write_private(name, urls[role] + "\n").resolve()] = role
    if directory is not None:
        for role, path in write_url_files(directory, urls).items():
            written.setdefault(path.resolve(), role)
    for path, role in written.items():
        typer.echo(f"{ROLES[role]}\t{path}")
    if embedded:
        typer.echo("the embedded broker's URL files were rewritten (its running indexer keeps "
                   "its open connections; if it has to reconnect it exits and `logpipe up`'s "
                   "supervisor restarts it with the new file)")
