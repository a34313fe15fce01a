"""Least privilege on the broker: the Redis ACL users logpipe's two sides connect as.

``logpipe-shipper`` may only append to the raw list, read its length, and write its own figures
into the shippers' status hash; it cannot read records, jobs or dead letters, delete keys or run
admin commands. ``logpipe-indexer`` gets what the dispatcher, the RQ workers, replay and stats
use, on logpipe's and RQ's keys only, and no admin or dangerous command. It cannot list the key
names of other applications on the broker either (SCAN and RANDOMKEY are keyspace-wide: key
patterns do not restrict them, so they are refused; nothing logpipe or RQ runs uses them), nor run
Lua of its own (EVAL, EVALSHA, SCRIPT, FUNCTION refused): it calls logpipe's function library with
FCALL, which the admin loads here (:mod:`common.broker.functions`).

The rules are built from :class:`common.broker.Keys`, so a different prefix or raw list name
gets matching rules. ``setup_users`` creates or updates both users with fresh passwords (it is
also how a password is rotated), loads the function library and returns one broker URL per user.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from logpipe.common.broker.connection import redact
from logpipe.common.broker.functions import load_library
from logpipe.common.broker.keys import Keys
from logpipe.common.errors import BrokerError
from logpipe.common.private import private_dir, write_private

SHIPPER_USER = "logpipe-shipper"
INDEXER_USER = "logpipe-indexer"
ROLES = {"shipper": SHIPPER_USER, "indexer": INDEXER_USER}

# What every client library sends on connect (redis-py: CLIENT SETINFO; health checks: PING).
_CONNECT = ["+ping", "+hello", "+client|setinfo", "+client|setname", "+client|getname",
            "+client|id", "+select"]

# Denied to the indexer even though no category rule would grant them back: admin, whole-database
# and server-state commands. (``-@admin -@dangerous -@scripting`` already removes most; these are
# named so the rule reads as the list of what must never happen.) SCAN, KEYS and RANDOMKEY list
# key names beyond the user's key patterns; EVAL & co. run any Lua (a loop stalls the server).
FORBIDDEN = ["flushall", "flushdb", "config", "acl", "shutdown", "debug", "monitor", "module",
             "replicaof", "slaveof", "save", "bgsave", "bgrewriteaof", "failover", "swapdb",
             "migrate", "sync", "psync", "keys", "scan", "randomkey", "eval", "eval_ro",
             "evalsha", "evalsha_ro", "script", "function", "client|kill", "client|pause",
             "client|list", "cluster", "restore", "latency", "slowlog", "lastsave"]


def shipper_rules(keys: Keys) -> list[str]:
    shippers_status = keys.stats("shippers")
    return ["resetkeys", "resetchannels", "-@all", *_CONNECT,
            f"~{keys.raw}", "+rpush", "+llen",
            # on a replicated broker a push is confirmed only after WAIT says a replica has it;
            # INFO tells how many replicas are connected (it shows server figures, no records)
            "+wait", "+info",
            # its own figures for `logpipe stats`: write-only on one hash, nothing else
            f"(%W~{shippers_status} +hset)"]


def indexer_rules(keys: Keys) -> list[str]:
    patterns = {f"~{keys.prefix}:*", f"~{keys.raw}", "~rq:*"}
    return ["resetkeys", "resetchannels", *sorted(patterns), "&rq:*",
            "+@all", "-@admin", "-@dangerous", "-@scripting",
            "+fcall", "+fcall_ro",  # logpipe's function library, loaded by the admin
            "+info",  # RQ reads the server version
            *_CONNECT, *(f"-{cmd}" for cmd in FORBIDDEN)]


def _rules_for(role: str, keys: Keys) -> list[str]:
    return shipper_rules(keys) if role == "shipper" else indexer_rules(keys)


def _set_user(admin_client, user: str, password: str, rules: list[str]) -> None:
    """ACL SETUSER, leaving out commands this server does not have (CLIENT SETINFO is Redis
    7.2+): a server refuses a whole rule set that names an unknown command."""
    rules = list(rules)
    while True:
        try:
            admin_client.execute_command("ACL", "SETUSER", user, "reset", "on", "resetpass",
                                         f">{password}", *rules)
            return
        except Exception as exc:  # noqa: BLE001
            text = str(exc)
            unknown = [r for r in rules if f"modifier '{r}'" in text and "Unknown command" in text]
            if not unknown:
                raise
            rules.remove(unknown[0])


def url_for_user(admin_url: str, user: str, password: str) -> str:
    """The admin URL with its credentials replaced by ``user``'s (host, db, TLS options kept)."""
    parts = urlsplit(admin_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def setup_users(admin_client, admin_url: str, keys: Keys | None = None,
                roles: tuple[str, ...] = ("shipper", "indexer")) -> dict[str, str]:
    """Create or update the users with fresh passwords; returns role -> broker URL.

    The old passwords stop working at once (``resetpass``); connections already open stay
    authenticated until they reconnect. The function library the indexer calls is loaded (or
    replaced by this version's) first."""
    keys = keys or Keys()
    load_library(admin_client)
    urls = {}
    for role in roles:
        user, password = ROLES[role], secrets.token_hex(24)
        try:
            _set_user(admin_client, user, password, _rules_for(role, keys))
        except Exception as exc:  # noqa: BLE001 - classified into one message
            raise BrokerError(f"cannot set up the ACL user {user} on {redact(admin_url)}: {exc} "
                              f"(the URL must be an admin's, allowed to run ACL SETUSER)") from None
        urls[role] = url_for_user(admin_url, user, password)
    return urls


def write_url_files(directory: str | Path, urls: dict[str, str]) -> dict[str, Path]:
    """``DIR/<role>.url`` for each role, 0600 in a 0700 directory."""
    directory = private_dir(directory)
    return {role: write_private(directory / f"{role}.url", url + "\n")
            for role, url in urls.items()}
