"""A fleet of test hosts in network namespaces: one bridge, one veth pair per host, partitions by
setting links down (a host alone), by moving hosts onto an island bridge (a group that still sees
itself but nothing else) or by blocking the paths between given hosts only (neighbour entries to a
MAC no host has), healed by the reverse. Needs root and ``ip netns``.

Everything made is named with one random tag and removed by :meth:`Net.close`, which the fixture
runs even when the test fails: every process still in one of the namespaces is killed (they are
all the test's own), the namespaces and the bridges are deleted. Addresses are 10.77.N.0/24 with
N chosen free on this machine; traffic goes only between the test's own namespaces and the bridge
address the test process uses to reach them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def unavailable() -> str | None:
    """Why the fleet cannot run here, or None."""
    if os.geteuid() != 0:
        return "the fleet tests need root (network namespaces, veth pairs, a bridge)"
    tag = "fl26chk" + secrets.token_hex(2)
    try:
        r = _ip("netns", "add", tag, check=False)
        if r.returncode != 0:
            return f"ip netns is not available here: {r.stderr.strip()}"
        _ip("netns", "del", tag, check=False)
        r = _ip("link", "add", tag, "type", "bridge", check=False)
        if r.returncode != 0:
            return f"cannot make a bridge here: {r.stderr.strip()}"
        _ip("link", "del", tag, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip is not usable here: {exc}"
    return None


class Net:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        used = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
        subnet = next(n for n in range(77, 250) if f"10.77.{n}." not in used)
        self.base = f"10.77.{subnet}"
        self.bridge = f"f26b{self.tag}"
        self.island = f"f26i{self.tag}"
        self.hosts: dict[str, tuple[str, str, str]] = {}  # name -> (netns, root-side veth, address)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("link", "add", self.island, "type", "bridge")
        _ip("addr", "add", f"{self.base}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _ip("link", "set", self.island, "up")

    def add(self, name: str) -> str:
        """A host: its namespace on the bridge; returns its address."""
        i = len(self.hosts) + 1
        ns, outer, inner = f"f26-{self.tag}-{name}", f"f26v{self.tag}{i}", f"f26p{self.tag}{i}"
        addr = f"{self.base}.{i}"
        _ip("netns", "add", ns)
        self.hosts[name] = (ns, outer, addr)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", inner, "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        return addr

    def ns(self, name: str) -> str:
        return self.hosts[name][0]

    def addr(self, name: str) -> str:
        return self.hosts[name][2]

    def cut(self, *names: str) -> None:
        """Each host alone: its link down."""
        for name in names:
            _ip("link", "set", self.hosts[name][1], "down")

    def heal(self, *names: str) -> None:
        for name in names:
            _ip("link", "set", self.hosts[name][1], "up")

    def isolate_together(self, *names: str) -> None:
        """These hosts see each other and nothing else (the test process neither)."""
        for name in names:
            _ip("link", "set", self.hosts[name][1], "master", self.island)

    def rejoin(self, *names: str) -> None:
        for name in names:
            _ip("link", "set", self.hosts[name][1], "master", self.bridge)

    # a MAC no host has: frames to it are flooded by the bridge and dropped by every host (a silent drop)
    NOWHERE = "02:00:00:00:26:26"

    def block(self, name: str, *others: str) -> None:
        """``name`` and each of ``others`` stop reaching each other (both ways), every other path stays: each
        side's neighbour entry for the other points at a MAC no host has, so packets vanish silently as on a
        real partition (no reset, no error; the machine has no iptables and no tc netem)."""
        for other in others:
            for a, b in ((name, other), (other, name)):
                _ip("-n", self.ns(a), "neigh", "replace", self.addr(b), "lladdr", self.NOWHERE, "dev", "eth0",
                    "nud", "permanent")

    def unblock(self, name: str, *others: str) -> None:
        for other in others:
            for a, b in ((name, other), (other, name)):
                _ip("-n", self.ns(a), "neigh", "del", self.addr(b), "dev", "eth0", check=False)

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name)]

    def close(self) -> None:
        for ns, outer, _ in self.hosts.values():
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("link", "del", outer, check=False)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
        _ip("link", "del", self.island, check=False)
