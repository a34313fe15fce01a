"""The status file the running agent writes, and ``logpipe ship --status`` that reads it.

The agent rewrites ``<registry>.status.json`` every couple of seconds (atomic rename, no fsync):
its pid, broker state, totals and rates, and per source the confirmed offset, size and lag.
``--status`` combines it with the registry and the files' current sizes, so lag is right even
when the agent is not running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from logpipe.shipper.registry import read_registry


NAME_MAX = 160  # characters; `logpipe stats` treats names over 256 bytes as invalid


def shipper_name(host: str, inputs) -> str:
    """How ``logpipe stats`` and the health page name an agent: its host and what it reads,
    e.g. ``mail1: /var/log/maillog, syslog udp://:5514`` (its key in the shippers' hash, so a
    restarted agent with the same inputs replaces its own entry)."""
    import hashlib

    parts: list[str] = []
    for spec in inputs:
        if spec.input == "file":
            parts.extend(os.path.abspath(p) for p in spec.paths)
        elif spec.input == "syslog":
            parts.append("syslog " + " ".join(spec.listen))
        else:
            parts.append(spec.input)
    name = f"{host}: {', '.join(parts)}"
    if len(name.encode()) > NAME_MAX:  # a long list of files: cut, kept distinct by a digest
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name.encode()[:NAME_MAX - 16].decode("utf-8", "ignore") + f"... +{digest}"
    return name


def status_path(registry: Path) -> Path:
    return registry.with_name(registry.name + ".status.json")


def write_status(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except OSError:
        pass


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def collect(registry: Path) -> dict:
    """Everything ``--status`` shows, as data (also used by tests)."""
    st_path = status_path(registry)
    try:
        status = orjson.loads(st_path.read_bytes())
    except (OSError, ValueError):
        status = {}
    entries = read_registry(registry)
    live = {f.get("id"): f for f in status.get("sources", []) if f.get("id")}
    files = []
    for key, e in entries.items():
        try:
            size = os.stat(e["path"]).st_size
        except OSError:
            size = None
        row = {"path": e["path"], "id": key, "offset": e["offset"], "size": size,
               "lag": None if size is None else max(0, size - e["offset"]),
               "updated": e.get("updated")}
        src = live.get(key, {})
        for k in ("lines", "bytes", "lines_per_s", "state"):
            if k in src:
                row[k] = src[k]
        files.append(row)
    for src in status.get("sources", []):
        if not src.get("id"):
            files.append(dict(src))
    running = bool(status) and _alive(status.get("pid"))
    return {"registry": str(registry), "running": running, "agent": status, "files": files}


def render(info: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200), soft_wrap=True)
    agent = info["agent"]
    if not agent:
        console.print(f"no status file next to {info['registry']} (the agent never ran with it)")
    else:
        age = time.time() - agent.get("updated", 0)
        state = "running" if info["running"] else "not running"
        console.print(f"agent pid {agent.get('pid')}: [bold]{state}[/bold] "
                      f"(status written {age:.0f}s ago), broker {agent.get('broker', '?')}"
                      f"{', PAUSED (backpressure)' if agent.get('paused') else ''}")
        t = agent.get("totals", {})
        console.print(f"shipped {t.get('lines', 0):,} lines, {_size(t.get('bytes', 0))}; "
                      f"{t.get('lines_per_s', 0):,.0f} lines/s, "
                      f"{_size(t.get('bytes_per_s', 0))}/s over the last interval; "
                      f"list length {agent.get('list_length', '?')}")
        if t.get("dropped"):
            console.print(f"[bold]DROPPED {t['dropped']:,} UDP syslog datagrams[/bold] (the spool was full)")
    table = Table("path", "offset", "size", "lag", "lines", "lines/s", "state")
    for f in info["files"]:
        table.add_row(str(f.get("path")), f"{f.get('offset', '')}",
                      "" if f.get("size") is None else _size(f["size"]),
                      "" if f.get("lag") is None else _size(f["lag"]),
                      f"{f.get('lines', '')}", f"{f.get('lines_per_s', '')}",
                      str(f.get("state", "")))
    console.print(table)
