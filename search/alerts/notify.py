"""Delivering notices: mail (SMTP with STARTTLS or TLS and AUTH, the password from a 0600 file)
and webhook (a JSON POST signed with a shared secret).

Webhook signature: ``X-Logpipe-Timestamp: <unix seconds>`` and ``X-Logpipe-Signature:
sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``; a receiver recomputes it over the raw
body, compares in constant time, and refuses old timestamps (replays).

No secret ever appears in an error: the messages name the server, the file and the fix.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import orjson

from logpipe.common.errors import ConfigError, LogpipeError
from logpipe.common.listen import is_loopback
from logpipe.common.private import read_secret
from logpipe.search.alerts.book import Notice
from logpipe.search.alerts.config import MailSettings, WebhookSettings

SIGNATURE_HEADER = "X-Logpipe-Signature"
TIMESTAMP_HEADER = "X-Logpipe-Timestamp"


class DeliveryError(LogpipeError):
    """A notice that could not be delivered; the message says where and what to check."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def read_credentials(path: str) -> tuple[str, str]:
    """``username = ...`` and ``password = ...`` lines (quotes optional) of a 0600 file."""
    text = read_secret(path, "SMTP credentials file")
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    if not values.get("username") or not values.get("password"):
        raise ConfigError("the SMTP credentials file needs two lines: username = NAME and "
                          "password = SECRET", path)
    return values["username"], values["password"]


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def mail_message(notice: Notice, settings: MailSettings, page_url: str = "") -> EmailMessage:
    state = "FIRING" if notice.state == "firing" else "RESOLVED"
    key = f" [{notice.key}]" if notice.key else ""
    msg = EmailMessage()
    msg["Subject"] = f"[logpipe] {state}: {notice.rule}{key}"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Date"] = formatdate(notice.at)
    msg["Message-ID"] = make_msgid("logpipe-alert")
    msg["X-Logpipe-Alert"] = f"{notice.rule}; key={notice.key}; state={notice.state}"
    lines = [f"{state}: {notice.rule}{key}", "", notice.message, "",
             f"rule:  {notice.condition}", f"since: {_when(notice.at)}"]
    if page_url:
        lines.append(f"page:  {page_url}")
    lines += ["", "Acknowledge or mute it on the page's Alerts view; a firing alert is "
              "mailed once, and once more when it resolves."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class MailChannel:
    name = "mail"

    def __init__(self, settings: MailSettings, page_url: str = ""):
        self.settings = settings
        self.page_url = page_url
        self.credentials = read_credentials(settings.credentials_file) \
            if settings.credentials_file else None
        if self.credentials and settings.security == "none" and not is_loopback(settings.host):
            raise ConfigError(f"[mail] security = 'none' would send the SMTP password to "
                              f"{settings.host} in clear text: use starttls or tls")

    def send(self, notice: Notice) -> None:
        s = self.settings
        where = f"the SMTP server {s.host}:{s.port}"
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      context=_tls_context(s.ca_file))
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.security == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(f"{where} does not offer STARTTLS: set "
                                            "security = 'tls' (port 465) or fix the server")
                    smtp.starttls(context=_tls_context(s.ca_file))
                    smtp.ehlo()
                if self.credentials:
                    smtp.login(*self.credentials)
                smtp.send_message(mail_message(notice, s, self.page_url))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where} refused the login ({exc.smtp_code}): check the "
                                f"username and password in {s.credentials_file}") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(f"{where} offers no AUTH on this connection: use starttls or "
                                "tls, or remove credentials_file") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where} refused the recipients {', '.join(exc.recipients)}: "
                                "check [mail] to") from None
        except smtplib.SMTPResponseException as exc:
            said = exc.smtp_error
            text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            raise DeliveryError(f"{where} answered {exc.smtp_code}: {text[:200]}") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"{where}: its certificate is not trusted ({exc.verify_message}); "
                                "set [mail] ca_file to the CA that signed it") from None
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise DeliveryError(f"cannot deliver mail through {where}: {exc}") from None


class WebhookChannel:
    name = "webhook"

    def __init__(self, settings: WebhookSettings, page_url: str = "",
                 clock=time.time):
        self.settings = settings
        self.page_url = page_url
        self.clock = clock
        self.secret = read_secret(settings.secret_file, "webhook secret file").encode() \
            if settings.secret_file else b""

    def body(self, notice: Notice) -> bytes:
        return orjson.dumps({**notice.to_dict(), "page": self.page_url or None,
                             "source": "logpipe"})

    def send(self, notice: Notice) -> None:
        s = self.settings
        body = self.body(notice)
        stamp = str(int(self.clock()))
        request = urllib.request.Request(s.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "logpipe-alerts",
            TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(self.secret, stamp, body)})
        context = _tls_context(s.ca_file) if s.url.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, timeout=s.timeout, context=context) as answer:
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"the webhook {s.url} answered HTTP {exc.code}"
                                + (" (a wrong signature? check both ends use the same secret)"
                                   if exc.code in (401, 403) else "")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"cannot reach the webhook {s.url}: {reason}") from None


def channels(config, page_url: str = "") -> list:
    out: list = []
    if config.mail:
        out.append(MailChannel(config.mail, page_url))
    if config.webhook:
        out.append(WebhookChannel(config.webhook, page_url))
    return out
