"""Pattern libraries: named grok definitions read from Logstash-format pattern files
(:mod:`indexer.grok.definitions`).

A :class:`Library` layers, in order of precedence (later wins, as in Logstash): the
built-in files, the files of each ``patterns_dir``, then inline definitions.
"""

from __future__ import annotations

from logpipe.common.errors import GrokError
from logpipe.indexer.grok.definitions import (BUILTIN_DIR, NAME, Definition, builtin_definitions,
                                               load_pattern_dir, load_pattern_file,
                                               parse_pattern_text)

# what other modules import from here
__all__ = ["BUILTIN_DIR", "Definition", "Library", "build_library", "builtin_definitions",
           "load_pattern_dir", "load_pattern_file", "parse_pattern_text"]


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
        if not NAME.fullmatch(name):
            raise GrokError(f"invalid pattern name {name!r} in pattern_definitions", path=source)
        user[name] = Definition(name, regex, source or "<pattern_definitions>", None)
    return Library(user, ecs=ecs)
