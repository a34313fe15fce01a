"""The broker contract: key names, the atomic claim, connection URLs (ACL users, TLS)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from logpipe.common.broker import Broker, Keys, connect, redact
from logpipe.common.errors import BrokerError


def test_claim_moves_items_atomically_and_registers_the_batch(redis_client):
    keys = Keys()
    redis_client.rpush(keys.raw, *[f"r{i}".encode() for i in range(2500)])
    broker = Broker(redis_client, keys)
    key, n = broker.claim_batch(1000)
    assert n == 1000 and key.startswith("logpipe:batch:")
    assert redis_client.lrange(key, 0, 1) == [b"r0", b"r1"]
    assert redis_client.lindex(keys.raw, 0) == b"r1000"
    assert redis_client.zscore(keys.batches, key) is not None
    broker.claim_batch(1000)
    assert broker.claim_batch(1000)[1] == 500
    assert broker.claim_batch(1000) is None
    assert redis_client.zcard(keys.batches) == 3
    broker.finish_batch(key)
    assert not redis_client.exists(key) and redis_client.zcard(keys.batches) == 2


def test_an_admin_client_loads_a_missing_or_outdated_function_library_itself(redis_client,
                                                                              redis_url):
    """A user allowed FUNCTION LOAD (here the server's admin) needs no `logpipe acl setup`: the
    first call loads the library; one of another version is replaced."""
    from logpipe.common.broker.functions import LIBRARY, LIBRARY_VERSION

    for loaded in (None, LIBRARY.replace(LIBRARY_VERSION, "0ld0ld0ld0ld")):
        redis_client.function_flush()
        if loaded:
            redis_client.function_load(loaded)
        admin = connect(redis_url)  # a new client: the check is made once per client
        admin.rpush(Keys().raw, b"one")
        assert Broker(admin).claim_batch(10)[1] == 1
        assert admin.fcall_ro("logpipe_version", 0) == LIBRARY_VERSION.encode()


def test_keys_follow_the_prefix_and_the_raw_list_name():
    keys = Keys(prefix="mail", raw="filebeat")
    assert (keys.raw, keys.batches, keys.dlq, keys.queue) == \
        ("filebeat", "mail:batches", "mail:dlq", "mail")
    assert Keys.batch_id(keys.batch("abc")) == "abc"


def test_every_key_of_logpipe_is_built_from_the_prefix():
    keys = Keys(prefix="mail", raw="filebeat")
    names = [keys.batches, keys.batch("x"), keys.batch_attempts, keys.batch_due, keys.dlq,
             keys.dlq_ids, keys.dlq_stages, keys.counters, keys.shippers, keys.rate("in", 7),
             keys.stats("anything")]
    assert all(name.startswith("mail:") for name in names), names
    assert len(set(names)) == len(names)
    assert (keys.batch_due, keys.dlq_ids, keys.rate("out", 12)) == \
        ("mail:batch-attempts:due", "mail:dlq:ids", "mail:stats:rate:out:12")


def test_acl_user_url_ships_with_least_privilege(redis_client, redis_url, tmp_path):
    """A shipper may run as an ACL user allowed to push to the raw list and nothing else."""
    redis_client.execute_command("ACL", "SETUSER", "shipper", "on", ">s3cret", "resetkeys",
                                 "~logpipe:raw", "~logpipe:stats:*", "resetchannels", "-@all",
                                 "+rpush", "+llen", "+hset", "+ping", "+hello", "+client|setinfo")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    url = f"redis://shipper:s3cret@127.0.0.1:{port}/0"
    log = tmp_path / "x.log"
    log.write_text("a\nb\n")
    shipped = subprocess.run([sys.executable, "-m", "logpipe.common.cli", "ship", "--redis", url, "--once",
                              "--registry", str(tmp_path / "reg.json"), str(log)],
                             capture_output=True, text=True, timeout=60)
    assert shipped.returncode == 0, shipped.stderr
    assert redis_client.llen("logpipe:raw") == 2
    limited = connect(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.get("logpipe:raw")


def test_tls_urls_make_tls_connections():
    client = connect("rediss://:pw@broker.example:6380/2")
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == \
        ("broker.example", 6380, 2, "pw")


def test_bad_urls_and_redaction():
    with pytest.raises(BrokerError, match="invalid broker URL"):
        connect("http://not-redis")
    assert redact("redis://user:secret@h:1/0") == "redis://user:***@h:1/0"
    assert redact("redis://:secret@h:1/0") == "redis://:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"
