"""Pattern libraries: named grok definitions read from Logstash-format pattern files.

A pattern file holds one definition per line, ``NAME regex``; blank lines and lines starting
with ``#`` are ignored. The built-in library is every ``patterns/*.grok`` file shipped with this
package. A :class:`Library` layers, in order of precedence (later wins, as in Logstash): the
built-in files, the files of each ``patterns_dir``, then inline definitions.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from logpipe.common.errors import GrokError

BUILTIN_DIR = Path(__file__).resolve().parent / "patterns"

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_LINE = re.compile(r"([^\s#]\S*)[ \t]+(.*)")


@dataclass(frozen=True, slots=True)
class Definition:
    """One named pattern and where it came from (for error messages)."""

    name: str
    regex: str
    path: str | None = None
    line: int | None = None
    builtin: bool = False


def parse_pattern_text(text: str, path: str = "<patterns>", builtin: bool = False
                       ) -> dict[str, Definition]:
    """Parse the text of a pattern file; a malformed line raises GrokError naming file and line."""
    defs: dict[str, Definition] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.fullmatch(line.lstrip())
        if m is None:
            raise GrokError(f"expected 'NAME regex', got {stripped!r}", path=path, line=number)
        name, regex = m.group(1), m.group(2)
        if not _NAME.fullmatch(name):
            raise GrokError(f"invalid pattern name {name!r} (use letters, digits, '_', '.', '-')",
                            path=path, line=number)
        if not regex.strip():
            raise GrokError(f"pattern {name} has an empty definition", path=path, line=number)
        defs[name] = Definition(name, regex, path, number, builtin)
    return defs


def load_pattern_file(path: str | os.PathLike, builtin: bool = False) -> dict[str, Definition]:
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise GrokError(f"pattern file is not UTF-8 text ({exc.reason})", path=path) from None
    except OSError as exc:
        raise GrokError(f"cannot read pattern file: {exc.strerror}", path=path) from None
    return parse_pattern_text(text, path, builtin)


def load_pattern_dir(path: str | os.PathLike) -> dict[str, Definition]:
    """Every regular file of a directory (sorted by name), or a single file, like Logstash."""
    p = Path(path)
    if p.is_file():
        return load_pattern_file(p)
    if not p.is_dir():
        raise GrokError("patterns_dir does not exist or is not a directory", path=str(p))
    defs: dict[str, Definition] = {}
    for child in sorted(p.iterdir()):
        if child.is_file() and not child.name.startswith("."):
            defs.update(load_pattern_file(child))
    return defs


@functools.lru_cache(maxsize=1)
def builtin_definitions() -> dict[str, Definition]:
    defs: dict[str, Definition] = {}
    for path in sorted(BUILTIN_DIR.glob("*.grok")):
        defs.update(load_pattern_file(path, builtin=True))
    return defs


class Library:
    """Name -> Definition lookup with user overrides on top of the built-in set."""

    def __init__(self, user: dict[str, Definition] | None = None, include_builtin: bool = True,
                 ecs: bool = False):
        self.user = dict(user or {})
        if include_builtin and ecs:
            from logpipe.indexer.grok.ecs import ecs_builtin_definitions
            builtin = ecs_builtin_definitions()
        else:
            builtin = builtin_definitions() if include_builtin else {}
        self.defs = {**builtin, **self.user}

    def get(self, name: str) -> Definition | None:
        return self.defs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.defs

    def names(self) -> list[str]:
        return sorted(self.defs)


def build_library(definitions: dict[str, str] | None = None,
                  patterns_dirs: list[str] | tuple[str, ...] | None = None,
                  source: str | None = None, ecs: bool = False) -> Library:
    """Built-ins, then each patterns_dir (in order), then inline definitions."""
    user: dict[str, Definition] = {}
    for d in patterns_dirs or ():
        user.update(load_pattern_dir(d))
    for name, regex in (definitions or {}).items():
        if not _NAME.fullmatch(name):
            raise GrokError(f"invalid pattern name {name!r} in pattern_definitions", path=source)
        user[name] = Definition(name, regex, source or "<pattern_definitions>", None)
    return Library(user, ecs=ecs)
