"""The Elasticsearch index template: the mapping every logpipe index gets (the ES side of what
the embedded store's schema is)."""

from __future__ import annotations

TEMPLATE_PREFIX = "logpipe"  # one template per index prefix: logpipe-logstash, logpipe-mail...

# Fields that hold IP addresses in the built-in pipelines (classic Logstash names).
IP_FIELDS = ("clientip", "relayip", "rip", "lip", "ip", "src_ip", "dst_ip", "client_ip")
# Numbers that grok gives as strings unless typed; mapped explicitly so every index agrees.
LONG_FIELDS = ("size", "bytes", "response", "pid", "nrcpts", "offset", "in", "out", "port")


def index_template(pattern: str) -> dict:
    properties = {
        "@timestamp": {"type": "date"},
        "received_at": {"type": "double"},
        "message": {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                           "ignore_above": 8191}}},
        "tags": {"type": "keyword"},
    }
    properties.update({name: {"type": "ip"} for name in IP_FIELDS})
    properties.update({name: {"type": "long"} for name in LONG_FIELDS})
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0,
                         "refresh_interval": "1s"},
            "mappings": {
                # Ids, queue ids, addresses, hosts: exact values, so strings are keywords.
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 1024}}}],
                "properties": properties,
            },
        },
    }
