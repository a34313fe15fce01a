"""wait_replicas=majority (the default): more than half of the replicas the primary has had, a
replica that drops away does not lower the bar, a new primary is counted afresh."""

from __future__ import annotations

import pytest

from logpipe.common.broker import connect
from logpipe.common.broker.connection import MAJORITY, NotReplicated, ReplicaWait


class FakeClient:
    def __init__(self, connected: int, replid: str = "a"):
        self.connected, self.replid = connected, replid

    def info(self, section):
        return {"role": "master", "connected_slaves": self.connected, "master_replid": self.replid}


def _needed(wait: ReplicaWait, client) -> int:
    wait._checked_at = float("-inf")  # re-read now, not after the usual few seconds
    return wait.needed(client)


def test_majority_is_the_default_and_parsed():
    assert connect("redis://localhost:1/0").logpipe_replica_wait.replicas == MAJORITY
    assert connect("redis://localhost:1/0?wait_replicas=majority").logpipe_replica_wait.replicas == MAJORITY
    assert connect("redis://localhost:1/0?wait_replicas=1").logpipe_replica_wait.replicas == 1


@pytest.mark.parametrize("replicas,needed", [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_of_the_replicas(replicas, needed):
    assert _needed(ReplicaWait(MAJORITY), FakeClient(replicas)) == needed


def test_a_replica_lost_does_not_lower_the_bar_until_the_primary_changes():
    wait, client = ReplicaWait(MAJORITY), FakeClient(2)
    assert _needed(wait, client) == 2
    client.connected = 1   # the primary cut off with one replica: it still needs both
    assert _needed(wait, client) == 2
    with pytest.raises(NotReplicated):
        wait.check(1, 2)
    client.replid, client.connected = "b", 1  # a failover: the new primary has one replica
    assert _needed(wait, client) == 1
    # a number stays an upper bound of those connected (the former behaviour)
    assert _needed(ReplicaWait(2), FakeClient(1)) == 1
