"""Issue 26's fleet scenarios 1, 3, 4 and 5 (file inputs; syslog inputs, ``test_s5s``): the whole fleet, each part a host of its own.

Hosts (network namespaces on one bridge, tests/fleet/net.py): the broker group ``b0`` (primary), ``b1``, ``b2``
(replicas) and sentinels ``s0``-``s2`` (the launchers of services/valkey.py, as scenario 2); two shipper hosts
``ship1``, ``ship2`` running ``logpipe ship`` on a file each; two indexer hosts ``ix1``, ``ix2`` running
``logpipe index`` through the sentinels; a 3-node Elasticsearch cluster ``es1``-``es3``
(services/elasticsearch.py's ``ElasticsearchCluster(hosts=, netns=)``, 256 MB heaps). The fleet is built once
for the module (Elasticsearch takes minutes to start on this machine) and every scenario uses its own key
prefix, raw list and index, so each one's figures and ledger are its own; each scenario stops what it started
and heals what it cut, even when it fails, and the fleet is torn down (every process in its namespaces
killed) at the end.

Each scenario ends the same way: every line written is in Elasticsearch exactly once (documents counted by
distinct message, no message twice), the raw list and the batches are empty, and the loss ledger of
``logpipe stats --json`` shows every source stored up to its last line with zero gaps. The figures (how many
lines were confirmed while cut, how long the cut cost) are printed (``-s`` shows them; ``./run fleet``).
Waits are on ready signals (a registry offset, a status file, a log line, a count); a deadline per scenario
only bounds a hang.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logpipe.services.elasticsearch import ElasticsearchCluster
from logpipe.services.valkey import SENTINEL_SERVICE, SentinelServer, ValkeyServer, _command
from tests.fixtures.secrets import register_secret
from tests.fleet.net import Net, unavailable
from tests.fleet.test_partitions import Clock, _registry_done, _status

pytestmark = [pytest.mark.integration, pytest.mark.fleet, pytest.mark.timeout(1500)]
LOGPIPE = str(Path(sys.executable).parent / "logpipe")
START_DEADLINE = 900   # seconds: the fleet's start (three Elasticsearch nodes on a shared 2-core machine)
SCENARIO_DEADLINE = 600
BROKERS, SENTINELS, ES = ("b0", "b1", "b2"), ("s0", "s1", "s2"), ("es1", "es2", "es3")
# faster fault detection than Elasticsearch's defaults (10 s x 3 checks): the scenario's figures depend on it
ES_SETTINGS = {"cluster.fault_detection.follower_check.timeout": "3s",
               "cluster.fault_detection.leader_check.timeout": "3s"}


class Fleet:
    def __init__(self, net: Net, tmp: Path):
        self.net, self.tmp = net, tmp
        self.password = os.urandom(16).hex()
        register_secret(self.password)
        for name in (*BROKERS, *SENTINELS, "ship1", "ship2", "ix1", "ix2", *ES):
            net.add(name)
        primary = net.addr("b0")
        extra = [f"masterauth {self.password}", "repl-timeout 5", "min-replicas-to-write 1",
                 "min-replicas-max-lag 3"]
        self.servers = [ValkeyServer(tmp / n, port=6379, password=self.password, host=net.addr(n), netns=net.ns(n),
                                     extra_conf=extra + ([f"replicaof {primary} 6379"] if n != "b0" else []))
                        for n in BROKERS]
        self.sentinels = [SentinelServer(tmp / n, 6379, self.password, quorum=2, host=net.addr(n), netns=net.ns(n),
                                         primary_host=primary, port=26379) for n in SENTINELS]
        self.es = ElasticsearchCluster(3, data_dir=tmp / "es", heap="256m", hosts=[net.addr(n) for n in ES],
                                       netns=[net.ns(n) for n in ES], settings=ES_SETTINGS)
        hosts = ",".join(f"{net.addr(n)}:26379" for n in SENTINELS)
        self.url = f"redis+sentinel://:{self.password}@{hosts}/{SENTINEL_SERVICE}/0"
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        clock = Clock(START_DEADLINE)
        for one in [*self.servers, *self.sentinels]:
            one.start()
        self.es.start(timeout=START_DEADLINE)
        self.settled(clock)

    def primary(self) -> str | None:
        """The primary's address as two sentinels of three name it."""
        names = [s.master().get("ip") for s in self.sentinels]
        best = max(set(names), key=names.count)
        return best if best and names.count(best) >= 2 else None

    def name_of(self, addr: str) -> str:
        return next(n for n in BROKERS if self.net.addr(n) == addr)

    def settled(self, clock: Clock) -> str:
        """Until one primary has both replicas online and every sentinel knows them and each other; its name."""
        def ready():
            primary = self.primary()
            if not primary:
                return None
            info = _command(6379, self.password, "INFO", "replication", host=primary) or {}
            online = sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                         and v.get("state") == "online")
            known = [s.master() for s in self.sentinels]
            if info.get("role") == "master" and online == 2 and all(
                    int(m.get("num-slaves", 0)) >= 2 and int(m.get("num-other-sentinels", 0)) == 2
                    and m.get("ip") == primary for m in known):
                return self.name_of(primary)
            return None
        return clock.until("the broker group to settle (a primary, two replicas online, sentinels agreeing)", ready,
                           step=0.25)

    def store_url(self, index: str) -> str:
        return self.es.url + f"/?index={index}"

    def spawn(self, host: str, args: list[str], env: dict, log: Path) -> subprocess.Popen:
        proc = subprocess.Popen([*self.net.exec_prefix(host), LOGPIPE, *args], env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 60) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.es.stop()
        for one in [*self.sentinels, *self.servers]:
            one.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(why)
    net = Net()
    try:
        built = Fleet(net, tmp_path_factory.mktemp("fleet"))
        try:
            built.start()
            yield built
        finally:
            built.close()
    finally:
        net.close()


