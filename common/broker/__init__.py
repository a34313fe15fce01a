"""The broker protocol both sides share: key names and Lua scripts (:mod:`common.broker.keys`),
the connection factory (:mod:`common.broker.connection`)."""

from logpipe.common.broker.connection import NotReplicated, ReplicaWait, connect, connect_checked, redact, replica_wait
from logpipe.common.broker.keys import CLAIM_BATCH, DEFAULT_PREFIX, DLQ_ADD, Broker, Keys

__all__ = ["CLAIM_BATCH", "DEFAULT_PREFIX", "DLQ_ADD", "Broker", "Keys", "connect",
           "connect_checked", "redact", "NotReplicated", "ReplicaWait", "replica_wait"]
