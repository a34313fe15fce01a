import pytest

from logpipe.common.errors import ConfigError
from logpipe.store import open_store


def test_elasticsearch_index_pattern_rides_on_the_url():
    sink = open_store("http://127.0.0.1:9200/?index=mail-%25Y.%25m")
    assert sink.url == "http://127.0.0.1:9200"
    assert sink.index_for("2026-11-28T10:00:00.000Z") == "mail-2026.11"
    assert sink.index_pattern == "mail-*"
    daily = open_store("http://127.0.0.1:9200?index=web")
    assert daily.index_for("2026-01-02T00:00:00.000Z") == "web-2026.01.02"
    assert open_store("http://127.0.0.1:9200").index_for("2026-01-02T03:00:00Z") == \
        "logstash-2026.01.02"


def test_unknown_store_urls_and_options_are_refused():
    with pytest.raises(ConfigError, match="unknown store URL"):
        open_store("mongodb://x")
    with pytest.raises(ConfigError, match="unknown option 'shards'"):
        open_store("http://127.0.0.1:9200/?shards=3")
