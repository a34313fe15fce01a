"""Who may look and who may change: the access token, sessions, CSRF and Origin checks, and
the security headers every response carries.

* The token (printed by ``logpipe ui``, or kept in ``--token-file``, 0600) is required for every
  path, static files included: ``?token=`` once (the page starts a session and redirects to the
  same address without it, on this origin only), or ``Authorization: Bearer <token>``, or the
  session cookie.
* A session is random and signed: ``<id>.<issued>.<HMAC>`` under a key derived from the token
  and a secret file in the state directory (``$LOGPIPE_HOME/ui-session.key``, 0600). It expires
  ``--session-hours`` (default 12) after sign-in; ``logpipe ui --rotate-token`` writes a new
  token and a new key, which revokes every session at once (a running ``logpipe ui`` notices the
  changed files at its next request). The cookie is HttpOnly, SameSite=Strict.
* Changes (replay, purge) are POSTs. With the cookie they need the CSRF token of that session
  (an HMAC of its id and issue time, written into each page) in ``X-CSRF-Token`` and an Origin
  (or Referer) equal to the page's own; with a Bearer header they need neither (a browser never
  adds that header by itself, so another site cannot forge it).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, quote_from_bytes, urlencode, urlsplit

import orjson

from logpipe.common.errors import ConfigError

COOKIE = "logpipe_ui"
SESSION_HOURS = 12.0
KEY_FILE = "ui-session.key"      # in the state directory ($LOGPIPE_HOME)
CLOCK_SKEW_S = 5                 # an issue time this far ahead of the clock is still accepted
CSRF_HEADER = "x-csrf-token"
# served without the token: the sign-in pages of accounts (search/web/roles.py) and their style
PUBLIC_PATHS = frozenset({"/login", "/signin", "/static/app.css"})
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


def load_key(path: str | os.PathLike) -> bytes:
    """The session-signing secret kept in ``path`` (made, 0600, when missing; refused when
    others can read it)."""
    from logpipe.common.private import check_private, private_dir, write_private

    file = Path(path).expanduser()
    if not file.exists():
        private_dir(file.parent)
        write_private(file, secrets.token_hex(32) + "\n")
    check_private(file, "session key file")
    text = file.read_text(encoding="utf-8", errors="replace").strip()
    if len(text) < 32:
        raise ConfigError("the session key file holds no key of at least 32 characters; "
                          "delete it (a new one is made) or run `logpipe ui --rotate-token`",
                          path=str(file))
    return text.encode()


def rotate(token_file: str | os.PathLike, key_file: str | os.PathLike) -> str:
    """A new token and a new session key, each replacing its file atomically (0600): every
    session signed in before is revoked. Returns the new token."""
    from logpipe.common.private import private_dir, write_private

    token = new_token()
    for path, text in ((Path(token_file).expanduser(), token),
                       (Path(key_file).expanduser(), secrets.token_hex(32))):
        private_dir(path.parent)
        write_private(path, text + "\n")
    return token


class Secrets:
    """The token and the key sessions are signed with, re-read when their files change (so
    ``logpipe ui --rotate-token`` revokes the sessions of a running server)."""

    def __init__(self, token: str, token_file: str | os.PathLike | None = None,
                 key_file: str | os.PathLike | None = None):
        self.token_file = Path(token_file).expanduser() if token_file else None
        self.key_file = Path(key_file).expanduser() if key_file else None
        self._key_secret = load_key(self.key_file) if self.key_file else \
            secrets.token_hex(32).encode()
        self._seen: tuple | None = self._stamp()
        self._set(token)

    def _set(self, token: str) -> None:
        self.token = token
        # the token is part of the key: a new token (a restart without --token-file, or a
        # rotation) alone already revokes every session
        self.key = hmac.new(self._key_secret, b"logpipe-ui-session\0" + token.encode(),
                            hashlib.sha256).digest()

    def _stamp(self) -> tuple:
        out = []
        for path in (self.token_file, self.key_file):
            try:
                st = path.stat() if path else None
                out.append((st.st_ino, st.st_mtime_ns, st.st_size) if st else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def current(self) -> "Secrets":
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            try:
                token = load_token(str(self.token_file)) if self.token_file else self.token
                if self.key_file:
                    self._key_secret = load_key(self.key_file)
            except (ConfigError, OSError):
                # a file half-replaced or made unreadable: refuse everyone until it is right
                # again rather than keep trusting what it said before
                token = secrets.token_urlsafe(32)
                self._key_secret = secrets.token_hex(32).encode()
                self._seen = None
            self._set(token)
        return self


@dataclass(frozen=True)
class Session:
    sid: str
    issued: int
    account: str | None = None   # None: signed in with the access token (the admin)
    generation: int = 0          # the account's generation when signed in (search/web/accounts)


def same_origin_location(scope: dict, drop: str = "token") -> str:
    """The address of this request without the ``drop`` parameter, as a Location on this
    origin only: one leading slash, percent-encoded ASCII. A path that a browser would read as
    another host (``//evil.example/x``, ``/\\evil``), or holding control characters, gives
    ``/`` instead."""
    raw = scope.get("raw_path")
    if not isinstance(raw, (bytes, bytearray)):
        raw = scope.get("path", "/").encode("utf-8", "surrogateescape")
    path = scope.get("root_path", "").encode("utf-8", "surrogateescape") + bytes(raw)
    unsafe = (not path.startswith(b"/") or path.startswith(b"//") or b"\\" in path
              or any(b < 0x20 or b == 0x7F for b in path))
    location = "/" if unsafe else quote_from_bytes(path, safe="/!$&'()*+,;=:@-._~%")
    if urlsplit(location).scheme or urlsplit(location).netloc:
        location = "/"
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                      encoding="latin-1")
    rest = urlencode([(k, v) for k, v in pairs if k != drop], encoding="latin-1")
    return location + (f"?{rest}" if rest else "")


class Guard:
    """The checks, bound to one token (or the :class:`Secrets` that follow its file)."""

    def __init__(self, token: "str | Secrets", session_hours: float = SESSION_HOURS,
                 clock: Callable[[], float] = time.time):
        if not session_hours > 0:
            raise ConfigError(f"--session-hours {session_hours}: give a number of hours above 0")
        self.secrets = token if isinstance(token, Secrets) else Secrets(token)
        self.lifetime = int(session_hours * 3600) or 1
        self.clock = clock

    @property
    def token(self) -> str:
        return self.secrets.current().token

    def _mac(self, purpose: str, *parts) -> str:
        text = ".".join([purpose, *map(str, parts)]).encode()
        return hmac.new(self.secrets.current().key, text, hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    # ------------------------------------------------------------------ sessions
    def new_session(self, account: str | None = None, generation: int = 0) -> str:
        """A new session's cookie value: a random id, the issue time, their signature; an
        account's session also names the account and its generation (signed with them)."""
        sid, issued = secrets.token_urlsafe(18), int(self.clock())
        if account is None:
            return f"{sid}.{issued}.{self._mac('session', sid, issued)}"
        mac = self._mac("session", sid, issued, account, generation)
        return f"{sid}.{issued}.{account}.{generation}.{mac}"

    def session(self, cookie: str | None) -> tuple[Session | None, str | None]:
        """(the session, None) when the cookie is good; else (None, why not) (why is None when
        there is no cookie at all)."""
        if not cookie:
            return None, None
        parts = cookie.split(".")
        account, generation = None, 0
        if len(parts) == 5 and parts[3].isdigit() and len(parts[3]) < 16:
            sid, issued_text, account, _, mac = parts
            generation = int(parts[3])
        elif len(parts) == 3:
            sid, issued_text, mac = parts
        else:
            return None, "not a session of this server"
        if not (sid and issued_text.isdigit() and len(issued_text) < 16 and mac):
            return None, "not a session of this server"
        issued = int(issued_text)
        signed = (sid, issued) if account is None else (sid, issued, account, generation)
        if not hmac.compare_digest(mac.encode("utf-8", "replace"),
                                   self._mac("session", *signed).encode()):
            return None, "a session of another token (revoked, or from another server)"
        age = self.clock() - issued
        if age >= self.lifetime or age < -CLOCK_SKEW_S:
            return None, "the session expired"
        return Session(sid, issued, account, generation), None

    def csrf_of(self, session: Session | None) -> str:
        return self._mac("csrf", session.sid, session.issued) if session else ""

    def csrf_for(self, scope) -> str:
        """The CSRF token of the request's session ('' without one: Bearer needs none)."""
        return self.csrf_of(scope.get("state", {}).get("session"))

    def cookie_header(self, value: str, secure: bool, max_age: int | None = None) -> str:
        age = self.lifetime if max_age is None else max_age
        return (f"{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict"
                + ("; Secure" if secure else ""))

    def identify(self, headers: dict, cookies: dict, query_token: str | None
                 ) -> tuple[str | None, Session | None, str | None]:
        """How the request proved itself ('bearer', 'cookie', 'query' or None), its session,
        and why a cookie it carried was refused."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self.token_ok(auth[7:].strip()):
            return "bearer", None, None
        if self.token_ok(query_token):
            return "query", None, None
        session, why = self.session(cookies.get(COOKIE))
        if session:
            return "cookie", session, None
        return None, None, why

    def change_allowed(self, how: str, headers: dict, scheme: str,
                       session: Session | None = None) -> str | None:
        """None when a POST may change something; else why not."""
        if how == "bearer":
            return None
        given = headers.get(CSRF_HEADER, "")
        want = self.csrf_of(session)
        if not given or not want or not hmac.compare_digest(given.encode("utf-8", "replace"),
                                                            want.encode()):
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
        how, session, why = self.guard.identify(
            headers, _parse_cookies(headers.get("cookie", "")), query_token)
        secure = scope.get("scheme") == "https"
        if how is None and scope["path"] in PUBLIC_PATHS and query_token is None:
            # the sign-in pages (search/web/roles.py): nothing of the logs is on them
            state = scope.setdefault("state", {})
            state["auth"], state["session"] = None, None
            return await self.app(scope, receive, send_secure)
        if how is None:
            return await _unauthorized(scope, send_secure, why,
                                       self.guard.cookie_header("", secure, 0) if why else None)
        if query_token is not None:
            # swap the token in the address for a session: the token stays out of the
            # history, bookmarks and screenshots; the redirect stays on this origin
            response = [(b"location", same_origin_location(scope).encode("ascii")),
                        (b"content-length", b"0")]
            if how == "query":
                response.append((b"set-cookie", self.guard.cookie_header(
                    self.guard.new_session(), secure).encode("latin-1")))
            await send_secure({"type": "http.response.start", "status": 303,
                               "headers": response})
            await send_secure({"type": "http.response.body", "body": b""})
            return
        state = scope.setdefault("state", {})
        state["auth"], state["session"] = how, session
        return await self.app(scope, receive, send_secure)


async def _unauthorized(scope, send, why: str | None = None, clear: str | None = None):
    api = scope["path"].startswith("/api/")
    again = (f"{why}: sign in again" if why else "token required")
    if api:
        body = orjson.dumps({"error": f"{again}: Authorization: Bearer <token> or the session "
                                      "cookie from the address `logpipe ui` printed"})
        kind = b"application/json"
    else:
        body = ("<!doctype html><meta charset=utf-8><title>logpipe: token required</title>"
                f"<p>{html.escape(again.capitalize())}. This page needs the access token: open "
                "the address <code>logpipe ui</code> printed "
                "(<code>http://host:port/?token=...</code>), or "
                "<a href=\"/login\">sign in</a> with your account.</p>").encode()
        kind = b"text/html; charset=utf-8"
    headers = [(b"content-type", kind), (b"www-authenticate", b"Bearer"),
               (b"content-length", str(len(body)).encode())]
    if clear:
        headers.append((b"set-cookie", clear.encode("latin-1")))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
