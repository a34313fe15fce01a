from logpipe.common.broker import Keys
from logpipe.indexer import stats


def test_rates_come_from_per_second_buckets(redis_client):
    keys = Keys()
    stats.record_in(redis_client, keys, 50)
    stats.record_out(redis_client, keys, {"indexed": 30, "duplicate": 5, "dead_lettered": 5})
    # The window sums whole past seconds plus the current one is excluded; look at the buckets.
    buckets = [k for k in redis_client.keys(keys.stats("rate:*"))]
    assert sorted(int(redis_client.get(k)) for k in buckets) == [40, 50]
    assert all(0 < redis_client.ttl(k) <= stats.RATE_TTL for k in buckets)
    counters = redis_client.hgetall(keys.stats("counters"))
    assert {k.decode(): int(v) for k, v in counters.items()} == \
        {"claimed": 50, "indexed": 30, "duplicate": 5, "dead_lettered": 5}


def test_lag_is_measured_from_the_oldest_waiting_record(redis_client):
    keys = Keys()
    assert stats.oldest_waiting(redis_client, keys) is None
    redis_client.rpush(keys.raw, b'{"id":"a","line":"x","received_at":1000.5}', b"plain line")
    assert stats.oldest_waiting(redis_client, keys) == 1000.5


def test_the_last_hour_is_kept_minute_by_minute_and_bounded(redis_client):
    keys = Keys()
    t0 = 1_800_000_000.0 - (1_800_000_000 % 60)          # the start of a minute
    for minute in range(70):                              # more than an hour of work
        stats.record_in(redis_client, keys, 600, now=t0 + minute * 60)
        stats.record_out(redis_client, keys, {"indexed": 120, "duplicate": 0,
                                              "dead_lettered": 0}, now=t0 + minute * 60 + 1)
    redis_client.rpush(keys.raw, *[b"x"] * 7)
    now = t0 + 69 * 60 + 30                               # 30 s into the 70th minute
    assert stats.sample_depth(redis_client, keys, now=now) == 7
    redis_client.rpush(keys.raw, b"x")
    assert stats.sample_depth(redis_client, keys, now=now + 5) == 8   # the first sample stays
    h = stats.history(redis_client, keys, now=now)
    assert len(h["minutes"]) == stats.HISTORY_MINUTES and h["minutes"][-1] == t0 + 69 * 60
    assert h["in_per_s"][:-1] == [10.0] * 59 and h["out_per_s"][:-1] == [2.0] * 59
    assert h["in_per_s"][-1] == 20.0                      # 600 in the 30 s elapsed so far
    assert h["depth"] == [None] * 59 + [7]
    live = redis_client.keys(keys.stats("minute:in:*"))
    assert all(0 < redis_client.ttl(k) <= stats.MINUTE_TTL for k in live)


def test_broker_memory_is_what_info_says(redis_client):
    info = redis_client.info("memory")
    memory = stats.broker_memory(redis_client)
    assert memory["max"] == int(info["maxmemory"]) and memory["policy"] == info["maxmemory_policy"]
    assert 0 < memory["used"] <= memory["peak"] or memory["peak"] == 0
    redis_client.config_set("maxmemory", 512 * 1024 * 1024)
    try:
        assert stats.broker_memory(redis_client)["max"] == 512 * 1024 * 1024
    finally:
        redis_client.config_set("maxmemory", info["maxmemory"])
