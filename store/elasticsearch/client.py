"""The Elasticsearch client of one node or a cluster, from its node URLs.

Apart from :mod:`store.elasticsearch.url` (which builds the store from a URL) so that the store
can make its client without importing the module that imports the store.
"""

from __future__ import annotations


def node_urls(url: str) -> list[str]:
    """The node URLs of ``http://a:9200,http://b:9200`` (one for a single node), without trailing slashes."""
    return [node.strip().rstrip("/") for node in url.split(",") if node.strip()]


def es_client(url: str, request_timeout: float = 60, connection: dict | None = None):
    """The client for one node or a cluster, ``http://a:9200,http://b:9200``: it gets every node listed (no
    sniffing: the URL is the truth), and a request that cannot connect to one node is tried on the others
    (a repeated bulk is harmless: ``op_type: create`` answers 409 for what is already there). HTTP errors are
    not retried here; the store judges them. ``connection``: credentials and TLS options."""
    from elasticsearch import Elasticsearch, OrjsonSerializer

    nodes = node_urls(url)
    ndjson = _ndjson_serializer()
    # orjson reads the answers: the message records' mget of a batch's records is a few MB of
    # JSON, and the standard library's decoder was a tenth of a worker's CPU (issue 27)
    return Elasticsearch(nodes, request_timeout=request_timeout, retry_on_timeout=False,
                         serializers={"application/json": OrjsonSerializer(), ndjson.mimetype: ndjson},
                         max_retries=len(nodes) - 1, retry_on_status=(), sniff_on_start=False,
                         sniff_before_requests=False, sniff_on_node_failure=False, **(connection or {}))


def _ndjson_serializer():
    """The bulk bodies' serializer: the writers hand over the body as bytes, which it sends as
    they are (the client's own copied every bulk body twice into new buffers, megabytes each)."""
    from elastic_transport import NdjsonSerializer

    class BulkBytes(NdjsonSerializer):
        def dumps(self, data):
            if isinstance(data, bytes) and data.endswith(b"\n"):
                return data
            return super().dumps(data)

    return BulkBytes()


def ndjson_body(lines: list[bytes]) -> bytes:
    """A bulk body: each line and its newline, in one copy (``join(...) + b"\\n"`` made two)."""
    lines.append(b"")
    try:
        return b"\n".join(lines)
    finally:
        lines.pop()
