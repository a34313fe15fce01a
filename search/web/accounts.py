"""Accounts and roles of the web page.

* Roles, each with everything of the one before: ``viewer`` (search, trace, export, read the
  dead letters, health and alerts), ``operator`` (+ dead-letter replay and purge, alert rules,
  acknowledge, mute), ``admin`` (+ accounts and the audit log). The access token ``logpipe ui``
  prints (or keeps in ``--token-file``) is the admin's.
* Accounts live in ``$LOGPIPE_HOME/accounts.db`` (SQLite, 0600 in a 0700 directory;
  ``LOGPIPE_ACCOUNTS_DB`` names another). ``logpipe ui user add NAME --role viewer`` makes one and
  a one-time sign-in link: a random token (256 bits) of which only the SHA-256 is stored, good
  once, until it expires (default 24 h).
* A password is optional (set on the page after the link, or by ``logpipe ui user passwd``), kept
  as scrypt (n=2**14, r=8, p=1, a 16-byte salt: memory-hard, 16 MB per try), compared in
  constant time.
* A session of an account names it and the account's ``generation``: removing the account,
  changing its role or password, or a new link bumps nothing of other accounts and revokes that
  account's sessions (the role is read from the store on every request, so a role change
  applies at once).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from logpipe.common.errors import ConfigError, LogpipeError

ROLES = ("viewer", "operator", "admin")
ENV_DB = "LOGPIPE_ACCOUNTS_DB"
FILE = "accounts.db"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LINK_HOURS = 24.0
PASSWORD_MIN = 10
PASSWORD_MAX = 1024
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT, created REAL NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS links (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, expires REAL NOT NULL, used REAL);
"""


class AccountError(LogpipeError):
    """A request about accounts that cannot be done as asked (the message says what to do)."""


