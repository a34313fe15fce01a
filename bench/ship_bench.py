"""Shipper throughput and memory.

1. Writes a 1,000,000-line mail log (``services.loggen``, or simple lines if it is missing).
2. Starts a local Valkey (ValkeyServer) and measures the floor: the same lines, pre-read, pushed
   by a bare pipelined ``RPUSH key *chunk`` loop from the same redis-py client (chunks of 5,000).
   A second floor frames the same raw lines with the shipper's own RESP packer, for reference.
3. Runs the agent as a subprocess, ``logpipe ship --once FILE``, timed from start to exit
   (process start-up included), and takes its peak RSS from wait4().
4. Runs the agent following 100 files (not --once), waits until every line is on the list,
   stops it with SIGTERM and reports its peak RSS.

    .venv/bin/python bench/ship_bench.py [--lines 1000000] [--files 100]
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

from common.broker import connect  # noqa: E402
from services import loggen  # noqa: E402
from services.valkey import ValkeyServer  # noqa: E402

LOGPIPE = str(ROOT / ".venv" / "bin" / "logpipe")
KEY = "logpipe:raw"


def write_lines(path: Path, n: int, seed: int = 1) -> None:
    with open(path, "w", encoding="utf-8") as out:
        loggen.write_lines(loggen.generate("mail", n, seed), out)


def floor(client, lines: list[bytes], chunk: int = 5000) -> float:
    client.delete(KEY)
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
    from shipper.sender import Sender
    sender = Sender(url, KEY)
    sender.client.delete(KEY)
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


def run_agent(args: list[str], env: dict, registry: Path) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS in KiB) of one agent run."""
    t = time.perf_counter()
    proc = subprocess.Popen([LOGPIPE, "ship", "--registry", str(registry), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, vm_hwm(proc.pid))
        time.sleep(0.05)
    return proc.returncode, time.perf_counter() - t, agent_peak(registry, peak)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--lines-per-file", type=int, default=2000)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ship-bench-") as tmp, ValkeyServer() as server:
        tmp = Path(tmp)
        big = tmp / "big.log"
        write_lines(big, a.lines)
        size = big.stat().st_size
        client = connect(server.url)
        lines = big.read_bytes().split(b"\n")[:-1]
        f_redis = floor(client, lines)
        f_resp = floor_resp(server.url, lines)
        del lines
        env = {**os.environ, "LOGPIPE_HOME": str(tmp / "home"), "LOGPIPE_REDIS_URL": server.url}
        code, dt, rss = run_agent(["--once", "--high-water", "0", str(big)], env,
                                  tmp / "reg1.json")
        pushed = client.llen(KEY)
        assert code == 0 and pushed == a.lines, (code, pushed)
        rate = a.lines / dt
        client.delete(KEY)

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
    print(f"input: {a.lines:,} lines, {mb:.0f} MB (mail log)")
    print(f"floor (redis-py pipelined RPUSH of the raw lines, 5000/call): {f_redis:>10,.0f} lines/s")
    print(f"floor (same raw lines, shipper's RESP framing)               : {f_resp:>10,.0f} lines/s")
    print(f"shipper (logpipe ship --once, subprocess, start-up included) : {rate:>10,.0f} lines/s"
          f"  ({mb / dt:.0f} MB/s, {dt:.2f} s)")
    print(f"ratio vs redis-py floor: {rate / f_redis:.2f}   (target >= 0.5)")
    print(f"ratio vs RESP floor    : {rate / f_resp:.2f}")
    print(f"ratio vs 200,000 lines/s target: {rate / 200_000:.2f}")
    print(f"peak RSS, 1M-line --once run: {rss / 1024:.1f} MB")
    print(f"peak RSS following {a.files} files ({total:,} lines, all shipped: {follow_ok}): "
          f"{follow_rss / 1024:.1f} MB   (target < 100 MB, ratio {follow_rss / 1024 / 100:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
