# The C module indexer/grok/_pcre.c (built where libpcre2's headers are; see native.py).
from typing import Callable

MULTILINE: int
IGNORECASE: int
DOTALL: int
VERBOSE: int
VERSION: str
JIT: int

class Pattern:
    group_count: int
    jit: bool
    def __init__(self, pattern: str, flags: int,
                 fallback: Callable[[str], tuple | None]) -> None: ...
    def groups(self, line: str) -> tuple | None: ...
    def captures(self, line: str) -> dict | None: ...
    def set_fields(self, spec: tuple, converters: tuple) -> None: ...

class PatternSet:
    def __init__(self, entries: tuple, fallback: Callable[[str], tuple],
                 failure: str) -> None: ...
    def match(self, line: str) -> tuple: ...