class Scenario:
    """One scenario's own keys, files, shippers and indexers on the fleet."""

    def __init__(self, fleet: Fleet, name: str, tmp: Path):
        self.fleet, self.name, self.tmp = fleet, name, tmp
        self.prefix, self.raw, self.index_name = f"fl{name}", f"fl{name}:raw", f"fleet-{name}"
        self.logs: dict[str, Path] = {}
        self.written: dict[str, int] = {}
        self.shippers: dict[str, subprocess.Popen] = {}
        self.indexers: dict[str, subprocess.Popen] = {}
        self.others: list[subprocess.Popen] = []   # senders (rsyslogd) the scenario started
        self.clock = Clock(SCENARIO_DEADLINE)

    # -- the log files and the shippers ----------------------------------------------------------------------
    def append(self, host: str, n: int) -> None:
        log = self.logs.setdefault(host, self.tmp / f"{host}.log")
        start = self.written.get(host, 0)
        with open(log, "a") as f:
            f.write("".join(f"{self.name} {host} line {i}\n" for i in range(start, start + n)))
        self.written[host] = start + n

    def home(self, host: str) -> Path:
        return self.tmp / f"home-{host}"

    def ship(self, host: str, *extra: str) -> None:
        self.shippers[host] = self.fleet.spawn(
            host, ["ship", "--list", self.raw, "--prefix", self.prefix, "--host", host, *extra, str(self.logs[host])],
            {"LOGPIPE_HOME": str(self.home(host)), "LOGPIPE_REDIS_URL": self.fleet.url}, self.tmp / f"{host}.out")

    def confirmed(self, host: str) -> bool:
        """Every byte of the host's log confirmed by the broker (its registry says so)."""
        return _registry_done(self.home(host), self.logs[host])

    def offset(self, host: str) -> int:
        reg = self.home(host) / "shipper" / "registry.json"
        try:
            files = json.loads(reg.read_text())["files"]
            offs = [e["offset"] for e in files.values()]
            offsets = reg.with_name(reg.name + ".offsets")
            if offsets.exists():
                data = json.loads(offsets.read_text())
                if data.get("generation") == json.loads(reg.read_text()).get("generation"):
                    offs += list(data["offsets"].values())
            return max(offs, default=0)
        except (OSError, ValueError, KeyError):
            return 0

    # -- the indexers ----------------------------------------------------------------------------------------
    def index(self, host: str, batch: int = 500) -> None:
        self.indexers[host] = self.fleet.spawn(
            host, ["index", "--list", self.raw, "--prefix", self.prefix, "--workers", "1", "--batch-size", str(batch)],
            {"LOGPIPE_HOME": str(self.tmp / f"home-{host}"), "LOGPIPE_REDIS_URL": self.fleet.url,
             "LOGPIPE_STORE_URL": self.fleet.store_url(self.index_name)}, self.tmp / f"{host}.out")

    def output(self, host: str) -> str:
        try:
            return (self.tmp / f"{host}.out").read_text(errors="replace")
        except OSError:
            return ""

    # -- Elasticsearch ---------------------------------------------------------------------------------------
    def es(self):
        from logpipe.store.elasticsearch.client import es_client
        nodes = [n for n in self.fleet.es.nodes if n._ready()]
        return es_client(",".join(n.url for n in nodes), request_timeout=30)

    def messages(self) -> list[str]:
        """Every stored document's message (a scroll over the scenario's indices)."""
        return [h["_source"].get("message", "") for h in self.hits(["message"])]

    def hits(self, fields: list[str]) -> list[dict]:
        """Every stored document (its ``_id`` and these ``_source`` fields): a scroll over the scenario's indices."""
        client = self.es()
        try:
            client.indices.refresh(index=f"{self.index_name}-*", ignore_unavailable=True, allow_no_indices=True)
            found: list[dict] = []
            page = client.search(index=f"{self.index_name}-*", scroll="2m", size=5000, sort=["_doc"],
                                 source_includes=fields, query={"match_all": {}},
                                 ignore_unavailable=True, allow_no_indices=True)
            try:
                while page["hits"]["hits"]:
                    found.extend(page["hits"]["hits"])
                    page = client.scroll(scroll_id=page["_scroll_id"], scroll="2m")
            finally:
                if page.get("_scroll_id"):
                    client.clear_scroll(scroll_id=page["_scroll_id"])
            return found
        finally:
            client.close()

    def stored(self) -> int:
        try:
            client = self.es()
            try:
                client.indices.refresh(index=f"{self.index_name}-*", ignore_unavailable=True, allow_no_indices=True)
                return int(client.count(index=f"{self.index_name}-*", ignore_unavailable=True,
                                        allow_no_indices=True)["count"])
            finally:
                client.close()
        except Exception:  # a node away or electing: asked again at the next poll
            return -1

    def total(self) -> int:
        return sum(self.written.values())

    def stats(self) -> dict:
        r = subprocess.run([LOGPIPE, "stats", "--json", "--list", self.raw, "--prefix", self.prefix],
                           env={**os.environ, "LOGPIPE_REDIS_URL": self.fleet.url}, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout)

    # -- the common ending -----------------------------------------------------------------------------------
    def finish(self, expected: set[str] | None = None, ledger_upto: list[int] | None = None, **figures) -> dict:
        """Everything confirmed, stored exactly once, the pipeline drained and the ledger without gaps.
        ``expected``: the messages (default: every line appended to the files); ``ledger_upto``: each ledger
        source's last record (default: one source per file, up to its last line)."""
        for host in self.shippers:
            if host in self.logs:
                self.clock.until(f"{host}'s lines all confirmed", lambda h=host: self.confirmed(h))
        if expected is None:
            expected = {f"{self.name} {host} line {i}" for host, n in self.written.items() for i in range(n)}
        if ledger_upto is None:
            ledger_upto = [n - 1 for n in self.written.values()]
        total = len(expected)
        self.clock.until(f"all {total} lines in Elasticsearch", lambda: self.stored() >= total, step=0.5)
        stats = self.clock.until("the raw list and the batches drained", lambda: (
            lambda s: s if s["raw_list"] == 0 and s["batches_pending"] == 0 else None)(self.stats()), step=0.5)
        for proc in [*self.shippers.values(), *self.indexers.values()]:
            self.fleet.stop(proc)
        messages = self.messages()
        twice = len(messages) - len(set(messages))
        ledger = {e["source"]: e for e in stats["ledger"]}
        print(f"\nscenario {self.name}: lines written {total}, documents {len(messages)}, distinct "
              f"{len(set(messages))}, stored twice {twice}; "
              + "; ".join(f"{k} {v}" for k, v in figures.items())
              + "; ledger: " + " | ".join(f"{e.get('source')}: stored up to {e['stored_upto']}, gaps {e['gaps']}"
                                         for e in stats["ledger"]))
        assert twice == 0, "a line was stored twice"
        assert set(messages) == expected, (f"missing {len(expected - set(messages))}, "
                                           f"unexpected {len(set(messages) - expected)}")
        assert len(ledger) == len(ledger_upto), stats["ledger"]
        assert sorted(e["stored_upto"] for e in ledger.values()) == sorted(ledger_upto), stats["ledger"]
        assert all(e["gaps"] == 0 and not e.get("lost") for e in ledger.values()), stats["ledger"]
        return stats

    def close(self) -> None:
        for proc in [*self.shippers.values(), *self.indexers.values(), *self.others]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def scenario(fleet, request, tmp_path):
    one = Scenario(fleet, request.node.name.split("_")[1], tmp_path)
    try:
        yield one
    finally:
        one.close()
        for name in fleet.net.hosts:  # heal whatever the scenario left cut
            fleet.net.rejoin(name)
            fleet.net.heal(name)
        for a in fleet.net.hosts:
            for b in fleet.net.hosts:
                if a < b:
                    fleet.net.unblock(a, b)


