"""The alerts' state, shared by the evaluator process and the web page: one SQLite file
(``$LOGPIPE_HOME/alerts.db``, 0600 in the 0700 state directory).

* ``rules``: rules added on the page (the rules file's are read from the file each pass);
* ``incidents``: per rule and key (``""``, or the group's value), whether it fires, since when,
  the value seen, and who acknowledged it: a rule firing pass after pass is one incident, one
  notice (deduplicated); its end is one resolve notice;
* ``mutes``: a rule muted until a time: still evaluated and recorded, not delivered;
* ``history``: every firing, resolve, delivery, acknowledge, mute and rule edit, newest first.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from logpipe.common.config import home
from logpipe.common.private import private_dir, private_umask
from logpipe.search.alerts.rules import Rule, parse_rule

FILE = "alerts.db"
HISTORY_KEEP = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated REAL NOT NULL,
                                  who TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS incidents (rule TEXT NOT NULL, key TEXT NOT NULL, firing INTEGER NOT NULL,
                                      since REAL NOT NULL, value REAL, message TEXT NOT NULL,
                                      acked_by TEXT, acked_at REAL, PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS mutes (rule TEXT PRIMARY KEY, until REAL NOT NULL, who TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
                                    rule TEXT NOT NULL, key TEXT NOT NULL, event TEXT NOT NULL,
                                    detail TEXT NOT NULL DEFAULT '');
"""


@dataclass(frozen=True)
class Notice:
    """A change worth telling: an incident started firing, or resolved."""
    rule: str
    key: str
    state: str            # "firing" | "resolved"
    at: float
    value: float | None
    message: str
    condition: str
    muted: bool = False

    def to_dict(self) -> dict:
        return {"rule": self.rule, "key": self.key, "state": self.state, "at": self.at,
                "value": self.value, "message": self.message, "condition": self.condition}


ENV_DB = "LOGPIPE_ALERTS_DB"


def default_path() -> Path:
    """``LOGPIPE_ALERTS_DB``, else ``$LOGPIPE_HOME/alerts.db`` (the page and the evaluator must
    name the same file: under systemd, the alerts unit's state directory)."""
    import os

    return Path(os.environ.get(ENV_DB) or home() / FILE)


