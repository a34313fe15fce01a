"""The broker protocol both sides share: key names (:mod:`common.broker.keys`), logpipe's Lua
function library (:mod:`common.broker.functions`), the connection factory
(:mod:`common.broker.connection`), and the ledger types that own the keys and every command on
them (:mod:`common.broker.ledgers`)."""

from logpipe.common.broker.connection import NotReplicated, ReplicaWait, connect, connect_checked, redact, replica_wait
from logpipe.common.broker.functions import CLAIM_BATCH, DLQ_ADD, ensure_library, load_library
from logpipe.common.broker.keys import DEFAULT_PREFIX, Broker, Keys

__all__ = ["CLAIM_BATCH", "DEFAULT_PREFIX", "DLQ_ADD", "Broker", "Keys", "connect",
           "connect_checked", "ensure_library", "load_library", "redact", "NotReplicated",
           "ReplicaWait", "replica_wait"]
