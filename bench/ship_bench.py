"""Shipper throughput and memory.

1. Writes a 1,000,000-line mail log (``services.loggen``, or simple lines if it is missing).
2. Starts a local Valkey (ValkeyServer) and measures two floors with the same lines, pre-read:
   a bare pipelined ``RPUSH key *chunk`` loop from the same redis-py client (chunks of 5,000), and
   the same raw lines framed by the shipper's own RESP packer (``shipper.sender.Sender.push``).
3. Runs the agent as a subprocess, ``logpipe ship --once --high-water 0 FILE``, timed from start to
   exit (process start-up included), with its CPU time (user + system, from wait4) and peak RSS;
   and once on a one-line file: the fixed cost of starting (imports, option parsing, connecting).
   The agent's own packages are byte-compiled first, as ``pip install`` does for an installed agent
   (this checkout is an editable install, and PYTHONDONTWRITEBYTECODE may be set: without it every
   start would compile ~30 modules from source, ~45 ms here; ``--no-bytecode`` measures that).
4. Runs the agent following 100 files (not --once), waits until every line is on the list,
   stops it with SIGTERM and reports its peak RSS.

Issue 14's targets: the shipper at >= 0.5 of the RESP floor and >= 0.57 of the RPUSH floor, both
measured in the same run (the machine is shared: compare ratios, not absolute rates). The floors and
the shipper are measured ``--rounds`` times (3), interleaved; each round's ratios are printed, then the
medians (the first round is usually the worst: the broker grows its memory for the first time).

    .venv/bin/python bench/ship_bench.py [--lines 1000000] [--files 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logpipe.common.broker import connect  # noqa: E402
from logpipe.services import loggen  # noqa: E402
from logpipe.services.valkey import ValkeyServer  # noqa: E402

LOGPIPE = str(ROOT / ".venv" / "bin" / "logpipe")
AGENT_PACKAGES = ("common", "shipper", "query")  # what `logpipe ship` imports from this checkout
KEY = "logpipe:raw"


def write_lines(path: Path, n: int, seed: int = 1) -> None:
    with open(path, "w", encoding="utf-8") as out:
        loggen.write_lines(loggen.generate("mail", n, seed), out)


def broker_idle(client, timeout: float = 30.0) -> None:
    """Wait until the broker has freed what the last measurement left (DEL frees a list in a background
    thread, which would take CPU from the next measurement on these two cores)."""
    deadline = time.monotonic() + timeout
    while client.info("memory").get("lazyfree_pending_objects", 0) and time.monotonic() < deadline:
        time.sleep(0.02)


def floor(client, lines: list[bytes], chunk: int = 5000) -> float:
    client.delete(KEY)
    broker_idle(client)
    t = time.perf_counter()
    for i in range(0, len(lines), chunk):
        pipe = client.pipeline(transaction=False)
        pipe.rpush(KEY, *lines[i:i + chunk])
        pipe.execute()
    dt = time.perf_counter() - t
    assert client.llen(KEY) == len(lines)
    client.delete(KEY)
    return len(lines) / dt


def floor_resp(url: str, lines: list[bytes], chunk: int = 5000) -> float:
    from logpipe.shipper.sender import Sender
    sender = Sender(url, KEY)
    sender.client.delete(KEY)
    broker_idle(sender.client)
    t = time.perf_counter()
    for i in range(0, len(lines), chunk):
        sender.push(lines[i:i + chunk])
    dt = time.perf_counter() - t
    assert sender.client.llen(KEY) == len(lines)
    sender.client.delete(KEY)
    sender.close()
    return len(lines) / dt


def vm_hwm(pid: int) -> int:
    """VmHWM (peak RSS, KiB) of a live process; 0 once it is gone. (wait4's ru_maxrss is no
    use here: after fork+exec it still counts the parent's memory.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def agent_peak(registry: Path, sampled: int) -> int:
    """The agent writes its own VmHWM into its status file when it exits."""
    import json
    try:
        st = json.loads(registry.with_name(registry.name + ".status.json").read_text())
        return max(sampled, int(st.get("rss_peak_kb") or 0))
    except (OSError, ValueError):
        return sampled


def run_agent(args: list[str], env: dict, registry: Path) -> tuple[int, float, int, float]:
    """(exit code, wall seconds, peak RSS in KiB, CPU seconds: user + system) of one agent run."""
    t = time.perf_counter()
    proc = subprocess.Popen([LOGPIPE, "ship", "--registry", str(registry), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, vm_hwm(proc.pid))
        time.sleep(0.01)
    dt = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, dt, agent_peak(registry, peak), usage.ru_utime + usage.ru_stime


def ship_once(client, env: dict, path: Path, registry: Path, expect: int) -> tuple[float, int, float]:
    """One ``ship --once`` of ``path`` into an empty list: (wall seconds, peak RSS KiB, CPU seconds)."""
    client.delete(KEY)
    for old in registry.parent.glob(registry.name + "*"):
        old.unlink()
    broker_idle(client)
    code, dt, rss, cpu = run_agent(["--once", "--high-water", "0", str(path)], env, registry)
    pushed = client.llen(KEY)
    assert code == 0 and pushed == expect, (code, pushed)
    client.delete(KEY)
    return dt, rss, cpu


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--lines-per-file", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="floors and shipper, interleaved, N times")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="do not byte-compile the agent's packages first (start-up compiles them from source)")
    a = ap.parse_args()

    if not a.no_bytecode:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *AGENT_PACKAGES], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="ship-bench-") as tmp, ValkeyServer() as server:
        tmp = Path(tmp)
        big = tmp / "big.log"
        write_lines(big, a.lines)
        size = big.stat().st_size
        client = connect(server.url)
        lines = big.read_bytes().split(b"\n")[:-1]
        env = {**os.environ, "LOGPIPE_HOME": str(tmp / "home"), "LOGPIPE_REDIS_URL": server.url}
        one = tmp / "one.log"
        one.write_text("one line\n")
        start_wall, _, start_cpu = ship_once(client, env, one, tmp / "reg0.json", 1)
        rounds = []
        for r in range(a.rounds):
            f_redis = floor(client, lines)
            f_resp = floor_resp(server.url, lines)
            dt, rss, cpu = ship_once(client, env, big, tmp / "reg1.json", a.lines)
            rate = a.lines / dt
            rounds.append((f_redis, f_resp, rate, dt, cpu, rss))
            if a.rounds > 1:
                print(f"round {r + 1}: RPUSH floor {f_redis:,.0f}, RESP floor {f_resp:,.0f}, shipper "
                      f"{rate:,.0f} lines/s ({dt:.2f} s, {cpu:.2f} CPU s): ratio vs RESP floor "
                      f"{rate / f_resp:.2f}, vs RPUSH floor {rate / f_redis:.2f}", flush=True)
        del lines

        # following many files: peak RSS of a long-running agent
        d = tmp / "many"
        d.mkdir()
        for i in range(a.files):
            write_lines(d / f"app{i:03d}.log", a.lines_per_file, seed=i)
        total = a.files * a.lines_per_file
        proc = subprocess.Popen([LOGPIPE, "ship", "--registry", str(tmp / "reg2.json"),
                                 str(d / "*.log")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        peak = 0
        while client.llen(KEY) < total and time.monotonic() < deadline:
            peak = max(peak, vm_hwm(proc.pid))
            time.sleep(0.1)
        follow_ok = client.llen(KEY) == total
        time.sleep(1.0)  # a few idle polls of all files
        peak = max(peak, vm_hwm(proc.pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        follow_rss = agent_peak(tmp / "reg2.json", peak)
        client.close()

    mb = size / 1e6
    f_redis, f_resp, rate, dt, cpu, rss = rounds[-1] if len(rounds) == 1 else (
        median([x[0] for x in rounds]), median([x[1] for x in rounds]), median([x[2] for x in rounds]),
        median([x[3] for x in rounds]), median([x[4] for x in rounds]), max(x[5] for x in rounds))
    r_resp = median([x[2] / x[1] for x in rounds])
    r_redis = median([x[2] / x[0] for x in rounds])
    label = "" if len(rounds) == 1 else f" (medians of {len(rounds)} rounds; ratios: median of same-round ratios)"
    print(f"input: {a.lines:,} lines, {mb:.0f} MB (mail log){label}")
    print(f"floor (redis-py pipelined RPUSH of the raw lines, 5000/call): {f_redis:>10,.0f} lines/s")
    print(f"floor (same raw lines, shipper's RESP framing)               : {f_resp:>10,.0f} lines/s")
    print(f"shipper (logpipe ship --once, subprocess, start-up included) : {rate:>10,.0f} lines/s"
          f"  ({mb / dt:.0f} MB/s, {dt:.2f} s, {cpu:.2f} CPU s = {cpu * 1e6 / a.lines:.2f} CPU us/line)")
    print(f"shipper start-up (ship --once of a one-line file)            : {start_wall * 1e3:>10,.0f} ms"
          f"  ({start_cpu * 1e3:.0f} ms CPU; agent modules "
          f"{'compiled from source' if a.no_bytecode else 'byte-compiled, as installed'})")
    print(f"ratio vs RESP floor : {r_resp:.2f}   (target >= 0.5)")
    print(f"ratio vs RPUSH floor: {r_redis:.2f}   (target >= 0.57)")
    print(f"peak RSS, 1M-line --once run: {rss / 1024:.1f} MB")
    print(f"peak RSS following {a.files} files ({total:,} lines, all shipped: {follow_ok}): "
          f"{follow_rss / 1024:.1f} MB   (target < 100 MB, ratio {follow_rss / 1024 / 100:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