class SignInError(LogpipeError):
    """A sign-in refused: the message is shown to the person signing in, and says no more than
    that the name, password or link did not do."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise AccountError(f"account name {str(name)[:40]!r}: use 1 to 32 lower-case letters, "
                           "digits, '-' or '_', starting with a letter or digit")
    return name


def role_at_least(role: str | None, wanted: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(wanted)


# ---------------------------------------------------------------------- password hashing
def hash_password(password: str, salt: bytes | None = None, **params) -> str:
    """``scrypt$n$r$p$salt-hex$hash-hex``."""
    cost = {**SCRYPT, **params}
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=cost["n"], r=cost["r"],
                            p=cost["p"], maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${cost['n']}${cost['r']}${cost['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored`` (constant-time comparison of the digests)."""
    if not stored:
        return False
    try:
        kind, n, r, p, salt, want = stored.split("$")
        if kind != "scrypt":
            return False
        got = hash_password(password, bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(got.rsplit("$", 1)[1].encode(), want.encode())


# a name that is no account still costs a hash, so timing does not tell which names exist
_DUMMY = hash_password("no such account", b"\0" * 16)


def check_password_text(password: str) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    has_password: bool
    created: float
    generation: int


def default_path() -> Path:
    from logpipe.common.config import home

    return Path(os.environ.get(ENV_DB) or home() / FILE)


class AccountStore:
    """The accounts file. Thread-safe (one connection, one lock); every clock is injectable."""

    def __init__(self, path: str | os.PathLike | None = None,
                 clock: Callable[[], float] = time.time):
        from logpipe.common.private import check_private, private_dir, private_umask

        self.path = Path(path) if path else default_path()
        self.clock = clock
        self._lock = threading.Lock()
        with private_umask():
            private_dir(self.path.parent)
            self.db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False,
                                      isolation_level=None)
            self.db.executescript(SCHEMA)
        check_private(self.path, "accounts file")

    def close(self) -> None:
        self.db.close()

    def _row(self, name: str):
        return self.db.execute("SELECT name, role, password IS NOT NULL, created, generation "
                               "FROM accounts WHERE name = ?", (name,)).fetchone()

    def get(self, name: str) -> Account | None:
        with self._lock:
            row = self._row(name)
        return Account(row[0], row[1], bool(row[2]), row[3], row[4]) if row else None

    def list(self) -> list[Account]:
        with self._lock:
            rows = self.db.execute("SELECT name, role, password IS NOT NULL, created, generation "
                                   "FROM accounts ORDER BY name").fetchall()
        return [Account(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def add(self, name: str, role: str, link_hours: float = LINK_HOURS) -> str:
        """A new account; returns its one-time sign-in token."""
        check_name(name), check_role(role)
        with self._lock:
            if self._row(name):
                raise AccountError(f"there is already an account {name!r}: `logpipe ui user "
                                   f"link {name}` makes a new sign-in link")
            self.db.execute("INSERT INTO accounts (name, role, created) VALUES (?,?,?)",
                            (name, role, self.clock()))
        return self.new_link(name, link_hours)

    def new_link(self, name: str, link_hours: float = LINK_HOURS) -> str:
        """A new one-time sign-in token for ``name`` (its earlier unused links stop working)."""
        if not link_hours > 0:
            raise AccountError(f"--hours {link_hours}: give a number of hours above 0")
        token = secrets.token_urlsafe(32)
        with self._lock:
            if not self._row(name):
                raise AccountError(f"no account {name!r} (`logpipe ui user list` shows them)")
            self.db.execute("DELETE FROM links WHERE name = ?", (name,))
            self.db.execute("INSERT INTO links (digest, name, expires) VALUES (?,?,?)",
                            (link_digest(token), name, self.clock() + link_hours * 3600))
        return token

    def remove(self, name: str) -> None:
        with self._lock:
            if not self._row(name):
                raise AccountError(f"no account {name!r} (`logpipe ui user list` shows them)")
            self.db.execute("DELETE FROM links WHERE name = ?", (name,))
            self.db.execute("DELETE FROM accounts WHERE name = ?", (name,))

    def set_role(self, name: str, role: str) -> None:
        check_role(role)
        with self._lock:
            if not self._row(name):
                raise AccountError(f"no account {name!r} (`logpipe ui user list` shows them)")
            self.db.execute("UPDATE accounts SET role = ?, generation = generation + 1 "
                            "WHERE name = ?", (role, name))

    def set_password(self, name: str, password: str) -> None:
        """Set (or replace) the password; the account's other sessions are revoked."""
        check_password_text(password)
        stored = hash_password(password)
        with self._lock:
            if not self._row(name):
                raise AccountError(f"no account {name!r} (`logpipe ui user list` shows them)")
            self.db.execute("UPDATE accounts SET password = ?, generation = generation + 1 "
                            "WHERE name = ?", (stored, name))

    def redeem(self, token: str) -> Account:
        """The account a one-time link signs in; the link is spent (atomically: two uses at
        once, one wins)."""
        digest = link_digest(token or "")
        now = self.clock()
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT name, expires, used FROM links WHERE digest = ?",
                                      (digest,)).fetchone()
                if row and row[2] is None and now < row[1]:
                    self.db.execute("UPDATE links SET used = ? WHERE digest = ?", (now, digest))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        if not row:
            raise SignInError("this sign-in link is not known (mistyped, or replaced by a newer "
                              "one): ask an admin for a new one (logpipe ui user link NAME)")
        if row[2] is not None:
            raise SignInError("this sign-in link was already used: links work once; sign in "
                              "with your password, or ask an admin for a new link")
        if now >= row[1]:
            raise SignInError("this sign-in link expired: ask an admin for a new one "
                              "(logpipe ui user link NAME)")
        account = self.get(row[0])
        if account is None:
            raise SignInError("the account of this link was removed")
        return account

    def authenticate(self, name: str, password: str) -> Account:
        account = self.get(name) if isinstance(name, str) and NAME_RE.match(name or "") else None
        with self._lock:
            row = self.db.execute("SELECT password FROM accounts WHERE name = ?",
                                  (name,)).fetchone() if account else None
        stored = row[0] if row else None
        ok = verify_password(password or "", stored or _DUMMY) and stored is not None
        if not (ok and account):
            raise SignInError("wrong name or password (an account without a password signs in "
                              "by its one-time link)")
        return account


def open_store(path: str | os.PathLike | None = None) -> AccountStore:
    try:
        return AccountStore(path)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the accounts file: {exc}",
                          str(path or default_path())) from None
