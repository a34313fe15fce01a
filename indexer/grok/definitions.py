"""Named grok definitions and the Logstash-format pattern files they are read from.

A pattern file holds one definition per line, ``NAME regex``; blank lines and lines starting
with ``#`` are ignored. The built-in set is every ``patterns/*.grok`` file shipped with this
package. (:mod:`indexer.grok.library` layers them; :mod:`indexer.grok.ecs` renames them.)
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from logpipe.common.errors import GrokError

BUILTIN_DIR = Path(__file__).resolve().parent / "patterns"

NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # a pattern's name
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
        if not NAME.fullmatch(name):
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
