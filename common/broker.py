"""The broker protocol: one place for key names, the connection factory and Lua scripts.

Keys (``prefix`` defaults to ``logpipe``)::

    <raw>                     list   records pushed by shippers (default ``logpipe:raw``; Filebeat,
                                     rsyslog or Logstash can point at it too)
    <prefix>:batch:<uuid>     list   a batch claimed from the raw list, deleted only after every
                                     record in it was indexed or dead-lettered
    <prefix>:batches          zset   batch keys by claim time, so a janitor finds orphans
    <prefix>:dlq              stream dead letters: record, stage, reason, type, time
    <prefix>:stats:*          hash   counters for ``logpipe stats``
    rq:queue:<prefix>         RQ's own keys for the job queue named ``<prefix>``

A claim is atomic (one Lua script moves items from the raw list into a batch key and registers the
batch), so no crash point loses a record: before the script the items are on the raw list, after
it they are in a registered batch key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from common.errors import BrokerError

DEFAULT_PREFIX = "logpipe"


@dataclass(frozen=True)
class Keys:
    """Every broker key name, derived from one prefix and the raw list name."""

    prefix: str = DEFAULT_PREFIX
    raw: str = f"{DEFAULT_PREFIX}:raw"

    @property
    def batches(self) -> str:
        return f"{self.prefix}:batches"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def queue(self) -> str:
        """The RQ queue name."""
        return self.prefix

    def batch(self, batch_id: str | None = None) -> str:
        return f"{self.prefix}:batch:{batch_id or uuid.uuid4().hex}"

    def stats(self, name: str) -> str:
        return f"{self.prefix}:stats:{name}"

    @staticmethod
    def batch_id(batch_key: str) -> str:
        return batch_key.rsplit(":", 1)[-1]


def connect(url: str, decode_responses: bool = False, **kwargs):
    """A Redis client for ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
    ``unix://`` URLs. Connection problems surface as :class:`BrokerError` on first use."""
    import redis

    from common.broker_tls import check_tls_options

    check_tls_options(url)  # TLS files named in the URL exist (common/broker_tls.py)
    try:
        return redis.Redis.from_url(url, decode_responses=decode_responses,
                                    health_check_interval=30, **kwargs)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {redact(url)!r}: {exc}") from None


def redact(url: str) -> str:
    """The URL with its password (and a TLS key passphrase) replaced, for messages and logs."""
    if "ssl_password=" in url:
        import re
        url = re.sub(r"(ssl_password=)[^&#]*", r"\1***", url)
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


# KEYS[1]=raw list, KEYS[2]=batch key, KEYS[3]=batches zset; ARGV[1]=max items, ARGV[2]=now.
# Moves up to N items from the head of the raw list into the batch key and registers it.
CLAIM_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local n = #items
if n == 0 then return 0 end
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
end
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return n
"""


class Broker:
    """Thin wrapper that binds a client to the key names and registers the Lua scripts."""

    def __init__(self, client, keys: Keys | None = None):
        self.client = client
        self.keys = keys or Keys()
        self._claim = client.register_script(CLAIM_BATCH)

    def claim_batch(self, max_items: int) -> tuple[str, int] | None:
        """Atomically move up to ``max_items`` raw records into a new batch key."""
        key = self.keys.batch()
        n = self._claim(keys=[self.keys.raw, key, self.keys.batches], args=[max_items, time.time()])
        return (key, int(n)) if n else None

    def finish_batch(self, batch_key: str) -> None:
        """Forget a batch once every record in it is indexed or dead-lettered."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(batch_key)
        pipe.zrem(self.keys.batches, batch_key)
        pipe.execute()

    def raw_length(self) -> int:
        return int(self.client.llen(self.keys.raw))
