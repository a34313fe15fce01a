"""``logpipe gen-logs``: realistic sample logs, deterministic for a seed (standard library only).

Kinds:

* ``mail``: a sendmail relay with its milters and an IMAP server, as the 2013 maillog config
  saw it. Each message gets a sendmail queue id (``r4F2abcD012345``: 8 characters from the time
  and a counter, then the 6-digit pid) shared by all its lines: an optional ``NOQUEUE: connect``,
  ``STARTTLS``, the ``from=`` line, milter lines (opendkim, milter-greylist, sendmail's own
  ``Milter``), MailScanner's verdict (one spam score per message, so the milter's
  ``X-Spam-Status`` and MailScanner agree; some spam is refused with ``Milter: data,
  reject=``), then ``to=`` lines: mostly ``stat=Sent``, some ``Deferred``, bounces (``User
  unknown``, ``Host unknown`` with dsn 5.1.2), RCPT rejects (``ruleset=check_rcpt ...
  reject=``) and expiries (a deferral after five days and the ``DSN: Cannot send message for
  5 days`` hand-off to a new queue id); sometimes an input timeout. Dovecot ``imap-login: Login:`` and
  ``imap(user): Disconnected`` lines come in between.
* ``syslog``: cron, kernel, systemd and sshd lines (SYSLOGLINE shapes).
* ``sshd``: OpenSSH authentication lines (accepted, failed, invalid user, disconnects).
* ``apache``: the combined access log.

Timestamps increase from ``start`` (default 2013-05-15 02:00:00 UTC). A few hosts take turns.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

import typer

from logpipe.common.errors import ConfigError

KINDS = ("mail", "syslog", "sshd", "apache")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
          "mallory", "oscar", "peggy", "trent", "victor", "walter")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "univ.example.edu", "gmail.com",
            "yahoo.co.uk", "list.example.io")
_MX = ("mx1.example.org", "mx.example.net", "smtp.example.com", "aspmx.l.google.com",
       "mta5.am0.yahoodns.net", "mail.example.edu")
_CIPHERS = ("DHE-RSA-AES256-SHA", "AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256")
_STATS_DEFER = ("Deferred: Connection refused by {mx}.", "Deferred: 451 4.3.5 Server configuration "
                "problem", "Deferred: Connection timed out with {mx}.")


class _Rand(random.Random):
    """random.Random with cheap pick/rint (the stdlib's choice/randrange are slow)."""

    def pick(self, seq):
        return seq[int(self.random() * len(seq))]

    def rint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a))


class _Clock:
    """Increasing timestamps (epoch seconds), formatted only when the second changes."""

    def __init__(self, rng: _Rand, start: datetime):
        self.rng = rng
        self.now = start.timestamp()
        utcoffset = start.utcoffset()   # None for a naive start
        self.offset = utcoffset.total_seconds() if utcoffset is not None else 0.0
        self._sec: int | None = None     # the second the formatted stamps are for
        self._syslog = ""
        self._http = ""

    @property
    def t(self) -> datetime:
        try:
            return datetime.fromtimestamp(self.now, timezone.utc) + timedelta(seconds=self.offset)
        except (OverflowError, ValueError, OSError):
            raise OverflowError("the timestamps ran past the year 9999") from None

    def tick(self, max_seconds: float = 2.0) -> None:
        self.now += self.rng.random() * max_seconds

    def syslog(self) -> str:
        if int(self.now) != self._sec:
            self._refresh()
        return self._syslog

    def http(self) -> str:
        if int(self.now) != self._sec:
            self._refresh()
        return self._http

    def _refresh(self) -> None:
        self._sec = int(self.now)
        try:
            t = time.gmtime(self._sec + self.offset)
        except (OverflowError, ValueError, OSError):
            raise OverflowError("the timestamps ran past the year 9999") from None
        if t.tm_year > 9999:
            raise OverflowError("the timestamps ran past the year 9999")
        mon = _MONTHS[t.tm_mon - 1]
        hms = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        self._syslog = f"{mon} {t.tm_mday:2d} {hms}"
        self._http = f"{t.tm_mday:02d}/{mon}/{t.tm_year}:{hms} +0000"


def _ip(rng: _Rand) -> str:
    return f"{rng.pick((62, 80, 93, 109, 173, 198, 203, 212))}.{rng.rint(0, 256)}." \
           f"{rng.rint(0, 256)}.{rng.rint(1, 255)}"


def _addr(rng: _Rand) -> str:
    return f"{rng.pick(_USERS)}{rng.rint(0, 100) if rng.random() < 0.3 else ''}@" \
           f"{rng.pick(_DOMAINS)}"


