"""Elasticsearch retention: whole daily (or monthly...) indices go once their period has ended
before the cut-off, which is cheap and exact per index."""

from __future__ import annotations

from datetime import datetime, timezone


def prune(client, index_pattern: str, index_format: str, older_than: datetime,
          url: str = "Elasticsearch") -> int:
    """Delete whole indices whose day ends before ``older_than``; returns how many went."""
    from elasticsearch import ApiError, TransportError

    from logpipe.common.errors import StoreError
    from logpipe.store.elasticsearch.connection import describe_failure

    try:
        names = client.indices.get(index=index_pattern, allow_no_indices=True,
                                   expand_wildcards="open")
    except (ApiError, TransportError) as exc:  # credentials or TLS: said plainly
        raise StoreError(describe_failure(exc, url) or
                        f"cannot list the indices on {url}: {exc}") from None
    cutoff = older_than.astimezone(timezone.utc).date()
    dropped = 0
    for name in names:
        try:
            day = datetime.strptime(name, index_format).date()
        except ValueError:
            continue
        if day < cutoff:
            client.indices.delete(index=name)
            dropped += 1
    return dropped
