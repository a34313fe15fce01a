"""Who may do what on the page: the role check on every request, the audit of every change, and
the pages of accounts (sign-in form, one-time links, the own account, the admin's Audit view).

Every request passes :class:`RoleMiddleware` after :class:`~search.web.auth.AuthMiddleware`:
it names the request's user (an account's session: the account as the store holds it now; the
access token, by cookie or Bearer: ``token``, the admin) and refuses with 403 and a message what
the role may not (:func:`required_role`). Reading is a viewer's; a POST is an operator's unless
listed in :data:`VIEWER_CHANGES`; accounts and the audit log are the admin's. Every POST past
the sign-in check is written to the audit log with its outcome (refusals included), in one place,
so a change added later is audited without doing anything.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from logpipe.search.web.accounts import (ROLES, AccountError, AccountStore, SignInError,
                                         role_at_least)
from logpipe.search.web.audit import AuditLog
from logpipe.search.web.auth import COOKIE, _unauthorized

# POSTs a viewer may make (everything else that changes something is an operator's or more):
# signing in and out, the own password, and saved searches (part of searching)
VIEWER_CHANGES = frozenset({"/login", "/signin", "/signout", "/account/password"})
VIEWER_CHANGE_PREFIXES = ("/api/saved",)
ADMIN_PREFIXES = ("/accounts", "/audit", "/api/accounts", "/api/audit")
# POSTs that write their own audit entry (with what the generic one cannot know, and never a
# password or a link's token)
SELF_AUDITED = frozenset({"/login", "/signin", "/signout", "/account/password",
                          "/accounts/add", "/accounts/remove", "/accounts/role",
                          "/accounts/link"})
ACTIONS = {"/api/dlq/replay": "replay", "/api/dlq/purge": "purge",
           "/api/alerts/ack": "alert_ack", "/api/alerts/mute": "alert_mute",
           "/api/alerts/rules": "alert_rule_saved",
           "/api/alerts/rules/delete": "alert_rule_deleted"}
NEVER_LOGGED = frozenset({"password", "new_password", "token", "link", "secret"})
BODY_MAX = 64 * 1024


@dataclass(frozen=True)
class User:
    name: str          # the account, or "token" for the access token's admin
    role: str
    via: str           # "account", or how the token came: "cookie", "bearer", "query"

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


def required_role(method: str, path: str) -> str:
    if path.startswith(ADMIN_PREFIXES):
        return "admin"
    if method in ("GET", "HEAD") or path in VIEWER_CHANGES \
            or path.startswith(VIEWER_CHANGE_PREFIXES):
        return "viewer"
    return "operator"


def user_of(request_or_scope) -> User | None:
    scope = request_or_scope.scope if hasattr(request_or_scope, "scope") else request_or_scope
    return scope.get("state", {}).get("user")


def signed_in_user(request: Request) -> User:
    """The user of a request past :class:`RoleMiddleware` on a path that is not public."""
    user = user_of(request)
    if user is None:
        raise AccountError("this needs a signed-in user")
    return user


def alerts_check(request: Request, action: str) -> str | None:
    """The Alerts view's hook (``create_app(alerts_check=...)``): ack, mute and rule edits are an
    operator's."""
    user = user_of(request)
    if user and user.can("operator"):
        return None
    return (f"{action.replace('_', ' ')} needs the operator role; you are "
            f"{user.name if user else 'not signed in'} ({user.role if user else 'no role'}): "
            "ask an admin (logpipe ui user role NAME operator)")


def _client(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def _summary(value: Any, depth: int = 0) -> Any:
    """What of a request or answer goes into the audit log: short, and never a secret."""
    if isinstance(value, dict):
        if depth > 1:
            return f"{len(value)} keys"
        return {str(k)[:64]: _summary(v, depth + 1) for k, v in list(value.items())[:20]
                if str(k).lower() not in NEVER_LOGGED}
    if isinstance(value, list):
        if len(value) <= 5 and all(isinstance(v, str) and len(v) <= 64 for v in value):
            return value
        return f"{len(value)} items"
    if isinstance(value, str):
        return value[:200]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:200]


