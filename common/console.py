"""Output for people and for pipes: rich on a terminal, plain ``key=value`` lines otherwise."""

from __future__ import annotations

import sys
import time


def interactive(stream=None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def kv_line(event: str, **fields) -> str:
    """``ts=... event=... k=v`` with values quoted only when they contain spaces."""
    parts = [f"ts={time.strftime('%Y-%m-%dT%H:%M:%S')}", f"event={event}"]
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def emit(event: str, **fields) -> None:
    """One structured status line on stderr."""
    print(kv_line(event, **fields), file=sys.stderr, flush=True)
