"""The page's Alerts view: rules (the rules file's and the page's), incidents (firing first),
mutes and history; acknowledge, mute and rule edits are CSRF-checked POSTs, like the dead-letter
actions, and each passes :data:`may_change` (the roles hook: who may edit alerts).

Routes: ``GET /alerts``, ``POST /api/alerts/ack`` ``{rule, key}``, ``POST /api/alerts/mute``
``{rule, minutes}`` (0 unmutes), ``POST /api/alerts/rules`` (a rule object: added or replaced,
page rules only), ``POST /api/alerts/rules/delete`` ``{name}``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from logpipe.common.console import emit
from logpipe.common.errors import ConfigError, QueryError
from logpipe.search.alerts.book import AlertBook
from logpipe.search.alerts.config import load_config
from logpipe.search.alerts.rules import RuleError

# The roles hook: (request, action) -> None when allowed, else why not. Actions: "ack", "mute",
# "edit_rules". Every signed-in user may until accounts and roles wire their check in here.
Check = Callable[[Request, str], "str | None"]


def everyone(request: Request, action: str) -> str | None:
    return None


class AlertsView:
    def __init__(self, site, book_path=None, may_change: Check = everyone,
                 clock: Callable[[], float] = time.time):
        self.site = site
        self.book_path = book_path
        self.may_change = may_change
        self.clock = clock
        self._book: AlertBook | None = None

    @property
    def book(self) -> AlertBook:
        if self._book is None:
            self._book = AlertBook(self.book_path)
        return self._book

    def close(self) -> None:
        if self._book is not None:
            self._book.close()

    def routes(self) -> list[Route]:
        return [Route("/alerts", self.page),
                Route("/api/alerts/ack", self.ack, methods=["POST"]),
                Route("/api/alerts/mute", self.mute, methods=["POST"]),
                Route("/api/alerts/rules", self.save_rule, methods=["POST"]),
                Route("/api/alerts/rules/delete", self.delete_rule, methods=["POST"])]

    def _overview(self) -> dict[str, Any]:
        now = self.clock()
        error = None
        try:
            file_rules = load_config().rules
        except ConfigError as exc:
            file_rules, error = [], str(exc)
        page_rules = self.book.page_rules()
        names = {r.name for r in file_rules}
        rules = file_rules + [r for r in page_rules if r.name not in names]
        incidents = self.book.incidents()
        firing: dict[str, int] = {}
        for inc in incidents:
            if inc["firing"]:
                firing[inc["rule"]] = firing.get(inc["rule"], 0) + 1
        return {"rules": rules, "incidents": incidents, "mutes": self.book.mutes(now),
                "history": self.book.history(200), "firing": firing, "error": error,
                "now": now}

    async def page(self, request: Request) -> Response:
        ctx = await run_in_threadpool(self._overview)
        return self.site.render(request, "alerts.html", command="logpipe alerts list", **ctx)

    async def _allowed(self, request: Request, action: str):
        body, refused = await self.site._change(request)
        if refused:
            return None, refused
        why = self.may_change(request, action)
        if why:
            return None, _json({"error": why}, 403)
        return body, None

    async def ack(self, request: Request) -> Response:
        body, refused = await self._allowed(request, "ack")
        if refused:
            return refused
        rule, key = str(body.get("rule", "")), str(body.get("key", ""))
        who = self.site._who(request)
        done = await run_in_threadpool(self.book.acknowledge, rule, key, who, self.clock())
        if not done:
            return _json({"error": f"no firing alert {rule!r} {key!r} to acknowledge"}, 404)
        emit("ui_alert_ack", who=who, rule=rule, key=key or None)
        return _json({"acknowledged": True})

    async def mute(self, request: Request) -> Response:
        body, refused = await self._allowed(request, "mute")
        if refused:
            return refused
        rule = str(body.get("rule", ""))
        try:
            minutes = float(body.get("minutes", 60))
            if not 0 <= minutes <= 60 * 24 * 90:
                raise ValueError
        except (TypeError, ValueError):
            return _json({"error": "minutes must be a number from 0 (unmute) to 129600 "
                                   "(90 days)"}, 400)
        who = self.site._who(request)
        until = await run_in_threadpool(self.book.mute, rule, minutes * 60, who, self.clock())
        emit("ui_alert_mute", who=who, rule=rule, minutes=minutes)
        return _json({"muted_until": until if minutes else None})

    async def save_rule(self, request: Request) -> Response:
        body, refused = await self._allowed(request, "edit_rules")
        if refused:
            return refused
        try:
            names = {r.name for r in load_config().rules}
        except ConfigError:
            names = set()
        if body.get("name") in names:
            return _json({"error": f"{body.get('name')!r} is a rule of the rules file: change it "
                                   "there, or pick another name"}, 409)
        who = self.site._who(request)
        try:
            rule = await run_in_threadpool(self.book.save_rule, body, who, self.clock())
        except (RuleError, QueryError) as exc:
            return _json({"error": str(exc)}, 400)
        emit("ui_alert_rule_saved", who=who, rule=rule.name)
        return _json({"saved": rule.to_dict()})

    async def delete_rule(self, request: Request) -> Response:
        body, refused = await self._allowed(request, "edit_rules")
        if refused:
            return refused
        name, who = str(body.get("name", "")), self.site._who(request)
        if not await run_in_threadpool(self.book.delete_rule, name, who, self.clock()):
            return _json({"error": f"no page rule named {name!r}"}, 404)
        emit("ui_alert_rule_deleted", who=who, rule=name)
        return _json({"deleted": name})


def _json(value, status: int = 200) -> Response:
    import orjson

    return Response(orjson.dumps(value), status_code=status, media_type="application/json")