class AlertBook:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        with private_umask():
            private_dir(self.path.parent)
            self.db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _log(self, at: float, rule: str, key: str, event: str, detail: str = "") -> None:
        self.db.execute("INSERT INTO history (at, rule, key, event, detail) VALUES (?,?,?,?,?)",
                        (at, rule, key, event, detail))

    # ------------------------------------------------------------------ rules from the page
    def page_rules(self) -> list[Rule]:
        rows = self.db.execute("SELECT body FROM rules ORDER BY name").fetchall()
        return [parse_rule(orjson.loads(body), source="page") for (body,) in rows]

    def save_rule(self, raw: dict, who: str, now: float | None = None) -> Rule:
        rule = parse_rule(raw, source="page")
        now = time.time() if now is None else now
        body = {k: v for k, v in rule.to_dict().items() if k != "source"}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO rules VALUES (?,?,?,?)",
                            (rule.name, orjson.dumps(body).decode(), now, who))
            self._log(now, rule.name, "", "rule_saved", f"by {who}: {rule.condition()}")
        return rule

    def delete_rule(self, name: str, who: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            gone = self.db.execute("DELETE FROM rules WHERE name = ?", (name,)).rowcount
            if gone:
                self.db.execute("DELETE FROM incidents WHERE rule = ?", (name,))
                self._log(now, name, "", "rule_deleted", f"by {who}")
        return bool(gone)

    # ------------------------------------------------------------------ evaluation results
    def apply(self, rule: Rule, breaches: dict[str, tuple[float | None, str]], now: float
              ) -> list[Notice]:
        """Record one evaluation of ``rule``: ``breaches`` maps each key whose condition holds
        now to (value, message). Returns the notices: keys that started firing, and firing keys
        no longer in ``breaches`` (resolved). A key firing before and now is no notice."""
        muted = self.muted_until(rule.name, now) is not None
        notices = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            firing = {key: message for key, message in self.db.execute(
                "SELECT key, message FROM incidents WHERE rule = ? AND firing = 1", (rule.name,))}
            for key, (value, message) in breaches.items():
                if key in firing:
                    self.db.execute("UPDATE incidents SET value = ? WHERE rule = ? AND key = ?",
                                    (value, rule.name, key))
                    continue
                self.db.execute("INSERT OR REPLACE INTO incidents VALUES (?,?,1,?,?,?,NULL,NULL)",
                                (rule.name, key, now, value, message))
                self._log(now, rule.name, key, "firing", message)
                notices.append(Notice(rule.name, key, "firing", now, value, message,
                                      rule.condition(), muted))
            for key in set(firing) - set(breaches):
                message = f"resolved: {rule.condition()} no longer holds"
                self.db.execute("UPDATE incidents SET firing = 0, since = ?, message = ?, "
                                "acked_by = NULL, acked_at = NULL WHERE rule = ? AND key = ?",
                                (now, message, rule.name, key))
                self._log(now, rule.name, key, "resolved", firing[key])
                notices.append(Notice(rule.name, key, "resolved", now, None, message,
                                      rule.condition(), muted))
        return notices

    def delivered(self, notice: Notice, channel: str, error: str | None, now: float) -> None:
        event = "delivered" if error is None else "delivery_failed"
        detail = f"{channel} ({notice.state})" + (f": {error}" if error else "")
        with self.db:
            self._log(now, notice.rule, notice.key, event, detail)

    def forget_rules_except(self, names: set[str]) -> None:
        """Incidents of rules that no longer exist (removed from the file) are dropped."""
        rows = self.db.execute("SELECT DISTINCT rule FROM incidents").fetchall()
        with self.db:
            for (rule,) in rows:
                if rule not in names:
                    self.db.execute("DELETE FROM incidents WHERE rule = ?", (rule,))

    # ------------------------------------------------------------------ mute, acknowledge
    def muted_until(self, rule: str, now: float) -> float | None:
        row = self.db.execute("SELECT until FROM mutes WHERE rule = ?", (rule,)).fetchone()
        return row[0] if row and row[0] > now else None

    def mute(self, rule: str, seconds: float, who: str, now: float | None = None) -> float:
        now = time.time() if now is None else now
        until = now + seconds
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if seconds <= 0:
                self.db.execute("DELETE FROM mutes WHERE rule = ?", (rule,))
                self._log(now, rule, "", "unmuted", f"by {who}")
            else:
                self.db.execute("INSERT OR REPLACE INTO mutes VALUES (?,?,?)", (rule, until, who))
                self._log(now, rule, "", "muted", f"by {who} for {int(seconds)} s")
        return until

    def acknowledge(self, rule: str, key: str, who: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            done = self.db.execute("UPDATE incidents SET acked_by = ?, acked_at = ? WHERE rule = ? "
                                   "AND key = ? AND firing = 1", (who, now, rule, key)).rowcount
            if done:
                self._log(now, rule, key, "acknowledged", f"by {who}")
        return bool(done)

    # ------------------------------------------------------------------ reading
    def incidents(self) -> list[dict]:
        rows = self.db.execute("SELECT rule, key, firing, since, value, message, acked_by, acked_at "
                               "FROM incidents ORDER BY firing DESC, since DESC").fetchall()
        names = ("rule", "key", "firing", "since", "value", "message", "acked_by", "acked_at")
        return [dict(zip(names, r)) | {"firing": bool(r[2])} for r in rows]

    def mutes(self, now: float) -> dict[str, dict]:
        return {r: {"until": u, "who": w} for r, u, w in
                self.db.execute("SELECT rule, until, who FROM mutes WHERE until > ?", (now,))}

    def history(self, limit: int = 200, rule: str | None = None) -> list[dict]:
        sql = "SELECT at, rule, key, event, detail FROM history"
        args: list = []
        if rule:
            sql += " WHERE rule = ?"
            args.append(rule)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [dict(zip(("at", "rule", "key", "event", "detail"), r)) for r in rows]

    def trim(self) -> None:
        with self.db:
            self.db.execute("DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?",
                            (HISTORY_KEEP,))
