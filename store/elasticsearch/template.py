"""The Elasticsearch index template: the mapping every logpipe index gets (the ES side of what
the embedded store's schema is).

Typed fields (:mod:`store.fields`) have ``ignore_malformed``: a value that does not fit (a masked
IP address, ``size=abc``) is kept in ``_source`` but not indexed, and the writer tags the event
(``_malformed``, ``_malformed_field``) as the embedded store does. Fields mapped dynamically get
the same leniency from the index setting; ``@timestamp`` never does (an event without a time
cannot be placed: it is refused and dead-lettered, as on the embedded store).
"""

from __future__ import annotations

from logpipe.store.fields import ID_COPY, IP_FIELDS, LONG_FIELDS, MALFORMED_FIELD

# how soon what is written becomes searchable, on every index logpipe makes (events, message
# records, held parts); a burst trades it for a longer one while it loads (writer.bulk_load)
REFRESH_INTERVAL = "1s"
TEMPLATE_PREFIX = "logpipe"  # one template per index prefix: logpipe-logstash, logpipe-mail...
# The event id, copied into the document by the writer: ``_id`` cannot be sorted on, and
# paging needs a stable per-event tiebreak after @timestamp (store/elasticsearch/reader.py).
# Doc values only (sorting), not indexed; the reader drops it from what it returns.
ID_FIELD = ID_COPY  # a record cannot set it (store.fields.RESERVED_FIELDS)

__all__ = ["ID_FIELD", "IP_FIELDS", "LONG_FIELDS", "REFRESH_INTERVAL", "TEMPLATE_PREFIX",
           "index_template"]


def index_template(pattern: str, replicas: int = 0) -> dict:
    properties = {
        "@timestamp": {"type": "date", "ignore_malformed": False},
        "received_at": {"type": "double"},
        # full text: positions kept (phrase queries); no norms (results are sorted by time,
        # never scored by length). The keyword copy serves `top message` (a terms aggregation
        # reads doc values) and is not indexed: a whole line is a term no query looks up,
        # and each was one more entry in a terms dictionary as large as the log.
        "message": {"type": "text", "norms": False,
                    "fields": {"keyword": {"type": "keyword", "ignore_above": 8191,
                                           "index": False, "doc_values": True}}},
        "tags": {"type": "keyword"},
        MALFORMED_FIELD: {"type": "keyword"},
        ID_FIELD: {"type": "keyword", "index": False, "doc_values": True},
    }
    properties.update({name: {"type": "ip", "ignore_malformed": True} for name in IP_FIELDS})
    properties.update({name: {"type": "long", "ignore_malformed": True}
                       for name in LONG_FIELDS})
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": replicas,
                         "refresh_interval": REFRESH_INTERVAL,
                         "index.mapping.ignore_malformed": True},
            "mappings": {
                # Ids, queue ids, addresses, hosts: exact values, so strings are keywords.
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 1024}}}],
                "properties": properties,
            },
        },
    }
