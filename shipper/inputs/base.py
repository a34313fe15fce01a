"""The interface every input implements, and how the agent finds them.

An input produces :class:`Chunk` s: encoded records plus an ``ack`` callback that the agent calls
once the broker confirmed them (that is when a file input moves its stored offset). Inputs never
block: ``poll`` returns what is ready now. Adding an input is one new module with a subclass of
:class:`Input` and one line in :data:`KINDS`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Protocol

from logpipe.common.errors import ConfigError
from logpipe.shipper.framing import Framed
from logpipe.shipper.registry import Registry

# input kind -> "module:Class", imported only when used
KINDS: dict[str, str] = {
    "file": "logpipe.shipper.inputs.file:FileInput",
    "stdin": "logpipe.shipper.inputs.stdin:StdinInput",
    "syslog": "logpipe.shipper.inputs.syslog:SyslogInput",
}


@dataclass
class Chunk:
    values: list[bytes] | Framed         # encoded records, in order (Framed: ready for the wire)
    nbytes: int = 0                      # source bytes consumed (for statistics)
    ack: Callable[[], None] | None = None  # run after the broker confirmed ``values``
    source: str = ""                     # for per-source statistics


class EventLog(Protocol):
    """What inputs log through (shipper.log.Log): an event name plus key=value fields."""

    def info(self, event: str, **fields: object) -> None: ...

    def warning(self, event: str, **fields: object) -> None: ...


@dataclass
class Context:
    """What inputs get from the agent."""
    host: str
    registry: Registry
    log: EventLog
    once: bool = False
    stats: dict = field(default_factory=dict)


class Input(ABC):
    kind: ClassVar[str] = ""

    def __init__(self, spec, ctx: Context):
        self.spec = spec
        self.ctx = ctx

    def start(self) -> None:
        """Open files, bind sockets. Raise :class:`ConfigError` for user mistakes."""

    @abstractmethod
    def poll(self, max_lines: int, now: float) -> list[Chunk]:
        """Records ready now, at most about ``max_lines``; never blocks."""

    def expire(self, now: float) -> list[Chunk]:
        """Records held back by a timer (multiline events whose flush timeout passed)."""
        return []

    def flush(self, now: float) -> list[Chunk]:
        """Everything still held (called once before a clean exit)."""
        return []

    @property
    def done(self) -> bool:
        """True when the input has nothing more to give (stdin at EOF, files in --once mode)."""
        return False

    def stop(self) -> None:
        """Release files and sockets."""

    def status(self) -> list[dict]:
        """Per-source figures for the status file."""
        return []


def input_class(kind: str, where: str = "input", source: str | None = None,
                line: int | None = None) -> type[Input]:
    spec = KINDS.get(kind)
    if spec is None:
        raise ConfigError(f"{where}: unknown input {kind!r} (use one of {', '.join(KINDS)})",
                          source, line)
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)
