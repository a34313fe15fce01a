"""Joining continuation lines into one event (Filebeat's model).

``pattern`` is a regular expression tried on every line; ``negate`` inverts the result; a line is a
*continuation* when ``matches != negate``.

* ``match = "after"``: continuation lines are appended to the line before them
  (Java stack traces: ``pattern = '^\\s'``; or ``pattern = '^\\d{4}-', negate = true``).
* ``match = "before"``: continuation lines are prepended to the next line that is not one
  (lines ending with a backslash: ``pattern = '\\\\$'``).

An event is bounded by ``max_lines`` and ``max_bytes``: a line that would exceed either starts a new
event (the event before is tagged ``multiline_split``; nothing is dropped). An event is flushed
when no line arrived for ``timeout`` seconds, so the last event of a quiet file is not held forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from logpipe.common.errors import ConfigError

# a finished event: (offset of its first line, its lines joined by newlines, tags)
Event = tuple[int, bytes, tuple[str, ...]]


@dataclass
class MultilineSpec:
    pattern: str
    negate: bool = False
    match: str = "after"
    max_lines: int = 500
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 5.0

    def validate(self, where: str = "multiline", source: str | None = None,
                 line: int | None = None) -> "MultilineSpec":
        if self.match not in ("after", "before"):
            raise ConfigError(f"{where}.match must be 'after' or 'before', not {self.match!r}",
                              source, line)
        try:
            re.compile(self.pattern.encode("utf-8"))
        except re.error as exc:
            raise ConfigError(f"{where}.pattern {self.pattern!r} is not a valid regular "
                              f"expression: {exc}", source, line) from None
        if self.max_lines < 1 or self.max_bytes < 1 or self.timeout <= 0:
            raise ConfigError(f"{where}: max_lines, max_bytes and timeout must be positive",
                              source, line)
        return self


class Multiline:
    """Feed ``(offset, line)``; get back finished events ``(offset, text_bytes, tags)``."""

    def __init__(self, spec: MultilineSpec):
        self.spec = spec
        self._search = re.compile(spec.pattern.encode("utf-8")).search
        self._negate = spec.negate
        self._after = spec.match == "after"
        self.lines: list[bytes] = []
        self.start = 0        # offset of the first pending line; meaningful while pending
        self._bytes = 0
        self.last = 0.0

    @property
    def pending(self) -> bool:
        return bool(self.lines)

    def _take(self, tags: tuple[str, ...] = ()) -> Event:
        event = (self.start, b"\n".join(self.lines), tuple(tags))
        self.lines, self.start, self._bytes = [], 0, 0
        return event

    def _add(self, offset: int, line: bytes) -> None:
        if not self.lines:
            self.start = offset
        self.lines.append(line)
        self._bytes += len(line) + 1

    def _full(self, line: bytes) -> bool:
        return (len(self.lines) >= self.spec.max_lines
                or self._bytes + len(line) > self.spec.max_bytes)

    def feed(self, offset: int, line: bytes, now: float) -> list[Event]:
        self.last = now
        cont = (self._search(line) is not None) != self._negate
        out: list[Event] = []
        if self._after:
            if cont and self.lines:
                if self._full(line):
                    out.append(self._take(("multiline_split",)))
                self._add(offset, line)
            else:
                if self.lines:
                    out.append(self._take())
                self._add(offset, line)
        else:
            if self.lines and self._full(line):
                out.append(self._take(("multiline_split",)))
            self._add(offset, line)
            if not cont:
                out.append(self._take())
        return out

    def expire(self, now: float, force: bool = False) -> list[Event]:
        if self.lines and (force or now - self.last >= self.spec.timeout):
            return [self._take()]
        return []
