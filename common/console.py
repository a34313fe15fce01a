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


class Progress:
    """A long-running command's figures: a live line on a terminal, ``key=value`` lines in a pipe.

    ``update()`` may be called often; a pipe gets at most one line per ``every`` seconds.
    """

    def __init__(self, event: str, every: float = 5.0):
        self.event = event
        self.every = every
        self._last = 0.0
        self._live = None
        if interactive():
            from rich.console import Console
            from rich.live import Live
            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.start()

    def update(self, **fields) -> None:
        if self._live is not None:
            from rich.text import Text
            self._live.update(Text(f"{self.event.replace('_', ' ')}: " + " · ".join(
                f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else
                f"{k.replace('_', ' ')} {v}" for k, v in fields.items())))
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            emit(self.event, **fields)

    def close(self, event: str | None = None, **fields) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        emit(event or self.event, **fields)
