"""Who may look and who may change: the access token, the session cookie, CSRF and Origin checks,
and the security headers every response carries.

* The token (printed by ``logpipe ui``, or kept in ``--token-file``, 0600) is required for every
  path, static files included: ``?token=`` once (the page sets a cookie and redirects to the
  same address without it), or ``Authorization: Bearer <token>``, or the cookie.
* The cookie holds an HMAC of the token, never the token; HttpOnly, SameSite=Strict.
* Changes (replay, purge) are POSTs. With the cookie they need the CSRF token (an HMAC of the
  access token, written into each page) in ``X-CSRF-Token`` and an Origin (or Referer) equal to
  the page's own; with a Bearer header they need neither (a browser never adds that header by
  itself, so another site cannot forge it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from logpipe.common.errors import ConfigError

COOKIE = "logpipe_ui"
CSRF_HEADER = "x-csrf-token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load_token(path: str) -> str:
    """The token kept in ``path``; a new one is written there (0600, directory 0700) when the
    file does not exist. A file others can read is refused: the token is a password."""
    file = Path(path).expanduser()
    if not file.exists():
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = new_token()
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token
    mode = file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the token file is readable by others (mode {oct(mode & 0o777)}); "
                          f"run: chmod 600 {file}", path=str(file))
    token = file.read_text(encoding="utf-8", errors="replace").strip()
    if len(token) < 16:
        raise ConfigError("the token file holds no token of at least 16 characters",
                          path=str(file))
    return token


class Guard:
    """The checks, bound to one token."""

    def __init__(self, token: str):
        self.token = token
        self.cookie_value = self._mac("session")
        self.csrf = self._mac("csrf")

    def _mac(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def identify(self, headers: dict, cookies: dict, query_token: str | None) -> str | None:
        """How the request proved itself: 'bearer', 'cookie', 'query' or None."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self.token_ok(auth[7:].strip()):
            return "bearer"
        cookie = cookies.get(COOKIE)
        if cookie and hmac.compare_digest(cookie.encode(), self.cookie_value.encode()):
            return "cookie"
        if self.token_ok(query_token):
            return "query"
        return None

    def change_allowed(self, how: str, headers: dict, scheme: str) -> str | None:
        """None when a POST may change something; else why not."""
        if how == "bearer":
            return None
        given = headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.csrf.encode()):
            return "missing or wrong CSRF token (reload the page)"
        own = f"{scheme}://{headers.get('host', '')}"
        origin = headers.get("origin")
        if origin is None:
            referer = headers.get("referer")
            if not referer:
                return "no Origin or Referer header: refusing a change from an unknown page"
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin != own:
            return f"Origin {origin} is not this page ({own})"
        return None


def _parse_cookies(header: str) -> dict:
    out = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


class AuthMiddleware:
    """Pure ASGI middleware: every response gets the security headers; nothing is served
    without the token (401, and no data)."""

    def __init__(self, app, guard: Guard):
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        query_token = next((v for k, v in query if k == "token"), None)
        how = self.guard.identify(headers, _parse_cookies(headers.get("cookie", "")),
                                  query_token)
        if how is None:
            return await _unauthorized(scope, send_secure)
        if how == "query" or query_token is not None:
            # swap the token in the address for the cookie: the token stays out of the
            # history, bookmarks and screenshots
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            cookie = (f"{COOKIE}={self.guard.cookie_value}; Path=/; HttpOnly; SameSite=Strict"
                      + ("; Secure" if scope.get("scheme") == "https" else ""))
            await send_secure({"type": "http.response.start", "status": 303,
                               "headers": [(b"location", location.encode("latin-1")),
                                           (b"set-cookie", cookie.encode("latin-1")),
                                           (b"content-length", b"0")]})
            await send_secure({"type": "http.response.body", "body": b""})
            return
        scope.setdefault("state", {})["auth"] = how
        return await self.app(scope, receive, send_secure)


async def _unauthorized(scope, send):
    api = scope["path"].startswith("/api/")
    if api:
        body = b'{"error": "token required: Authorization: Bearer <token> or the session cookie"}'
        kind = b"application/json"
    else:
        body = (b"<!doctype html><meta charset=utf-8><title>logpipe: token required</title>"
                b"<p>This page needs the access token: open the address <code>logpipe ui</code> "
                b"printed (<code>http://host:port/?token=...</code>).</p>")
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", kind), (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
