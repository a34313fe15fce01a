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
    # orjson reads the answers: the message records' mget of a batch's records is a few MB of
    # JSON, and the standard library's decoder was a tenth of a worker's CPU (issue 27)
    return Elasticsearch(nodes, request_timeout=request_timeout, retry_on_timeout=False,
                         serializer=OrjsonSerializer(),
                         max_retries=len(nodes) - 1, retry_on_status=(), sniff_on_start=False,
                         sniff_before_requests=False, sniff_on_node_failure=False, **(connection or {}))
