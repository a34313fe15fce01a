"""``logpipe ui``: options only; the serving lives in :mod:`search.web.server`."""

from __future__ import annotations

from typing import Optional

import typer

ui_app = typer.Typer(add_completion=False)


@ui_app.command()
def ui(
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
    """Serve the web page: search, histogram, fields, mail trace, dead letters, health."""
    import os

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
