"""What an alert rule says, checked when it is read (file, page or API).

Three kinds, each carrying its own query (no saved search needed):

* ``count``: the number of events matching ``query`` over the last ``window`` is ``above`` or
  ``below`` ``threshold``; with ``group_by = FIELD`` each value of the field is judged on its own
  (one incident per value, e.g. per client IP).
* ``silence``: no event from ``host`` (in ``host_field``, ``logsource`` for mail) for ``window``.
* ``ratio``: the share of ``query`` within ``total_query`` over ``window`` is above ``percent``
  (judged once ``total_query`` has at least ``min_total`` events).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from logpipe.common.errors import ConfigError, QueryError
from logpipe.query.datemath import parse_interval
from logpipe.query.lucene import compile_query

KINDS = ("count", "silence", "ratio")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_WINDOW_MS = 3660 * 86400 * 1000   # ten years: a rule looks back at most this far
MAX_GROUPS = 100          # a group_by rule judges at most this many values (the most frequent)


class RuleError(ConfigError):
    """A rule that cannot be evaluated as written; the message names the rule and the fix."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    window: str = "15m"
    query: str = "*"
    op: str = "above"                 # count: above | below
    threshold: float = 0
    group_by: str | None = None       # count: one incident per value of this field
    host: str | None = None           # silence
    host_field: str = "logsource"     # silence
    total_query: str | None = None    # ratio: the whole (B); query is the part (A)
    percent: float = 0                # ratio
    min_total: int = 1                # ratio
    description: str = ""
    source: str = "file"              # file | page | example (where it came from; not settable)
    channels: tuple[str, ...] = field(default=("mail", "webhook"))

    @property
    def window_ms(self) -> int:
        return parse_interval(self.window)

    def condition(self) -> str:
        """The rule in words, as the page and the notices show it."""
        if self.kind == "silence":
            return f"no event with {self.host_field}:{self.host} for {self.window}"
        if self.kind == "ratio":
            return (f"share of [{self.query}] in [{self.total_query}] over {self.window} "
                    f"above {self.percent:g}%")
        per = f" per {self.group_by}" if self.group_by else ""
        return f"count of [{self.query}]{per} over {self.window} {self.op} {self.threshold:g}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return {k: v for k, v in out.items() if v is not None}


_FIELDS = {f for f in Rule.__dataclass_fields__} - {"source"}


def parse_rule(raw: dict, source: str = "file") -> Rule:
    """A rule from a TOML table or a JSON body; RuleError saying what is wrong and how to fix it."""
    if not isinstance(raw, dict):
        raise RuleError("a rule must be a table (TOML [[rules]]) or a JSON object")
    name = str(raw.get("name", "")).strip()
    where = f"rule {name!r}" if name else "a rule"
    if not NAME_RE.match(name):
        raise RuleError(f"{where}: name must be 1-64 letters, digits, '_', '.', '-' "
                        "(starting with a letter or digit)")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise RuleError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
                        f"{', '.join(sorted(_FIELDS))}")
    kind = str(raw.get("kind", "count"))
    if kind not in KINDS:
        raise RuleError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    values = {k: v for k, v in raw.items() if k in _FIELDS and v is not None}
    values["kind"] = kind
    values["name"] = name
    try:
        for key in ("threshold", "percent"):
            if key in values:
                values[key] = float(values[key])
        if "min_total" in values:
            values["min_total"] = int(values["min_total"])
    except (TypeError, ValueError):
        raise RuleError(f"{where}: threshold, percent and min_total must be numbers") from None
    for key in ("query", "window", "op", "group_by", "host", "host_field", "total_query",
                "description"):
        if key in values and not isinstance(values[key], str):
            raise RuleError(f"{where}: {key} must be text")
    if "channels" in values:
        channels = values["channels"]
        if isinstance(channels, str):
            channels = [channels]
        if not isinstance(channels, (list, tuple)) or not set(channels) <= {"mail", "webhook"}:
            raise RuleError(f"{where}: channels is a list of 'mail' and 'webhook'")
        values["channels"] = tuple(channels)
    if values.get("group_by") == "":
        values.pop("group_by")
    rule = Rule(**values, source=source)
    try:
        if rule.window_ms > MAX_WINDOW_MS:
            raise QueryError(f"window {rule.window} is longer than {MAX_WINDOW_MS // 86400000}d")
        for q in (rule.query, rule.total_query):
            if q:
                compile_query(q)
    except QueryError as exc:
        raise RuleError(f"{where}: {exc}") from None
    if rule.kind == "count" and rule.op not in ("above", "below"):
        raise RuleError(f"{where}: op must be 'above' or 'below', not {rule.op!r}")
    if rule.kind == "count" and rule.group_by and rule.op == "below":
        raise RuleError(f"{where}: group_by works with op = 'above' only (a value with no "
                        "events has no group); use kind = 'silence' for one host")
    if rule.kind == "silence" and not rule.host:
        raise RuleError(f"{where}: a silence rule needs host = 'NAME' (the value of "
                        f"{rule.host_field})")
    if rule.kind == "ratio" and not rule.total_query:
        raise RuleError(f"{where}: a ratio rule needs total_query (the whole the query's "
                        "events are a share of)")
    if rule.kind == "ratio" and not 0 <= rule.percent <= 100:
        raise RuleError(f"{where}: percent must be from 0 to 100")
    return rule


# Built-in examples for mail servers, on the built-in `mail` type's fields (indexer/pipelines/
# mail.toml, indexer/grok/patterns/mail.grok): `dsn`, `stat` (sendmail and postfix), `action`,
# `clientip` (postfix rejects), `authMsg`/`relayip` (sendmail AUTH failure), `logsource`.
MAIL_EXAMPLES: list[dict] = [
    {"name": "mail-bounce-spike", "kind": "count", "query": "type:mail AND dsn:5*",
     "window": "15m", "op": "above", "threshold": 50,
     "description": "Permanent failures (DSN 5.x.x) above 50 in 15 minutes: a bounce spike."},
    {"name": "mail-deferred-growth", "kind": "count",
     "query": "type:mail AND (stat:Deferred* OR stat:deferred)", "window": "30m", "op": "above",
     "threshold": 100,
     "description": "More than 100 deferrals in 30 minutes: the deferred queue is growing."},
    {"name": "mail-sasl-failures", "kind": "count",
     "query": "type:mail AND (_exists_:authMsg OR \"SASL LOGIN authentication failed\")",
     "group_by": "relayip", "window": "10m", "op": "above", "threshold": 10,
     "description": "More than 10 SMTP AUTH (SASL) failures in 10 minutes from one client IP."},
    {"name": "mail-relay-access-rejects", "kind": "count",
     "query": "type:mail AND action:reject AND \"Relay access denied\"", "group_by": "clientip",
     "window": "1h", "op": "above", "threshold": 20,
     "description": "More than 20 'Relay access denied' rejects in an hour from one client IP."},
    {"name": "mail-silent-server", "kind": "silence", "host": "mail1", "host_field": "logsource",
     "window": "15m",
     "description": "No line from mail server mail1 in 15 minutes (copy per server)."},
]


def mail_examples() -> list[Rule]:
    return [parse_rule(raw, source="example") for raw in MAIL_EXAMPLES]