def test_s1_primary_and_a_shipper_cut_off_from_the_sentinels_majority(fleet, scenario):
    """The primary and ship1 on an island; the majority (two replicas, three sentinels, ship2, the
    indexers, Elasticsearch) promotes a replica. The island's primary has no replica left: WAIT cannot be
    satisfied and after ``min-replicas-max-lag`` it refuses writes, so ship1 confirms nothing there and keeps its
    offsets; ship2 goes on through the new primary. After healing the old primary follows the new one and
    ship1 sends what it held (same record ids)."""
    s, net = scenario, fleet.net
    old = fleet.settled(s.clock)
    for host in ("ship1", "ship2"):
        s.append(host, 2000)
        s.ship(host)
    s.index("ix1")
    s.index("ix2")
    s.clock.until("the first lines confirmed", lambda: s.confirmed("ship1") and s.confirmed("ship2"))

    cut_at = time.monotonic()
    net.isolate_together(old, "ship1")
    for host in ("ship1", "ship2"):
        s.append(host, 2000)
    new = s.clock.until("the sentinels to promote a replica", lambda: (
        lambda p: p if p and p != net.addr(old) else None)(fleet.primary()))
    failover = time.monotonic() - cut_at
    s.clock.until("ship1 to hold its lines (broker down)", lambda: _status(s.home("ship1")).get("broker") == "down")
    s.clock.until("ship2 to go on through the new primary", lambda: s.confirmed("ship2"))
    ship2_after = time.monotonic() - cut_at
    held = s.logs["ship1"].stat().st_size - s.offset("ship1")
    assert not s.confirmed("ship1"), "the island's primary confirmed a write"

    net.rejoin(old, "ship1")
    healed_at = time.monotonic()
    fleet.settled(s.clock)
    for host in ("ship1", "ship2"):
        s.append(host, 500)
    s.clock.until("ship1 to catch up", lambda: s.confirmed("ship1"))
    catch_up = time.monotonic() - healed_at
    s.finish(**{"old primary": old, "new primary": fleet.name_of(new), "failover s": f"{failover:.1f}",
                "ship2 confirmed again after s": f"{ship2_after:.1f}", "ship1 held bytes": held,
                "ship1 caught up after healing s": f"{catch_up:.1f}"})


