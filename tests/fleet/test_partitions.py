"""Partitions, not just crashes (issue 26): the broker group and the shippers on separate hosts
(network namespaces on one bridge), cut apart and healed while shipping.

Scenario 2, "one replica cut off with the primary": the primary, one replica and a shipper host
end up on an island away from the sentinels' majority, which promote the other replica. With the
defaults (``wait_replicas=majority`` and the servers' ``min-replicas-to-write 1``) nothing the
shipper had confirmed is lost and after healing every line is stored exactly once, the ledger
showing no gap; with ``wait_replicas=1`` and no ``min-replicas-to-write`` (the former defaults)
the lines the island's replica confirmed are lost when the island rejoins as replicas of the new
primary, and the ledger reports them as a hole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.indexer import ledger
from logpipe.services.valkey import SENTINEL_SERVICE, SentinelServer, ValkeyServer, _command
from tests.fixtures.secrets import register_secret
from tests.support.stores import search as store_search

pytestmark = [pytest.mark.integration, pytest.mark.fleet]
LOGPIPE = str(Path(sys.executable).parent / "logpipe")
DEADLINE = 240  # seconds: every wait of a run together; the run fails (and is cleaned up) after


class Clock:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def until(self, what: str, check, step: float = 0.1):
        """Wait for the ready signal ``check()`` (truthy), failing the run at the deadline."""
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() > self.end:
                raise AssertionError(f"fleet deadline passed waiting for {what}")
            time.sleep(step)


def _start_broker(net, tmp: Path, password: str, min_replicas: int) -> tuple[list, list]:
    for name in ("b0", "b1", "b2", "s0", "s1", "s2", "ship1"):
        net.add(name)
    primary = net.addr("b0")
    extra = [f"masterauth {password}", "repl-timeout 5"]
    if min_replicas:
        extra += [f"min-replicas-to-write {min_replicas}", "min-replicas-max-lag 3"]
    servers = [ValkeyServer(tmp / name, port=6379, password=password, host=net.addr(name), netns=net.ns(name),
                            extra_conf=extra + ([f"replicaof {primary} 6379"] if name != "b0" else []))
               for name in ("b0", "b1", "b2")]
    sentinels = [SentinelServer(tmp / name, 6379, password, quorum=2, host=net.addr(name), netns=net.ns(name),
                                primary_host=primary, port=26379) for name in ("s0", "s1", "s2")]
    for server in servers:
        server.start()
    for sentinel in sentinels:
        sentinel.start()
    return servers, sentinels


def _registry_done(home: Path, log: Path) -> bool:
    """The shipper had the broker confirm every byte of ``log`` (its registry says so)."""
    reg = home / "shipper" / "registry.json"
    offsets = reg.with_name(reg.name + ".offsets")
    try:
        files = json.loads(reg.read_text())["files"]
        offs = {k: e["offset"] for k, e in files.items()}
        if offsets.exists():
            data = json.loads(offsets.read_text())
            if data.get("generation") == json.loads(reg.read_text()).get("generation"):
                offs.update(data["offsets"])
    except (OSError, ValueError, KeyError):
        return False
    return bool(offs) and max(offs.values()) == log.stat().st_size


def _status(home: Path) -> dict:
    try:
        return json.loads((home / "shipper" / "registry.json.status.json").read_text())
    except (OSError, ValueError):
        return {}


def _append(log: Path, start: int, n: int) -> None:
    with open(log, "a") as f:
        f.write("".join(f"fleet line {i}\n" for i in range(start, start + n)))


def _primary(sentinels, net) -> str | None:
    names = [s.master().get("ip") for s in sentinels]
    best = max(set(names), key=names.count)
    return best if best and names.count(best) >= 2 else None


@pytest.mark.parametrize("safe", [
    pytest.param(True, id="majority-waits", marks=pytest.mark.fleet_short),
    pytest.param(False, id="wait-1-no-min-replicas"),
])
def test_replica_cut_off_with_the_primary(net, tmp_path, safe):
    clock = Clock(DEADLINE)
    password = os.urandom(16).hex()
    register_secret(password)
    servers, sentinels = _start_broker(net, tmp_path, password, min_replicas=1 if safe else 0)
    shipper = None
    try:
        clock.until("the sentinels to know both replicas and each other", lambda: all(
            int(m.get("num-slaves", 0)) == 2 and int(m.get("num-other-sentinels", 0)) == 2
            for m in (s.master() for s in sentinels)))
        hosts = ",".join(f"{net.addr(n)}:26379" for n in ("s0", "s1", "s2"))
        url = f"redis+sentinel://:{password}@{hosts}/{SENTINEL_SERVICE}/0" + ("" if safe else "?wait_replicas=1")
        home, log, raw = tmp_path / "ship1", tmp_path / "app.log", "fleet:raw"
        _append(log, 0, 1000)
        env = {**os.environ, "LOGPIPE_HOME": str(home), "LOGPIPE_REDIS_URL": url}
        shipper = subprocess.Popen([*net.exec_prefix("ship1"), LOGPIPE, "ship", "--list", raw, str(log)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ship1.err", "wb"))
        clock.until("the first 1,000 lines confirmed", lambda: _registry_done(home, log))

        # the primary, one replica and the shipper host on an island; the sentinels promote b2
        net.isolate_together("b0", "b1", "ship1")
        _append(log, 1000, 1000)
        clock.until("the sentinels to promote b2", lambda: _primary(sentinels, net) == net.addr("b2"))
        if safe:  # nothing can be confirmed on the island: the shipper says the broker is down
            clock.until("the shipper to hold its lines", lambda: _status(home).get("broker") == "down")
            assert not _registry_done(home, log)
        else:     # WAIT 1: the island's replica confirms, the shipper's registry moves on
            clock.until("the island to confirm the lines", lambda: _registry_done(home, log))
        confirmed_on_island = _registry_done(home, log)

        net.rejoin("b0", "b1", "ship1")
        clock.until("b0 and b1 to follow b2", lambda: all(
            (_command(6379, password, "INFO", "replication", host=net.addr(n)) or {}).get("master_link_status") == "up"
            and (_command(6379, password, "INFO", "replication", host=net.addr(n)) or {}).get("master_host")
            == net.addr("b2") for n in ("b0", "b1")))
        _append(log, 2000, 500)  # after healing: shows a hole in the ledger if lines went missing
        clock.until("every line confirmed after healing", lambda: _registry_done(home, log)
                    and _status(home).get("broker") == "up")
        shipper.send_signal(signal.SIGTERM)
        shipper.wait(60)

        # index everything (from the test process, through the sentinels) into the embedded store
        store = f"sqlite:///{tmp_path}/events.db"
        ienv = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "ix"), "LOGPIPE_REDIS_URL": url,
                "LOGPIPE_STORE_URL": store}
        r = subprocess.run([LOGPIPE, "index", "--burst", "--list", raw, "--workers", "1"], env=ienv,
                           capture_output=True, timeout=max(10, clock.end - time.monotonic()))
        assert r.returncode == 0, r.stderr[-2000:]
        from logpipe.store import open_store
        from logpipe.store.base import SearchRequest
        stored = store_search(open_store(store), SearchRequest(limit=1)).total
        client = connect(url)
        (entry,) = ledger.report(client, Keys(raw=raw), loss_after=0)
        print(f"\nscenario 2 ({'majority waits + min-replicas-to-write 1' if safe else 'WAIT 1, no min-replicas'}):"
              f" lines written 2500, stored {stored}; confirmed on the island: {confirmed_on_island}; "
              f"ledger: {ledger.summary_line(entry)}")
        if safe:
            assert stored == 2500
            assert (entry["stored_upto"], entry["gaps"], entry["records"]) == (2499, 0, 2500)
        else:  # the former defaults lose what the island's replica confirmed, and the ledger says so
            assert stored < 2500 and entry["gaps"] == 2500 - stored and entry["lost"]
    finally:
        if shipper is not None and shipper.poll() is None:
            shipper.kill()
            shipper.wait(10)
        for one in [*sentinels, *servers]:
            one.stop()
