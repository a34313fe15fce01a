"""One evaluation pass: each rule's query counted over its window ending now, on any store's
reader. The clock is injected (tests step it; the daemon passes ``time.time``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from logpipe.common.errors import LogpipeError, QueryError
from logpipe.query.phrase import field_phrase
from logpipe.search.alerts.book import AlertBook, Notice
from logpipe.search.alerts.rules import MAX_GROUPS, Rule
from logpipe.store.base import Reader, SearchRequest

Breaches = dict[str, tuple[float | None, str]]


class Evaluator:
    def __init__(self, reader: Reader, clock: Callable[[], float]):
        self.reader = reader
        self.clock = clock

    def _request(self, query: str, rule: Rule, now: float) -> SearchRequest:
        end = datetime.fromtimestamp(now, timezone.utc)
        return SearchRequest(query=query or "*", start=end - timedelta(milliseconds=rule.window_ms),
                             end=end, limit=0)

    def breaches(self, rule: Rule, now: float | None = None) -> Breaches:
        """The keys whose condition holds at ``now``: {"": ...} for a whole rule, one per value
        for a ``group_by`` rule, {} when all is well."""
        now = self.clock() if now is None else now
        if rule.kind == "silence":
            query = field_phrase(rule.host_field, rule.host or "")
            n = self.reader.count(self._request(query, rule, now))
            return {"": (0, f"no event from {rule.host_field}:{rule.host} in the last "
                            f"{rule.window}")} if n == 0 else {}
        if rule.kind == "ratio":
            whole = self.reader.count(self._request(rule.total_query or "*", rule, now))
            if whole < max(1, rule.min_total):
                return {}
            part = self.reader.count(self._request(f"({rule.total_query}) AND ({rule.query})",
                                                   rule, now))
            share = 100.0 * part / whole
            if share > rule.percent:
                return {"": (round(share, 2), f"{share:.1f}% ({part} of {whole}) of "
                                              f"[{rule.total_query}] match [{rule.query}] in "
                                              f"the last {rule.window} (limit {rule.percent:g}%)")}
            return {}
        if rule.group_by:
            top = self.reader.top(self._request(rule.query, rule, now), rule.group_by,
                                  MAX_GROUPS)
            return {str(value): (count, f"{count} events of [{rule.query}] with "
                                        f"{rule.group_by}={value} in the last {rule.window} "
                                        f"(limit {rule.threshold:g})")
                    for value, count in top if count > rule.threshold}
        n = self.reader.count(self._request(rule.query, rule, now))
        hit = n > rule.threshold if rule.op == "above" else n < rule.threshold
        if not hit:
            return {}
        return {"": (n, f"{n} events of [{rule.query}] in the last {rule.window} "
                        f"({rule.op} {rule.threshold:g})")}

    def run(self, rules: list[Rule], book: AlertBook) -> tuple[list[Notice], dict[str, str]]:
        """Evaluate every rule, record the results in ``book``; returns the notices to deliver
        and, per rule that could not be evaluated, why (its incidents are left as they were)."""
        now = self.clock()
        notices: list[Notice] = []
        failed: dict[str, str] = {}
        for rule in rules:
            try:
                found = self.breaches(rule, now)
            except (QueryError, LogpipeError) as exc:
                failed[rule.name] = str(exc)
                continue
            notices += book.apply(rule, found, now)
        book.forget_rules_except({r.name for r in rules})
        return notices, failed