def test_s3_an_indexer_cut_off_from_elasticsearch_mid_batch_then_from_the_broker(fleet, scenario):
    """ix1 alone indexes; it is cut off from the three Elasticsearch nodes (it still reaches the broker) while
    batches come in: its bulk requests hang until the client's timeout and its jobs fail as a store outage
    (retried without using up attempts). Then it loses the broker as well (its link down) with batches still
    claimed; ix2 starts, and its janitor re-enqueues them once ix1's worker registration has expired. After
    healing ix1 comes back; every line is stored once."""
    s, net = scenario, fleet.net
    fleet.settled(s.clock)
    s.append("ship1", 2000)
    s.ship("ship1")
    s.index("ix1", batch=500)
    s.clock.until("ix1 to store the first lines", lambda: s.stored() >= 2000, step=0.5)

    net.block("ix1", *ES)
    cut_at = time.monotonic()
    failed_before = s.output("ix1").count("batch_failed")
    s.append("ship1", 3000)
    s.clock.until("ship1's lines confirmed", lambda: s.confirmed("ship1"))
    s.clock.until("an ix1 batch failing mid-write (the store away)",
                  lambda: s.output("ix1").count("batch_failed") > failed_before, step=0.5)
    first_failure = time.monotonic() - cut_at
    stored_while_cut = s.stored()
    pending = int(s.stats()["batches_pending"])
    assert stored_while_cut < s.total() and pending > 0, "nothing was in flight at the cut: the test proves nothing"

    net.cut("ix1")
    broker_cut_at = time.monotonic()
    s.index("ix2", batch=500)
    s.clock.until("ix2 to store everything ix1 held", lambda: s.stored() >= s.total(), step=0.5)
    takeover = time.monotonic() - broker_cut_at

    net.heal("ix1")
    net.unblock("ix1", *ES)
    s.append("ship1", 500)
    s.finish(**{"batches pending at the cut": pending, "stored while ix1 was cut from ES": stored_while_cut,
                "first failed batch after s": f"{first_failure:.1f}",
                "ix2 had stored ix1's batches after s": f"{takeover:.1f}"})