class RoleMiddleware:
    def __init__(self, app, accounts: "Accounts"):
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        how, session = state.get("auth"), state.get("session")
        path, method = scope["path"], scope["method"]
        if how is None:  # a public sign-in path (AuthMiddleware let it through)
            state["user"] = None
            return await self.app(scope, receive, send)
        if session is not None and session.account is not None:
            account = await run_in_threadpool(self.accounts.store.get, session.account)
            if account is None or account.generation != session.generation:
                why = ("your account was removed" if account is None else
                       "your account's role or password changed")
                clear = self.accounts.guard.cookie_header("", scope.get("scheme") == "https", 0)
                return await _unauthorized(scope, send, why, clear)
            user = User(account.name, account.role, "account")
        else:
            user = User("token", "admin", how)
        state["user"] = user
        need = required_role(method, path)
        audited = method not in ("GET", "HEAD") and path not in SELF_AUDITED
        if not user.can(need):
            if audited:
                await self._audit(scope, user, 403, b"", b"", denied=need)
            return await _forbidden(scope, send, user, need)
        if not audited:
            return await self.app(scope, receive, send)
        request_body = bytearray()
        answer_body = bytearray()
        answer = {"status": 500}

        async def receive_seen():
            message = await receive()
            if message["type"] == "http.request" and len(request_body) < BODY_MAX:
                request_body.extend(message.get("body", b"")[:BODY_MAX - len(request_body)])
            return message

        async def send_seen(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body" and len(answer_body) < BODY_MAX:
                answer_body.extend(message.get("body", b"")[:BODY_MAX - len(answer_body)])
            await send(message)

        try:
            await self.app(scope, receive_seen, send_seen)
        finally:
            await self._audit(scope, user, answer["status"], bytes(request_body),
                              bytes(answer_body))

    async def _audit(self, scope, user: User, status: int, body: bytes, answer: bytes,
                     denied: str | None = None) -> None:
        path = scope["path"]

        def parsed(blob: bytes):
            try:
                return _summary(orjson.loads(blob)) if blob else None
            except orjson.JSONDecodeError:
                return f"{len(blob)} bytes, not JSON"

        what = {"request": parsed(body), "status": status}
        if denied:
            what["denied"] = f"needs {denied}"
        elif status >= 400 or path in ACTIONS:
            what["answer"] = parsed(answer)
        await run_in_threadpool(self.accounts.audit.record, ACTIONS.get(path, f"POST {path}"),
                                user.name, role=user.role, ip=_client(scope),
                                ok=status < 400, **what)


async def _forbidden(scope, send, user: User, need: str):
    message = (f"this needs the {need} role; you are signed in as {user.name} ({user.role}): "
               f"ask an admin (logpipe ui user role {user.name if user.via == 'account' else 'NAME'}"
               f" {need})")
    if scope["path"].startswith("/api/"):
        body, kind = orjson.dumps({"error": message}), b"application/json"
    else:
        body = ("<!doctype html><meta charset=utf-8><title>logpipe: not allowed</title>"
                f"<link rel=stylesheet href=/static/app.css><main><h1>Not allowed</h1>"
                f"<p class=error id=forbidden>{html.escape(message)}</p>"
                "<p><a href=\"/\">search</a></p></main>").encode()
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", kind),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Accounts:
    """The sign-in routes and the admin's accounts and audit pages, over one account store and
    one audit log."""

    def __init__(self, site, store: AccountStore | None = None, audit: AuditLog | None = None):
        self.site = site
        self.guard = site.guard
        self._store = store
        self._own_store = store is None      # a store handed in is its giver's to close
        self.audit = audit or AuditLog(clock=site.guard.clock)

    @property
    def store(self) -> AccountStore:
        if self._store is None:
            self._store = AccountStore(clock=self.guard.clock)
        return self._store

    def close(self) -> None:
        if self._store is not None and self._own_store:
            self._store.close()
            self._store = None

    def routes(self) -> list[Route]:
        return [Route("/login", self.login, methods=["GET", "POST"]),
                Route("/signin", self.signin, methods=["GET", "POST"]),
                Route("/signout", self.signout, methods=["POST"]),
                Route("/account", self.account_page),
                Route("/account/password", self.password, methods=["POST"]),
                Route("/audit", self.audit_page),
                Route("/accounts/{action}", self.change_account, methods=["POST"])]

    # ------------------------------------------------------------------ helpers
    async def _form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        return dict(parse_qsl(body[:BODY_MAX].decode("utf-8", "replace"), keep_blank_values=True))

    def _same_origin(self, request: Request) -> str | None:
        """Why a sign-in form's POST is refused (it comes from another page), or None."""
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        origin: str | None = _form_origin(request, own)
        if origin is None:
            referer = request.headers.get("referer")
            if not referer:
                return "no Origin or Referer header: refusing a sign-in from an unknown page"
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        return None if origin == own else f"Origin {origin} is not this page ({own})"

    def _form_allowed(self, request: Request, form: dict) -> str | None:
        """The CSRF and Origin check of a form POST (the token is a hidden field)."""
        state = request.scope.get("state", {})
        headers = {k.lower(): v for k, v in request.headers.items()}
        headers["x-csrf-token"] = form.get("csrf", "")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        origin = _form_origin(request, own)
        if origin is not None:
            headers["origin"] = origin
        return self.guard.change_allowed(state.get("auth", ""), headers, request.url.scheme,
                                         state.get("session"))

    def _signed_in(self, request: Request, account, target: str) -> Response:
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", self.guard.cookie_header(
            self.guard.new_session(account.name, account.generation),
            request.url.scheme == "https"))
        return response

    def _page(self, request: Request, template: str, status: int = 200, **ctx) -> Response:
        ctx.setdefault("command", "logpipe ui user list")
        return self.site.render(request, template, status=status, **ctx)

    # ------------------------------------------------------------------ sign-in
    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page(request, "login.html", error=None, typed_name="")
        form = await self._form(request)
        why = self._same_origin(request)
        if why:
            return self._page(request, "login.html", status=403, error=why, typed_name="")
        name, password = form.get("name", "").strip(), form.get("password", "")
        try:
            account = await run_in_threadpool(self.store.authenticate, name, password)
        except SignInError as exc:
            known = await run_in_threadpool(self.store.get, name) if name else None
            # the name only when it is an account's: a password typed into the name field
            # must not land in the log
            await run_in_threadpool(self.audit.record, "sign_in_failed",
                                    known.name if known else "(unknown name)",
                                    ip=_client(request.scope), ok=False, how="password")
            return self._page(request, "login.html", status=401, error=str(exc),
                              typed_name=name if known else "")
        await run_in_threadpool(self.audit.record, "sign_in", account.name, role=account.role,
                                ip=_client(request.scope), how="password")
        return self._signed_in(request, account, "/")

    async def signin(self, request: Request) -> Response:
        """A one-time link: GET shows a button (a link scanner that fetches it spends nothing),
        its POST spends the link and starts the session."""
        if request.method == "GET":
            return self._page(request, "signin.html", error=None,
                              link=request.query_params.get("link", ""))
        form = await self._form(request)
        why = self._same_origin(request)
        if why:
            return self._page(request, "signin.html", status=403, error=why, link="")
        try:
            account = await run_in_threadpool(self.store.redeem, form.get("link", ""))
        except SignInError as exc:
            await run_in_threadpool(self.audit.record, "sign_in_failed", "(link)",
                                    ip=_client(request.scope), ok=False, how="link",
                                    reason=str(exc).split(":")[0])
            return self._page(request, "signin.html", status=401, error=str(exc), link="")
        await run_in_threadpool(self.audit.record, "sign_in", account.name, role=account.role,
                                ip=_client(request.scope), how="link")
        return self._signed_in(request, account, "/account")

    async def signout(self, request: Request) -> Response:
        form = await self._form(request)
        why = self._form_allowed(request, form)
        if why:
            return _json({"error": why}, 403)
        response = RedirectResponse("/login", status_code=303)
        response.headers.append("set-cookie", self.guard.cookie_header(
            "", request.url.scheme == "https", 0))
        return response

    # ------------------------------------------------------------------ own account
    async def account_page(self, request: Request) -> Response:
        user = user_of(request)
        account = await run_in_threadpool(self.store.get, user.name) \
            if user and user.via == "account" else None
        return self._page(request, "account.html", account=account, error=None,
                          done=request.query_params.get("done"))

    async def password(self, request: Request) -> Response:
        form = await self._form(request)
        user = signed_in_user(request)
        why = self._form_allowed(request, form)
        if not why and user.via != "account":
            why = "the access token has no password: sign in with an account to set one"
        if not why and form.get("password", "") != form.get("again", ""):
            why = "the two passwords differ"
        account = await run_in_threadpool(self.store.get, user.name)
        if not why:
            try:
                await run_in_threadpool(self.store.set_password, user.name,
                                        form.get("password", ""))
            except AccountError as exc:
                why = str(exc)
        if why:
            return self._page(request, "account.html", status=400, account=account, error=why,
                              done=None)
        await run_in_threadpool(self.audit.record, "password_set", user.name, role=user.role,
                                ip=_client(request.scope), account=user.name)
        account = await run_in_threadpool(self.store.get, user.name)
        # the new password revoked every session of the account, this one too: a new one
        return self._signed_in(request, account, "/account?done=1")

    # ------------------------------------------------------------------ admin
    async def audit_page(self, request: Request) -> Response:
        entries = await run_in_threadpool(self.audit.entries, 500)
        accounts = await run_in_threadpool(self.store.list)
        return self._page(request, "audit.html", entries=entries, accounts=accounts,
                          roles=ROLES, error=None, link=None, command="logpipe ui user list")

    async def change_account(self, request: Request) -> Response:
        action = request.path_params["action"]
        form = await self._form(request)
        user = signed_in_user(request)
        why = self._form_allowed(request, form)
        name, role = form.get("name", "").strip(), form.get("role", "")
        link = None
        status = 400
        if not why:
            try:
                if action == "add":
                    token = await run_in_threadpool(self.store.add, name, role)
                    link = f"{str(request.base_url).rstrip('/')}/signin?link={token}"
                elif action == "link":
                    token = await run_in_threadpool(self.store.new_link, name)
                    link = f"{str(request.base_url).rstrip('/')}/signin?link={token}"
                elif action == "remove":
                    await run_in_threadpool(self.store.remove, name)
                elif action == "role":
                    await run_in_threadpool(self.store.set_role, name, role)
                else:
                    why, status = f"no account action {action!r}", 404
            except AccountError as exc:
                why = str(exc)
        else:
            status = 403
        await run_in_threadpool(self.audit.record, f"user_{action}"[:40], user.name,
                                role=user.role, ip=_client(request.scope), ok=why is None,
                                account=name[:64], new_role=role[:16] or None,
                                error=why)
        entries = await run_in_threadpool(self.audit.entries, 500)
        accounts = await run_in_threadpool(self.store.list)
        return self._page(request, "audit.html", status=200 if why is None else status,
                          entries=entries, accounts=accounts, roles=ROLES, error=why,
                          link=link)


def _form_origin(request: Request, own: str) -> str | None:
    """The Origin of a form's POST. Under ``Referrer-Policy: no-referrer`` a browser sends
    ``Origin: null`` for a form (not for fetch); then ``Sec-Fetch-Site: same-origin`` (set by the
    browser, never by a page) vouches for this origin."""
    origin = request.headers.get("origin")
    if origin == "null" and request.headers.get("sec-fetch-site") == "same-origin":
        return own
    return origin


def _json(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


__all__ = ["Accounts", "RoleMiddleware", "User", "alerts_check", "required_role", "COOKIE"]