def _mail(rng: _Rand, clock: _Clock) -> Iterator[str]:
    hosts = ("mail1", "mail2", "relay")
    counter = 0
    while True:
        host = rng.pick(hosts)
        pid = rng.rint(1000, 99999)
        t = clock.t
        counter += 1
        qid = (_B62[(t.year - 1900) % 62] + _B62[t.month - 1] + _B62[t.day] + _B62[t.hour]
               + _B62[counter % 62] + _B62[(counter // 62) % 62] + _B62[rng.rint(0, 62)]
               + _B62[rng.rint(0, 62)] + f"{pid:06d}")
        base = f" {host} sendmail[{pid}]: "
        peer_ip = _ip(rng)
        peer = f"{rng.pick(_MX)} [{peer_ip}]" if rng.random() < 0.7 else f"[{peer_ip}]"
        r = rng.random()
        if r < 0.04:   # a connection that never sends anything
            clock.tick()
            yield f"{clock.syslog()}{base}NOQUEUE: connect from {peer}"
            clock.tick(30)
            yield f"{clock.syslog()}{base}{qid}: timeout waiting for input from {peer} " \
                  f"during server cmd read"
            continue
        if r < 0.10:
            clock.tick()
            yield f"{clock.syslog()} {host} dovecot: imap-login: Login: user=<{rng.pick(_USERS)}>, " \
                  f"method=PLAIN, rip={_ip(rng)}, lip=10.0.0.{rng.rint(2, 9)}, " \
                  f"mpid={rng.rint(1000, 65000)}, TLS, session=<{rng.getrandbits(64):016x}>"
            clock.tick()
            status = "Disconnected: Logged out" if rng.random() < 0.8 else "Disconnected for inactivity"
            yield f"{clock.syslog()} {host} dovecot: imap({rng.pick(_USERS)}): {status} " \
                  f"in={rng.rint(20, 5000)} out={rng.rint(300, 900000)}"
            continue
        sender = _addr(rng)
        if rng.random() < 0.3:
            clock.tick()
            yield f"{clock.syslog()}{base}STARTTLS=server, relay={rng.pick(_MX)} [{peer_ip}], " \
                  f"version=TLSv1/SSLv3, " \
                  f"verify=NO, cipher={rng.pick(_CIPHERS)}, bits=256/256"
        clock.tick()
        size = rng.rint(600, 400000)
        nrcpts = 1 if rng.random() < 0.8 else rng.rint(2, 4)
        msgid = f"<{t:%Y%m%d%H%M}.{qid}@{sender.split('@')[1]}>"
        yield f"{clock.syslog()}{base}{qid}: from=<{sender}>, size={size}, class=0, " \
              f"nrcpts={nrcpts}, msgid={msgid}, proto=ESMTP, daemon=MTA, relay={peer}"
        if rng.random() < 0.5:
            clock.tick(0.5)
            yield f"{clock.syslog()} {host} opendkim[{rng.rint(900, 3000)}]: {qid}: " \
                  f"{'DKIM-Signature field added (s=default, d=' + sender.split('@')[1] + ')' if rng.random() < 0.5 else 's=default d=' + sender.split('@')[1] + ' SSL error:04077068'}"
        if rng.random() < 0.3:
            clock.tick(0.5)
            yield f"{clock.syslog()} {host} milter-greylist: {qid}: addr {peer_ip} from " \
                  f"<{sender}> to <{_addr(rng)}> delayed for 00:15:00 (ACL 148)"
        # one spam score per message: the milter's header and MailScanner's verdict agree
        score = round(rng.random() ** 1.6 * 12, 2)
        spam = score >= 5
        if rng.random() < 0.3:
            clock.tick(0.5)
            yield f"{clock.syslog()}{base}{qid}: Milter add: header: X-Spam-Status: " \
                  f"{'Yes' if spam else 'No'}, score={score:.1f}"
        if rng.random() < 0.4:
            clock.tick()
            verdict = "is spam" if spam else "is not spam"
            yield f"{clock.syslog()} {host} MailScanner[{rng.rint(3000, 9000)}]: Message " \
                  f"{qid} from {peer_ip} ({sender}) to {rng.pick(_DOMAINS)} {verdict}, " \
                  f"SpamAssassin (score={score:.2f}, required 5)"
        if spam and rng.random() < 0.4:   # refused at the end of DATA
            clock.tick(0.5)
            yield f"{clock.syslog()}{base}{qid}: Milter: data, reject=550 5.7.1 Spam message " \
                  f"rejected (score={score:.1f})"
            continue
        expired = rng.random() < 0.02
        for _ in range(nrcpts):
            rcpt = _addr(rng)
            clock.tick()
            roll = rng.random()
            if roll < 0.04:
                yield f"{clock.syslog()}{base}{qid}: <{rcpt}>... User unknown"
                continue
            if roll < 0.07:   # refused at RCPT TO: not a relay for that domain
                yield f"{clock.syslog()}{base}{qid}: ruleset=check_rcpt, arg1=<{rcpt}>, " \
                      f"relay={peer}, reject=550 5.7.1 <{rcpt}>... Relaying denied"
                continue
            mx = rng.pick(_MX)
            delay = f"00:{rng.rint(0, 3):02d}:{rng.rint(0, 60):02d}"
            if expired:
                dsn, stat = "4.4.7", rng.pick(_STATS_DEFER).format(mx=mx)
                delay = f"5+00:{rng.rint(0, 60):02d}:{rng.rint(0, 60):02d}"
            elif roll < 0.10:
                dsn, stat = "5.1.2", f"Host unknown (Name server: {rcpt.split('@')[1]}: " \
                                     f"host not found)"
            elif roll < 0.18:
                dsn, stat = "4.0.0", rng.pick(_STATS_DEFER).format(mx=mx)
            else:
                dsn, stat = "2.0.0", f"Sent ({rng.getrandbits(40):010X} " \
                                     f"Message accepted for delivery)"
            yield f"{clock.syslog()}{base}{qid}: to=<{rcpt}>, ctladdr=<{sender}> (1000/1000), " \
                  f"delay={delay}, xdelay={delay}, mailer=esmtp, pri={rng.rint(30000, 400000)}, " \
                  f"relay={mx}. [{_ip(rng)}], dsn={dsn}, stat={stat}"
        if expired:   # the queue lifetime is over: the sender gets a DSN from a new queue id
            clock.tick(0.5)
            dsn_qid = qid[:4] + _B62[rng.rint(0, 62)] + _B62[rng.rint(0, 62)] + qid[6:]
            yield f"{clock.syslog()}{base}{qid}: {dsn_qid}: DSN: Cannot send message for 5 days"


def _syslog(rng: _Rand, clock: _Clock) -> Iterator[str]:
    hosts = ("web1", "web2", "db1", "gateway")
    while True:
        clock.tick()
        host = rng.pick(hosts)
        r = rng.random()
        ts = clock.syslog()
        if r < 0.25:
            user = rng.pick(("root", "www-data", "backup"))
            yield f"{ts} {host} CRON[{rng.rint(1000, 40000)}]: ({user}) CMD " \
                  f"({rng.pick(('run-parts /etc/cron.hourly', '/usr/lib/php/sessionclean', 'test -x /usr/sbin/anacron'))})"
        elif r < 0.45:
            yield f"{ts} {host} kernel: [{rng.random() * 900000:12.6f}] " + rng.pick((
                f"IN=eth0 OUT= MAC=52:54:00:{rng.rint(0, 256):02x}:{rng.rint(0, 256):02x}:01 "
                f"SRC={_ip(rng)} DST=10.0.0.{rng.rint(2, 9)} LEN=40 PROTO=TCP SPT="
                f"{rng.rint(1024, 65535)} DPT={rng.pick((22, 23, 3389, 445))}",
                f"TCP: request_sock_TCP: Possible SYN flooding on port {rng.pick((80, 443))}.",
                f"EXT4-fs (sda{rng.rint(1, 4)}): mounted filesystem with ordered data mode"))
        elif r < 0.7:
            unit = rng.pick(("nginx.service", "postgresql.service", "logrotate.service",
                               "apt-daily.service"))
            yield f"{ts} {host} systemd[1]: " + rng.pick((f"Started {unit}.",
                                                           f"Stopping {unit}...",
                                                           f"{unit}: Succeeded."))
        else:
            yield f"{ts} {host} {_sshd_text(rng)}"


def _sshd_text(rng: _Rand) -> str:
    pid = rng.rint(1000, 60000)
    ip = _ip(rng)
    port = rng.rint(1024, 65535)
    user = rng.pick(_USERS + ("root", "admin", "oracle", "test"))
    r = rng.random()
    if r < 0.2:
        method = rng.pick(("password", "publickey"))
        extra = f": RSA SHA256:{rng.getrandbits(172):043x}" \
            if method == "publickey" else ""
        text = f"Accepted {method} for {user} from {ip} port {port} ssh2{extra}"
    elif r < 0.5:
        inv = "invalid user " if rng.random() < 0.4 else ""
        text = f"Failed password for {inv}{user} from {ip} port {port} ssh2"
    elif r < 0.65:
        text = f"Invalid user {user} from {ip} port {port}"
    elif r < 0.8:
        text = f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"
    elif r < 0.9:
        text = f"Connection closed by {ip} port {port} [preauth]"
    else:
        text = f"pam_unix(sshd:session): session opened for user {user} by (uid=0)"
    return f"sshd[{pid}]: {text}"


def _sshd(rng: _Rand, clock: _Clock) -> Iterator[str]:
    hosts = ("bastion", "web1", "db1")
    while True:
        clock.tick()
        yield f"{clock.syslog()} {rng.pick(hosts)} {_sshd_text(rng)}"


_PATHS = ("/", "/index.html", "/about", "/blog/2013/05/centralized-logging", "/static/app.css",
          "/static/app.js", "/images/logo.png", "/api/v1/items?page={n}", "/search?q=logstash+grok",
          "/wp-login.php", "/favicon.ico", "/feed.xml")
_AGENTS = ("Mozilla/5.0 (Windows NT 6.1; WOW64; rv:21.0) Gecko/20100101 Firefox/21.0",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_8_3) AppleWebKit/536.29.13 (KHTML, like Gecko) Version/6.0.4 Safari/536.29.13",
           "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
           "curl/7.29.0", "-")
_REFERRERS = ("-", "http://www.example.com/", "https://www.google.com/search?q=logpipe",
              "http://news.example.org/item?id=5821")


def _apache(rng: _Rand, clock: _Clock) -> Iterator[str]:
    while True:
        clock.tick(0.5)
        path = rng.pick(_PATHS).format(n=rng.rint(1, 50))
        verb = "GET" if rng.random() < 0.9 else rng.pick(("POST", "HEAD"))
        status = _STATUS[rng.rint(0, 100)]
        size = "-" if status == 304 else str(rng.rint(200, 90000))
        auth = "-" if rng.random() < 0.95 else rng.pick(_USERS)
        yield f'{_ip(rng)} - {auth} [{clock.http()}] "{verb} {path} HTTP/1.1" {status} {size} ' \
              f'"{rng.pick(_REFERRERS)}" "{rng.pick(_AGENTS)}"'


_STATUS = (200,) * 80 + (304,) * 8 + (404,) * 7 + (301,) * 3 + (500,) * 2
_KINDS = {"mail": _mail, "syslog": _syslog, "sshd": _sshd, "apache": _apache}


def write_lines(lines: Iterable[str], out) -> None:
    """Write lines with their newlines, a few thousand per write() call."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 4096:
            out.write("\n".join(chunk) + "\n")
            chunk.clear()
    if chunk:
        out.write("\n".join(chunk) + "\n")


def generate(kind: str, lines: int, seed: int = 0, start: datetime | str | None = None
             ) -> Iterator[str]:
    """``lines`` log lines of ``kind`` (no trailing newline), the same for the same seed."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r} (use one of {', '.join(KINDS)})")
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if start is None:
        start = datetime(2013, 5, 15, 2, 0, 0, tzinfo=timezone.utc)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    rng = _Rand(seed)
    source = _KINDS[kind](rng, _Clock(rng, start))
    for _ in range(lines):
        yield next(source)


app = typer.Typer(add_completion=False)


@app.command()
def gen_logs(
    kind: str = typer.Option("mail", "--kind", help="mail, syslog, sshd or apache."),
    lines: int = typer.Option(1000, "--lines", "-n", help="How many lines."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same lines."),
    start: str = typer.Option(None, "--start", help="First timestamp (ISO 8601)."),
    output: str = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Write realistic sample logs (mail, syslog, sshd, apache)."""
    if kind not in _KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r} (use one of {', '.join(KINDS)})",
                                 param_hint="--kind")
    if lines < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--lines")
    try:
        when = datetime.fromisoformat(start) if start else None
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date: {start!r}", param_hint="--start") from None
    try:
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        raise ConfigError(f"cannot write the generated log: {exc.strerror}", output) from None
    try:
        write_lines(generate(kind, lines, seed, when), out)
    except OverflowError:  # the clock ran past the year 9999
        raise ConfigError(f"--start {start}: {lines} lines from there run past the year 9999; "
                          "pick an earlier --start") from None
    finally:
        if output:
            out.close()
