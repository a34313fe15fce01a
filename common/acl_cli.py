"""``logpipe acl setup``: create or update the broker's logpipe users and write their URL files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from logpipe.common.errors import BrokerError

acl_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Least-privilege broker users for shippers and indexers.")


@acl_app.callback()
def acl() -> None:
    """Least-privilege broker users for shippers and indexers (Redis ACLs)."""


@acl_app.command("setup")
def setup(redis: Optional[str] = typer.Option(
              None, "--redis", help="An admin's broker URL, or a 0600 file holding it (else "
                                    "LOGPIPE_REDIS_URL[_FILE], else `logpipe up`'s broker)."),
          directory: Path = typer.Option(..., "--dir", help="Where to write shipper.url and "
                                                            "indexer.url (0600, directory 0700)."),
          raw_list: str = typer.Option("logpipe:raw", "--list", help="Raw list key."),
          prefix: str = typer.Option("logpipe", "--prefix", help="Prefix of logpipe's keys."),
          ) -> None:
    """Create or update logpipe-shipper and logpipe-indexer with fresh passwords (rotation)."""
    from logpipe.common.broker import Keys, connect, redact
    from logpipe.common.broker.acl import ROLES, setup_users, write_url_files
    from logpipe.common.config import resolve_redis_url

    admin_url = resolve_redis_url(redis, role="admin")
    client = connect(admin_url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise BrokerError(f"cannot reach the broker at {redact(admin_url)}: {exc}") from None
    urls = setup_users(client, admin_url, Keys(prefix=prefix, raw=raw_list))
    for role, path in write_url_files(directory, urls).items():
        typer.echo(f"{ROLES[role]}\t{path}")
