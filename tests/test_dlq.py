import time

from logpipe.indexer.dlq import DeadLetterQueue


def test_filters_and_purge(redis_client):
    dlq = DeadLetterQueue(redis_client)
    dlq.add(b"a", "id-a", "decode", "item is not UTF-8")
    dlq.add(b"b", "id-b", "parse", "KeyError: x", "mail")
    time.sleep(0.01)
    t = time.time()
    time.sleep(0.01)
    dlq.add(b"c", "id-c", "index", "mapper_parsing_exception: failed to parse field [relayip]",
            "mail")
    assert dlq.counts_by_stage() == {"decode": 1, "parse": 1, "index": 1}
    assert [l.record_id for l in dlq.iter(rtype="mail")] == ["id-b", "id-c"]
    assert [l.record_id for l in dlq.iter(reason="RELAYIP")] == ["id-c"]
    assert [l.record_id for l in dlq.iter(since=t)] == ["id-c"]
    assert [l.record_id for l in dlq.iter(count=2)] == ["id-a", "id-b"]
    first = next(dlq.iter())
    assert dlq.get(first.entry_id).record == b"a"
    assert dlq.purge(stage="decode") == 1
    assert len(dlq) == 2
    assert dlq.counts_by_stage() == {"decode": 0, "parse": 1, "index": 1}
    # A purged record may be dead-lettered again later.
    dlq.add(b"a", "id-a", "decode", "again")
    assert len(dlq) == 3


def test_iter_pages_through_many_entries(redis_client):
    dlq = DeadLetterQueue(redis_client)
    pipe = redis_client.pipeline()
    for i in range(1203):
        dlq.add(f"r{i}".encode(), f"id-{i}", "parse", "x", pipe=pipe)
    pipe.execute()
    assert sum(1 for _ in dlq.iter()) == 1203
