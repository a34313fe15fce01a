"""The rules file (``--rules FILE``, ``LOGPIPE_ALERTS_FILE``, else ``$LOGPIPE_HOME/alerts.toml``):
how often to evaluate, the channels, and the rules. It holds no secret: the SMTP password and the
webhook secret live in their own 0600 files, named here or by ``LOGPIPE_SMTP_AUTH_FILE`` /
``LOGPIPE_WEBHOOK_SECRET_FILE`` (systemd hands them over with ``LoadCredential=``)::

    [evaluate]
    every = "1m"
    examples = true                 # the built-in mail examples (rules named mail-*)
    page_url = "http://127.0.0.1:5601/alerts"

    [mail]
    host = "smtp.example.org"
    port = 587
    security = "starttls"           # starttls (default) | tls | none (loopback only)
    ca_file = "/etc/logpipe/smtp-ca.pem"   # optional: a private CA
    from = "logpipe@example.org"
    to = ["postmaster@example.org"]
    credentials_file = "/etc/logpipe/credentials/smtp.auth"   # username = ..., password = ...

    [webhook]
    url = "https://hooks.example.org/logpipe"
    secret_file = "/etc/logpipe/credentials/webhook.secret"

    [[rules]]
    name = "bounces"
    kind = "count"
    query = "dsn:5*"
    window = "15m"
    op = "above"
    threshold = 50
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from logpipe.common.config import home
from logpipe.common.errors import ConfigError
from logpipe.query.datemath import parse_interval
from logpipe.common.errors import QueryError
from logpipe.search.alerts.rules import Rule, RuleError, mail_examples, parse_rule

ENV_FILE = "LOGPIPE_ALERTS_FILE"
ENV_SMTP_AUTH = "LOGPIPE_SMTP_AUTH_FILE"
ENV_WEBHOOK_SECRET = "LOGPIPE_WEBHOOK_SECRET_FILE"
FILE = "alerts.toml"


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    security: str = "starttls"
    ca_file: str | None = None
    credentials_file: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret_file: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class AlertsConfig:
    path: Path | None
    every_s: float = 60.0
    page_url: str = ""
    rules: list[Rule] = field(default_factory=list)
    mail: MailSettings | None = None
    webhook: WebhookSettings | None = None


def rules_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(ENV_FILE) or home() / FILE)


def load_config(explicit: str | None = None) -> AlertsConfig:
    """The rules file; a missing default file is an empty configuration (the page's rules and
    the history still work), a missing named file or a wrong setting a ConfigError."""
    path = rules_path(explicit)
    if not path.exists():
        if explicit or os.environ.get(ENV_FILE):
            raise ConfigError(f"the alerts rules file {path} does not exist", str(path))
        return AlertsConfig(path=None, rules=[])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the alerts rules file: {exc}", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the alerts rules file is not valid TOML: {exc}", str(path)) from None
    return parse_config(data, path)


def parse_config(data: dict, path: Path | None = None) -> AlertsConfig:
    where = str(path) if path else None
    unknown = sorted(set(data) - {"evaluate", "mail", "webhook", "rules"})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)} (known: evaluate, mail, "
                          "webhook, rules)", where)
    evaluate = data.get("evaluate", {})
    try:
        every_s = parse_interval(str(evaluate.get("every", "1m"))) / 1000
    except QueryError as exc:
        raise ConfigError(f"[evaluate] every: {exc}", where) from None
    rules: list[Rule] = mail_examples() if evaluate.get("examples") else []
    try:
        rules += [parse_rule(raw) for raw in data.get("rules", [])]
    except RuleError as exc:
        raise RuleError(str(exc), where) from None
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"two rules are named {rule.name!r}: names must be unique", where)
        seen.add(rule.name)
    return AlertsConfig(path=path, every_s=every_s, page_url=str(evaluate.get("page_url", "")),
                        rules=rules, mail=_mail(data.get("mail"), where),
                        webhook=_webhook(data.get("webhook"), where))


def _mail(raw: dict | None, where: str | None) -> MailSettings | None:
    if not raw:
        return None
    for key in ("host", "from", "to"):
        if not raw.get(key):
            raise ConfigError(f"[mail] needs {key} (host, from, to; port, security, "
                              "credentials_file optional)", where)
    security = str(raw.get("security", "starttls"))
    if security not in ("starttls", "tls", "none"):
        raise ConfigError(f"[mail] security must be starttls, tls or none, not {security!r}",
                          where)
    to = raw["to"] if isinstance(raw["to"], list) else [raw["to"]]
    default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
    creds = os.environ.get(ENV_SMTP_AUTH) or raw.get("credentials_file")
    return MailSettings(host=str(raw["host"]), port=int(raw.get("port", default_port)),
                        sender=str(raw["from"]), to=tuple(map(str, to)), security=security,
                        ca_file=raw.get("ca_file"), credentials_file=creds,
                        timeout=float(raw.get("timeout", 30)))


def _webhook(raw: dict | None, where: str | None) -> WebhookSettings | None:
    if not raw:
        return None
    url = str(raw.get("url", ""))
    if not url.startswith(("http://", "https://")):
        raise ConfigError("[webhook] url must be an http:// or https:// address", where)
    if "@" in url.split("/")[2]:
        raise ConfigError("[webhook] url must not hold credentials: the shared secret goes in "
                          "secret_file (0600)", where)
    secret = os.environ.get(ENV_WEBHOOK_SECRET) or raw.get("secret_file")
    if not secret:
        raise ConfigError("[webhook] needs secret_file (0600): every request is signed with "
                          "it (X-Logpipe-Signature: sha256=HMAC)", where)
    return WebhookSettings(url=url, secret_file=secret, ca_file=raw.get("ca_file"),
                           timeout=float(raw.get("timeout", 30)))
