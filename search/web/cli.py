"""``logpipe ui``: options only; the serving lives in :mod:`search.web.server`."""

from __future__ import annotations

import sys
from typing import Optional

import typer

ui_app = typer.Typer(add_completion=False)


@ui_app.callback(invoke_without_command=True)
def ui(
    ctx: typer.Context,
    store: Optional[str] = typer.Option(None, "--store", help="Store URL: http(s)://host:9200 "
                                        "or sqlite:///path.db (default as `logpipe search`)."),
    redis: Optional[str] = typer.Option(None, "--redis", help="Broker URL, for dead letters "
                                        "and health (else LOGPIPE_REDIS_URL, else `logpipe up`'s)."),
    bind: str = typer.Option("127.0.0.1:5601", "--bind", help="HOST:PORT to listen on."),
    token_file: Optional[str] = typer.Option(None, "--token-file", help="File (0600) holding "
                                             "the access token; made if missing. Required "
                                             "beyond loopback."),
    query_timeout: float = typer.Option(10.0, "--query-timeout", min=0,
                                        help="Seconds a page's or API call's store work may "
                                        "take before it answers 'query too expensive' "
                                        "(0: no limit)."),
    session_hours: float = typer.Option(12.0, "--session-hours", help="A browser session "
                                        "signed in with the token lasts this long."),
    rotate_token: bool = typer.Option(False, "--rotate-token", help="Write a new token to "
                                      "--token-file and a new session key, revoking every "
                                      "session (a running ui notices), print the new sign-in "
                                      "address and exit."),
) -> None:
    """Serve the web page: search, histogram, fields, mail trace, dead letters, health.
    `logpipe ui user ...` manages the page's accounts and roles."""
    import os

    if ctx.invoked_subcommand:
        return

    from logpipe.common.config import ENV_REDIS, ENV_REDIS_FILE, resolve_redis_url, resolve_store_url
    from logpipe.common.errors import ConfigError

    try:
        import jinja2, starlette, uvicorn  # noqa: E401,F401
    except ImportError as exc:
        raise ConfigError(f"the web page needs the [ui] extra ({exc.name} is missing): "
                          "pip install 'logpipe[ui]'") from None
    from logpipe.search.web.server import rotate_token as rotate, run

    if rotate_token:
        rotate(bind, token_file)
        return

    broker_error = None
    try:
        redis_url = resolve_redis_url(redis)
    except ConfigError as exc:  # the search pages work without a broker
        redis_url, broker_error = None, str(exc)
    # No URL given: the broker is `logpipe up`'s, which `down` + `up` move to another port.
    follow = not (redis or os.environ.get(ENV_REDIS) or os.environ.get(ENV_REDIS_FILE))
    run(resolve_store_url(store), redis_url, bind, token_file, broker_error, query_timeout,
        follow_state=follow, session_hours=session_hours)


user_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Accounts of the web page: viewer, operator, admin.")
ui_app.add_typer(user_app, name="user")


def _store_and_audit():
    import getpass

    from logpipe.search.web.accounts import open_store
    from logpipe.search.web.audit import AuditLog

    try:
        who = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        who = "cli"
    return open_store(), AuditLog(), who


def _print_link(token: str, bind: str) -> None:
    from logpipe.search.web.server import parse_bind, shown_address

    host, port = parse_bind(bind)
    print(f"{shown_address(host, port)}/signin?link={token}", flush=True)


_BIND = typer.Option("127.0.0.1:5601", "--bind", help="The page's HOST:PORT, for the link.")
_HOURS = typer.Option(24.0, "--hours", help="The sign-in link expires after this long.")


@user_app.command("add")
def user_add(name: str = typer.Argument(..., help="Account name (a-z, 0-9, - and _)."),
             role: str = typer.Option("viewer", "--role", help="viewer, operator or admin."),
             bind: str = _BIND, hours: float = _HOURS) -> None:
    """Add an account and print its one-time sign-in link (stored hashed; works once)."""
    store, audit, who = _store_and_audit()
    token = store.add(name, role, hours)
    audit.record("user_add", who, role="admin", account=name, new_role=role)
    print(f"account {name} ({role}) added; its sign-in link works once, for {hours:g} h:",
          file=sys.stderr, flush=True)
    _print_link(token, bind)


@user_app.command("link")
def user_link(name: str = typer.Argument(...), bind: str = _BIND, hours: float = _HOURS) -> None:
    """A new one-time sign-in link for NAME (an earlier unused one stops working)."""
    store, audit, who = _store_and_audit()
    token = store.new_link(name, hours)
    audit.record("user_link", who, role="admin", account=name)
    _print_link(token, bind)


@user_app.command("list")
def user_list() -> None:
    """The accounts, their roles and whether each has a password."""
    from logpipe.common.console import printable

    store, _, _ = _store_and_audit()
    accounts = store.list()
    if not accounts:
        print("no accounts (the access token of `logpipe ui` is the admin's)")
    for a in accounts:
        print(f"{printable(a.name):<32} {a.role:<9} "
              f"{'password' if a.has_password else 'no password'}")


@user_app.command("remove")
def user_remove(name: str = typer.Argument(...)) -> None:
    """Remove an account: its sessions and links stop working at once."""
    store, audit, who = _store_and_audit()
    store.remove(name)
    audit.record("user_remove", who, role="admin", account=name)
    print(f"account {name} removed", flush=True)


@user_app.command("role")
def user_role(name: str = typer.Argument(...), role: str = typer.Argument(
        ..., help="viewer, operator or admin.")) -> None:
    """Change an account's role (its open sessions must sign in again)."""
    store, audit, who = _store_and_audit()
    store.set_role(name, role)
    audit.record("user_role", who, role="admin", account=name, new_role=role)
    print(f"account {name} is now {role}", flush=True)


@user_app.command("passwd")
def user_passwd(name: str = typer.Argument(...)) -> None:
    """Set an account's password, read from the terminal (twice) or one line of stdin; never
    from the command line."""
    import getpass

    from logpipe.search.web.accounts import AccountError

    if sys.stdin.isatty():
        password = getpass.getpass(f"new password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise AccountError("the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    store, audit, who = _store_and_audit()
    store.set_password(name, password)
    audit.record("password_set", who, role="admin", account=name)
    print(f"password of {name} set; its open sessions must sign in again", flush=True)