def test_s4_one_elasticsearch_node_cut_off_from_the_other_two(fleet, scenario):
    """While both indexers write, the Elasticsearch node holding the scenario index's primary shard loses its
    link (cut off from the other nodes and from the indexers). The two others form the majority, promote the
    replica and go on; requests the indexers had sent to the cut node time out and are retried (the
    batch stays registered). Healed, the node rejoins and the cluster goes back to three nodes."""
    s, net = scenario, fleet.net
    fleet.settled(s.clock)
    for host in ("ship1", "ship2"):
        s.append(host, 3000)
        s.ship(host)
    s.index("ix1")
    s.index("ix2")
    s.clock.until("the first documents", lambda: s.stored() > 0, step=0.5)
    # the new index's replica must be started (in sync) first: cut before that, the primary's node takes the
    # only good copy with it and the index is red until the node is back (seen in the first run)
    s.clock.until("the index green (its replica started)", lambda: (fleet.es.nodes[0]._get(
        f"/_cluster/health/{s.index_name}-*?wait_for_status=green&timeout=1s", timeout=5) or {}).get("status")
        == "green", step=0.5)
    client = s.es()
    try:
        shards = client.cat.shards(index=f"{s.index_name}-*", format="json")
    finally:
        client.close()
    primary = next(sh["node"] for sh in shards if sh["prirep"] == "p" and sh["state"] == "STARTED")
    victim = next(n for n, node in zip(ES, fleet.es.nodes) if node.node_name == primary)
    stored_at_cut = s.stored()

    net.cut(victim)
    cut_at = time.monotonic()
    for host in ("ship1", "ship2"):
        s.append(host, 3000)
    others = [node for n, node in zip(ES, fleet.es.nodes) if n != victim]

    def two_nodes():
        health = others[0]._get("/_cluster/health?wait_for_nodes=2&timeout=1s", timeout=5) or {}
        return health.get("number_of_nodes") == 2
    s.clock.until("the other two nodes to drop the cut one", two_nodes, step=0.5)
    dropped = time.monotonic() - cut_at
    s.clock.until("every line in the two-node cluster", lambda: s.stored() >= s.total(), step=0.5)
    all_in = time.monotonic() - cut_at

    net.heal(victim)
    s.clock.until("the cluster back to three nodes", lambda: (
        others[0]._get("/_cluster/health?wait_for_nodes=3&timeout=1s", timeout=5) or {}).get("number_of_nodes") == 3,
        step=0.5)
    for host in ("ship1", "ship2"):
        s.append(host, 500)
    s.finish(**{"cut node": f"{victim} (held the primary shard)", "stored at the cut": stored_at_cut,
                "cluster dropped it after s": f"{dropped:.1f}", "all stored without it after s": f"{all_in:.1f}"})


