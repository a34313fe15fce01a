"""Structured logs for the agent: rich on a terminal, plain ``key=value`` lines when piped.

One event name per line plus fields, e.g.::

    ts=2025-01-01T12:00:00.123Z level=warning event=broker_down url=redis://:***@b:6379/0 error="..."
"""

from __future__ import annotations

import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _fmt_value(value) -> str:
    if isinstance(value, float):
        value = f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    text = str(value)
    if not text or any(c in text for c in ' "=\t\n'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class Log:
    def __init__(self, stream=None, level: str = "info", rich: bool | None = None):
        self.stream = stream or sys.stderr
        self.level = LEVELS.get(level, 20)
        if rich is None:
            rich = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._console = None
        if rich:
            from rich.console import Console  # only on a terminal
            self._console = Console(file=self.stream, highlight=False, soft_wrap=True)

    def log(self, level: str, event: str, **fields) -> None:
        if LEVELS[level] < self.level:
            return
        now = time.time()
        kv = " ".join(f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None)
        if self._console is not None:
            from rich.markup import escape
            style = {"debug": "dim", "info": "green", "warning": "yellow", "error": "bold red"}[level]
            stamp = time.strftime("%H:%M:%S", time.localtime(now))
            self._console.print(f"[dim]{stamp}[/dim] [{style}]{level:<7}[/{style}] "
                                f"[bold]{escape(event)}[/bold] {escape(kv)}")
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        try:
            self.stream.write(f"ts={stamp} level={level} event={event}" + (f" {kv}" if kv else "") + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def debug(self, event: str, **fields) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields) -> None:
        self.log("error", event, **fields)
