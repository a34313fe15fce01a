"""Output for people and for pipes: rich on a terminal, plain ``key=value`` lines otherwise."""

from __future__ import annotations

import re
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


# --------------------------------------------------------------------- terminal-safe text
# Log lines are other people's bytes: an escape sequence in one (CSI, OSC 8 links, OSC 52
# clipboard writes, a title change) must reach a terminal as visible text, never as a command.
# Every C0 control (tab, CR and LF included: a value stays on its line), DEL and C1 control
# is shown escaped, the same on a terminal and in a pipe.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# JSON escapes C0 itself (orjson and json.dumps both do) but may leave DEL and C1 raw: as
# \u escapes the document stays the same JSON value
_JSON_UNSAFE_RE = re.compile("[\x7f-\x9f]")
_JSON_UNSAFE_BYTES_RE = re.compile(b"\x7f|\xc2[\x80-\x9f]")  # the same characters in UTF-8


def _escape_control(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or f"\\x{ord(c):02x}"


def printable(text: str) -> str:
    """``text`` with every control character escaped visibly (``\\x1b``, ``\\n``)."""
    return _CONTROL_RE.sub(_escape_control, text) if _CONTROL_RE.search(text) else text


def printable_lines(text: str) -> str:
    """:func:`printable` line by line: a message's own line breaks stay."""
    return "\n".join(printable(line) for line in text.split("\n"))


def json_safe(text: str) -> str:
    """A JSON document with DEL and C1 controls as ``\\u`` escapes: the same JSON value."""
    if not _JSON_UNSAFE_RE.search(text):
        return text
    return _JSON_UNSAFE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_safe_bytes(data: bytes) -> bytes:
    """:func:`json_safe` for UTF-8 JSON bytes (orjson's output)."""
    if not _JSON_UNSAFE_BYTES_RE.search(data):
        return data
    return _JSON_UNSAFE_BYTES_RE.sub(
        lambda m: b"\\u%04x" % ord(m.group().decode("utf-8")), data)