def test_s5_a_shipper_cut_off_longer_than_its_buffers_with_file_inputs(fleet, scenario):
    """ship1 reads a file with small batches; its link goes down while the application keeps writing many
    times what the shipper holds in memory (two batches in flight). The shipper stops reading (its registry
    offset stays put) and catches up from the registry once healed. Then the high-water mark: with the
    indexers away, ship2 pauses at ``--high-water`` and resumes when they drain the list."""
    s, net = scenario, fleet.net
    fleet.settled(s.clock)
    s.append("ship1", 1000)
    s.ship("ship1", "--batch-lines", "100")
    s.index("ix1")
    s.clock.until("ship1's first lines confirmed", lambda: s.confirmed("ship1"))

    net.cut("ship1")
    cut_at = time.monotonic()
    s.append("ship1", 20_000)   # 200 batches' worth, against two in flight
    s.clock.until("ship1 to see the broker down", lambda: _status(s.home("ship1")).get("broker") == "down")
    held_offset = s.offset("ship1")
    s.append("ship1", 5_000)
    s.clock.until("ship1 to still hold (status rewritten while down)",
                  lambda: _status(s.home("ship1")).get("broker") == "down")
    assert s.offset("ship1") == held_offset, "the shipper moved its offset while cut off"
    behind = s.logs["ship1"].stat().st_size - held_offset
    net.heal("ship1")
    healed_at = time.monotonic()
    s.clock.until("ship1 to catch up from its registry", lambda: s.confirmed("ship1"))
    catch_up = time.monotonic() - healed_at
    cut_for = healed_at - cut_at

    # the high-water mark: the indexer away, the list fills to it and ship2 stops reading
    fleet.stop(s.indexers.pop("ix1"))
    s.append("ship2", 10_000)
    s.ship("ship2", "--batch-lines", "100", "--high-water", "3000", "--low-water", "1000")
    s.clock.until("ship2 to pause at the high-water mark", lambda: _status(s.home("ship2")).get("paused") is True)
    paused_offset = s.offset("ship2")
    assert not s.confirmed("ship2")
    s.index("ix1")
    s.clock.until("ship2 to resume and finish", lambda: s.confirmed("ship2"))
    s.finish(**{"ship1 cut for s": f"{cut_for:.1f}", "ship1 bytes behind at healing": behind,
                "ship1 caught up after s": f"{catch_up:.1f}",
                "ship2 paused at offset": f"{paused_offset} of {s.logs['ship2'].stat().st_size}"})


# -- scenario 5, syslog inputs ---------------------------------------------------------------------------------
RSYSLOGD = next((p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if Path(p).exists()), None)
SYSLOG_PORT, RSYSLOG_IN = 5514, 5601   # on ship1's loopback: the agent's listeners, rsyslogd's imtcp input
# an application on ship1: RFC 5424 lines to ``proto``://127.0.0.1:PORT, one connection (TCP) or one
# datagram per line (UDP); the stored message is the bare text ("<tag> <proto> line <i>")
SENDER = """
import socket, sys
from datetime import datetime, timezone
stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
proto, port, tag, start, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lines = [f"<13>1 {stamp} ship1 app{proto} 7 - - {tag} {proto} line {i}\\n".encode()
         for i in range(start, start + n)]
if proto == "tcp":
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(lines))
else:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for line in lines:
            s.sendto(line, ("127.0.0.1", port))
"""


def rsyslog_conf(work: Path) -> str:
    """rsyslogd on ship1: imtcp in, omfwd TCP (octet-counted) to the agent. One worker on the main queue and
    on the action queue (lines leave in the order they came); while the agent is unreachable the action is
    retried for ever (``resumeRetryCount -1``) with the lines held in its queue, not discarded."""
    return "\n".join([
        f'global(workDirectory="{work}")',
        'main_queue(queue.type="LinkedList" queue.size="200000" queue.workerThreads="1")',
        'module(load="imtcp")',
        f'input(type="imtcp" address="127.0.0.1" port="{RSYSLOG_IN}" ruleset="fwd")',
        'ruleset(name="fwd") {',
        f'  action(type="omfwd" target="127.0.0.1" port="{SYSLOG_PORT}" protocol="tcp" '
        'template="RSYSLOG_ForwardFormat" TCP_Framing="octet-counted" action.resumeRetryCount="-1" '
        'action.resumeInterval="1" queue.type="LinkedList" queue.size="200000" queue.workerThreads="1")',
        '}', ""])


