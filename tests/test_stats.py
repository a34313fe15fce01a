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
