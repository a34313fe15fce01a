"""``logpipe alerts run``: evaluate the rules every ``[evaluate] every`` and deliver the notices.

Each pass re-reads the rules file (an edit applies at the next pass; a broken edit is reported
once and the last good rules stay in force), adds the page's rules, evaluates them against the
store, records firing and resolved incidents in the alert book and delivers their notices to the
rule's channels (not while the rule is muted). A failed delivery is retried at the next passes
(up to ``DELIVERY_ATTEMPTS``). Start order never matters: a store that is not up yet, or goes
away, is waited for (``store_unreachable`` / ``store_back``, one line each).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from logpipe.common.console import emit
from logpipe.common.errors import ConfigError, LogpipeError, QueryError
from logpipe.common.retry import BROKER_OUTAGE
from logpipe.search.alerts.book import AlertBook, Notice
from logpipe.search.alerts.config import AlertsConfig, load_config
from logpipe.search.alerts.evaluate import Evaluator
from logpipe.search.alerts.notify import DeliveryError, channels
from logpipe.store.base import Reader, SearchRequest

DELIVERY_ATTEMPTS = 5


@dataclass
class PassResult:
    evaluated: int = 0
    notices: list[Notice] = field(default_factory=list)
    delivered: list[tuple[str, str]] = field(default_factory=list)   # (rule/key/state, channel)
    failed: dict[str, str] = field(default_factory=dict)            # rule -> why not evaluated
    undelivered: list[str] = field(default_factory=list)
    store_down: str | None = None


class AlertsDaemon:
    def __init__(self, reader: Reader, rules_file: str | None = None, book: AlertBook | None = None,
                 clock: Callable[[], float] = time.time):
        self.reader = reader
        self.rules_file = rules_file
        self.book = book or AlertBook()
        self.clock = clock
        self.config = load_config(rules_file)       # a mistake at start-up stops at once
        self.channels = {c.name: c for c in channels(self.config, self.config.page_url)}
        self._config_error: str | None = None
        self._pending: list[tuple[Notice, str, int]] = []
        self._down_since: float | None = None

    def reload(self) -> AlertsConfig:
        try:
            config = load_config(self.rules_file)
            chans = {c.name: c for c in channels(config, config.page_url)}
        except ConfigError as exc:
            if str(exc) != self._config_error:
                emit("alerts_config_error", error=str(exc), action="keeping the last good rules")
                self._config_error = str(exc)
            return self.config
        self._config_error = None
        self.config, self.channels = config, chans
        return config

    def _store_up(self, result: PassResult) -> bool:
        try:
            self.reader.count(SearchRequest(query="*", limit=0))
        except QueryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any store client failure is the store away
            result.store_down = str(exc)[:200]
            if self._down_since is None:
                self._down_since = time.monotonic()
                emit("store_unreachable", store=getattr(self.reader, "url", "?"),
                     error=result.store_down, action="waiting for the store")
            return False
        if self._down_since is not None:
            emit("store_back", store=getattr(self.reader, "url", "?"),
                 down_seconds=round(time.monotonic() - self._down_since, 1))
            self._down_since = None
        return True

    def once(self) -> PassResult:
        result = PassResult()
        config = self.reload()
        if not self._store_up(result):
            return result
        rules = list(config.rules)
        names = {r.name for r in rules}
        rules += [r for r in self.book.page_rules() if r.name not in names]
        notices, result.failed = Evaluator(self.reader, self.clock).run(rules, self.book)
        for name, why in result.failed.items():
            emit("alert_rule_failed", rule=name, error=why)
        result.evaluated, result.notices = len(rules), notices
        by_name = {r.name: r for r in rules}
        work = [(n, ch, 0) for n in notices if not n.muted
                for ch in by_name[n.rule].channels if ch in self.channels]
        for n in notices:
            emit("alert_" + n.state, rule=n.rule, key=n.key or None, muted=n.muted or None,
                 message=n.message)
        self._deliver(self._pending + work, result)
        self.book.trim()
        return result

    def _deliver(self, work: list[tuple[Notice, str, int]], result: PassResult) -> None:
        self._pending = []
        for notice, channel, attempts in work:
            tag = f"{notice.rule}/{notice.key}/{notice.state}"
            try:
                self.channels[channel].send(notice)
            except KeyError:
                continue   # the channel was removed from the rules file
            except (DeliveryError, ConfigError) as exc:
                self.book.delivered(notice, channel, str(exc), self.clock())
                emit("alert_delivery_failed", rule=notice.rule, channel=channel, error=str(exc))
                if attempts + 1 < DELIVERY_ATTEMPTS:
                    self._pending.append((notice, channel, attempts + 1))
                result.undelivered.append(f"{tag} {channel}")
                continue
            self.book.delivered(notice, channel, None, self.clock())
            result.delivered.append((tag, channel))

    def run(self, stopping: Callable[[], bool], sleep: Callable[[float], None] = time.sleep) -> None:
        backoff = BROKER_OUTAGE.start()
        emit("alerts_started", rules=len(self.config.rules),
             rules_file=str(self.config.path) if self.config.path else None,
             channels=",".join(self.channels) or None, every_s=self.config.every_s)
        while not stopping():
            try:
                result = self.once()
            except LogpipeError as exc:    # the book's file or the store refusing: say so, go on
                emit("alerts_pass_failed", error=str(exc))
                result = PassResult(store_down=str(exc))
            if result.store_down:
                pause = backoff.next_delay()
            else:
                backoff.reset()
                pause = self.config.every_s
            end = time.monotonic() + pause
            while not stopping() and time.monotonic() < end:
                sleep(min(0.5, max(0.0, end - time.monotonic())))
