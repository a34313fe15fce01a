"""The Elasticsearch records' known keys: what decides whether a record is read before its
write (store/elasticsearch/messages.py). Bounded, and each store instance has its own."""

from logpipe.store.elasticsearch.messages import ElasticsearchMessages


def test_known_record_keys_are_per_instance_and_bounded():
    first, second = ElasticsearchMessages(), ElasticsearchMessages()
    first._KNOWN_MAX = 3
    first._remember(["h/A", "h/B"])
    assert first._known_records == {"h/A", "h/B"}
    assert second._known_records == frozenset()  # the class's empty default, untouched
    first._remember(["h/C", "h/D"])  # four: over the bound
    assert first._known_records == {"h/A", "h/B", "h/C", "h/D"}
    first._remember(["h/E"])  # the next one starts afresh
    assert first._known_records == {"h/E"}
    second._remember(["h/Z"])
    assert second._known_records == {"h/Z"} and "h/Z" not in first._known_records