class SyslogHost:
    """ship1 as a syslog host: ``logpipe ship`` listening on TCP and UDP 127.0.0.1:5514 (its spool on by
    default), rsyslogd forwarding an application's TCP lines to it, a Python application sending UDP."""

    def __init__(self, s: Scenario):
        self.s, self.net = s, s.fleet.net
        self.sent = {"tcp": 0, "udp": 0}
        self.base = 0        # lines the current agent run has not received (sent before it started)
        self.runs = 0
        self.script = s.tmp / "sender.py"
        self.script.write_text(SENDER)

    def status(self) -> dict:
        return _status(self.s.home("ship1"))

    def received(self) -> int:
        """Lines the agent's current run has spooled (every listener of the input counts them)."""
        src = [x for x in self.status().get("sources", []) if x.get("path", "").startswith(("udp://", "tcp://"))]
        return int(src[0]["received"]) if src else -1

    def spool_bytes(self) -> int:
        return sum(int(x.get("spool_bytes", 0)) for x in self.status().get("sources", []))

    def start_agent(self) -> None:
        s = self.s
        s.shippers["ship1"] = s.fleet.spawn(
            "ship1", ["ship", "--list", s.raw, "--prefix", s.prefix, "--host", "ship1", "--batch-lines", "100",
                      "--syslog-tcp", f"127.0.0.1:{SYSLOG_PORT}", "--syslog-udp", f"127.0.0.1:{SYSLOG_PORT}"],
            {"LOGPIPE_HOME": str(s.home("ship1")), "LOGPIPE_REDIS_URL": s.fleet.url}, s.tmp / "ship1.out")
        self.runs += 1
        s.clock.until("the agent listening (TCP and UDP)",
                      lambda: s.output("ship1").count("event=syslog_listening") >= 2 * self.runs
                      or self._died())

    def _died(self):
        proc = self.s.shippers["ship1"]
        assert proc.poll() is None, f"the agent exited:\n{self.s.output('ship1')[-3000:]}"
        return False

    def start_rsyslog(self) -> None:
        work = self.s.tmp / "rsyslog"
        work.mkdir()
        (work / "rsyslog.conf").write_text(rsyslog_conf(work))
        proc = subprocess.Popen([*self.net.exec_prefix("ship1"), RSYSLOGD, "-n", "-f", str(work / "rsyslog.conf"),
                                 "-i", str(work / "pid")], stdin=subprocess.DEVNULL,
                                stdout=open(work / "rsyslogd.out", "ab"), stderr=subprocess.STDOUT)
        self.s.others.append(proc)

        def listening():
            assert proc.poll() is None, (work / "rsyslogd.out").read_text(errors="replace")
            r = subprocess.run([*self.net.exec_prefix("ship1"), "ss", "-Hltn", f"sport = :{RSYSLOG_IN}"],
                               capture_output=True, text=True, timeout=30)
            return str(RSYSLOG_IN) in r.stdout
        self.s.clock.until("rsyslogd listening", listening)

    def send(self, proto: str, n: int) -> None:
        """``n`` more lines from the application: TCP through rsyslogd, UDP straight to the agent."""
        port = RSYSLOG_IN if proto == "tcp" else SYSLOG_PORT
        r = subprocess.run([*self.net.exec_prefix("ship1"), sys.executable, str(self.script), proto, str(port),
                            self.s.name, str(self.sent[proto]), str(n)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        self.sent[proto] += n

    def total(self) -> int:
        return self.sent["tcp"] + self.sent["udp"]

    def all_received(self, what: str) -> None:
        """Until the agent's run has spooled every line sent (the ready signal: its status file)."""
        self.s.clock.until(what, lambda: self.received() == self.total() - self.base or self._died(), step=0.25)

    def send_udp(self, n: int, chunk: int = 1000) -> None:
        """UDP in chunks, each spooled before the next is sent: the kernel's receive buffer never overflows
        (its drops would be the kernel's, before the agent could see or count them)."""
        while n > 0:
            self.send("udp", min(chunk, n))
            n -= min(chunk, n)
            self.all_received("the agent to spool the UDP chunk")

    def kernel_udp_drops(self) -> int:
        r = subprocess.run([*self.net.exec_prefix("ship1"), "cat", "/proc/net/snmp"], capture_output=True, text=True,
                           timeout=30)
        head, values = [line.split() for line in r.stdout.splitlines() if line.startswith("Udp:")][:2]
        return int(values[head.index("RcvbufErrors")])

    def expected(self) -> set[str]:
        return {f"{self.s.name} {proto} line {i}" for proto, n in self.sent.items() for i in range(n)}


@pytest.mark.skipif(RSYSLOGD is None, reason="rsyslogd is not installed (Debian's rsyslog: ./run tests installs it)")
def test_s5s_a_shipper_cut_off_longer_than_its_buffers_with_syslog_inputs(fleet, scenario):
    """ship1 runs ``logpipe ship`` with syslog TCP and UDP listeners (the spool on, as by default; two batches of
    100 lines in memory); rsyslogd on ship1 forwards an application's lines over TCP (omfwd, octet-counted) and a
    Python application sends UDP datagrams. ship1's link goes down while both send many times what the agent
    holds in memory: every line goes to the spool. During the cut the agent is killed with -9 once everything
    sent so far is spooled (plain TCP has no acknowledgement: "acknowledged" is "read off the socket"); rsyslogd
    holds what comes while the agent is gone and sends it to the restarted agent, which sends its recovered
    spool first. After healing every line is stored exactly once, the TCP lines in the order they were sent,
    and the ledger (one source per listener run) shows zero gaps."""
    s, net = scenario, fleet.net
    fleet.settled(s.clock)
    host = SyslogHost(s)
    host.start_agent()
    host.start_rsyslog()
    s.index("ix1")
    drops_before = host.kernel_udp_drops()
    host.send("tcp", 500)
    host.send_udp(500)
    host.all_received("the first lines spooled")
    s.clock.until("the first lines confirmed (the spool empty)", lambda: host.spool_bytes() == 0, step=0.25)

    net.cut("ship1")
    cut_at = time.monotonic()
    host.send("tcp", 8000)
    host.send_udp(3000)
    host.all_received("the agent to spool every line sent while cut off")
    s.clock.until("ship1 to see the broker down", lambda: host.status().get("broker") == "down")
    first_run = host.received()    # the first run's records: ledger source one, 0..first_run-1
    spool_at_kill = host.spool_bytes()
    s.shippers["ship1"].kill()
    s.shippers["ship1"].wait(10)

    host.base = first_run          # the restarted run receives only what comes after
    host.send("tcp", 4000)         # the agent away: rsyslogd holds these (action retried) until it is back
    host.start_agent()
    s.clock.until("the restarted agent to recover its spool", lambda: "event=syslog_spool_recovered" in s.output("ship1"))
    host.all_received("rsyslogd's held lines spooled by the restarted agent")
    recovered = int(re.search(r"event=syslog_spool_recovered.*?unconfirmed_lines=(\d+)", s.output("ship1")).group(1))
    assert recovered == first_run - 1000, "the kill -9 lost spooled lines (all but the 1,000 confirmed before the cut)"
    host.send("tcp", 8000)
    host.send_udp(3000)
    host.all_received("every line sent while cut off spooled")
    s.clock.until("a status written after the last line", lambda: host.received() == host.total() - host.base)
    peak = host.spool_bytes()
    assert host.status().get("broker") == "down" and peak > spool_at_kill
    lines_cut = host.total() - 1000

    net.heal("ship1")
    healed_at = time.monotonic()
    wall = time.time()
    s.clock.until("ship1's spool drained to the broker", lambda: (
        lambda st: st.get("updated", 0) > wall and host.spool_bytes() == 0)(host.status()), step=0.25)
    catch_up = time.monotonic() - healed_at
    cut_for = healed_at - cut_at
    host.send("tcp", 500)
    host.send_udp(500)
    second_run = host.total() - first_run
    udp_dropped = int(host.status().get("totals", {}).get("dropped", 0))
    kernel_drops = host.kernel_udp_drops() - drops_before

    s.finish(expected=host.expected(), ledger_upto=[first_run - 1, second_run - 1],
             **{"TCP lines (rsyslogd)": host.sent["tcp"], "UDP lines": host.sent["udp"],
                "lines sent while cut": lines_cut, "ship1 cut for s": f"{cut_for:.1f}",
                "spool bytes at the kill -9": spool_at_kill, "lines recovered from the spool at restart": recovered,
                "spool bytes at peak": peak,
                "caught up after healing s": f"{catch_up:.1f}", "UDP dropped (agent)": udp_dropped,
                "UDP receive-buffer errors (kernel)": kernel_drops})
    assert udp_dropped == 0 and kernel_drops == 0

    # the TCP lines in the order sent: by listener run (in the order the runs began), then by the run's sequence
    runs: dict[str, list[tuple[int, int]]] = {}
    for hit in s.hits(["message", "offset"]):
        text = hit["_source"]["message"]
        if " tcp line " in text:
            runs.setdefault(hit["_id"].rpartition("-")[0], []).append((int(hit["_source"]["offset"]),
                                                                      int(text.rsplit(" ", 1)[1])))
    order = [line for run in sorted(runs.values(), key=lambda run: min(line for _, line in run)) for _, line in sorted(run)]
    assert len(runs) == 2 and order == list(range(host.sent["tcp"])), "TCP lines out of order"
