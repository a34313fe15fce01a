"""Matching lines against the grok patterns of one type.

:class:`Matcher` compiles its patterns once and tries them in order, first match wins. Two things
keep it fast without changing that rule:

* **Dispatch by required literals.** For each pattern the compiler works out substrings any
  matching line must contain (``sendmail`` or ``sm-mta``, ``: Milter ``, ``dovecot``...). A
  pattern whose literals are absent from the line cannot match, so it is skipped with a few
  ``in`` tests instead of a failing regex search (the expensive part: a failing unanchored search
  tries every start position). Skipping only patterns that cannot match keeps first-match-wins
  exact.
* **A cheap time budget.** ``regex``'s own ``timeout=`` costs about as much per call as a whole
  match of a short pattern, so in the main thread of a Unix process a CPU-time interval timer
  (``SIGVTALRM``, ticking every ``timeout/2``) plays watchdog: a line still being matched after
  two ticks is abandoned and tagged ``_groktimeout``. Elsewhere (other threads, no setitimer, or
  ``LOGPIPE_GROK_WATCHDOG=0``) each search gets ``timeout=``.
"""

from __future__ import annotations

import atexit
from itertools import compress
from operator import is_not, itemgetter
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from logpipe.common.errors import GrokError
from logpipe.indexer.grok.compiler import Compiled, compile_grok, required_literals
from logpipe.indexer.grok.library import Library, build_library
from logpipe.indexer.grok.native import (RE_GROUPS_CODE, FieldSpec, captures_search,
                                         pattern_set, re_groups)

FAILURE = "_grokparsefailure"
TIMEOUT = "_groktimeout"

# (captures with typed values, tags); (None, ['_grokparsefailure' or '_groktimeout'])
MatchResult = tuple[dict | None, list[str]]
MatchFn = Callable[[str], MatchResult]

_LEADING_INT = re.compile(r"\s*[+-]?\d+")
_LEADING_FLOAT = re.compile(r"\s*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")


def to_int(value: str) -> int:
    """Logstash's ``:int`` (Ruby ``to_i``): leading integer, 0 when there is none."""
    try:
        return int(value)
    except ValueError:
        m = _LEADING_INT.match(value)
        return int(m.group()) if m else 0


def to_float(value: str) -> float:
    """Logstash's ``:float`` (Ruby ``to_f``)."""
    try:
        return float(value)
    except ValueError:
        m = _LEADING_FLOAT.match(value)
        return float(m.group()) if m else 0.0


class _Timeout(Exception):
    pass


# Shared state of the watchdog: [calls so far, the count seen at the last tick, main thread id]
_ST: list[int] = [0, -1, threading.main_thread().ident or 0]
# code objects of the match functions a tick may interrupt: those built here, and the ``re``
# searches PCRE2 hands a line to (indexer/grok/native.py)
_MATCH_CODES: set = {RE_GROUPS_CODE}


class _Watchdog:
    """A process-wide CPU-time ticker; a match call still running at two ticks is abandoned.

    Each match call bumps a counter; the tick handler raises only when the interrupted frame is
    one of the match functions and the counter has not moved since the previous tick, i.e. the
    same call has been running for a whole interval. Anywhere else a tick does nothing."""

    def __init__(self):
        self.armed = False
        self.failed = False
        self.interval = 0.0

    @staticmethod
    def _tick(signum, frame):
        seq = _ST[0]
        if frame is not None and frame.f_code in _MATCH_CODES:
            if seq == _ST[1]:
                _ST[1] = -1
                raise _Timeout()
            _ST[1] = seq
        else:
            _ST[1] = -1

    def arm(self, budget: float) -> bool:
        """Start ticking at budget/2; False when this process cannot host the watchdog."""
        if self.armed and self.interval <= budget / 2:
            return True
        if self.failed or os.environ.get("LOGPIPE_GROK_WATCHDOG", "1") == "0":
            return False
        if threading.get_ident() != _ST[2] or not hasattr(signal, "setitimer"):
            return False
        try:
            current = signal.getsignal(signal.SIGVTALRM)
            if current not in (signal.SIG_DFL, signal.SIG_IGN, None, self._tick):
                self.failed = True  # somebody else owns SIGVTALRM: leave it alone
                return False
            signal.signal(signal.SIGVTALRM, self._tick)
            self.interval = budget / 2 if not self.armed else min(self.interval, budget / 2)
            signal.setitimer(signal.ITIMER_VIRTUAL, self.interval, self.interval)
        except (ValueError, OSError, AttributeError):
            self.failed = True
            return False
        self.armed = True
        return True

    def disarm(self):
        """Stop the ticker (at exit: once Python resets its handlers, a tick would kill us)."""
        if self.armed:
            try:
                signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
            except (ValueError, OSError):
                pass
            self.armed = False

    def _after_fork(self):
        # a forked child does not inherit interval timers: restart ours there
        _ST[2] = threading.get_ident()
        _ST[1] = -1
        if self.armed:
            try:
                signal.setitimer(signal.ITIMER_VIRTUAL, self.interval, self.interval)
            except (ValueError, OSError):
                self.armed = False


_WATCHDOG = _Watchdog()
atexit.register(_WATCHDOG.disarm)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._after_fork)


def _build_single(search, fields, slow):
    """match() for one pattern with plain captures on ``re``: the hot path, kept small."""
    get_ident = threading.get_ident
    st = _ST

    def match(line):
        if get_ident() != st[2]:
            return slow(line)
        st[0] += 1
        try:
            values = search(line)
            if values is None:
                return None, [FAILURE]
            return {f: v for f, v in zip(fields, values) if v is not None}, []
        except _Timeout:
            return None, [TIMEOUT]
    _MATCH_CODES.add(match.__code__)
    return match


def _build_set(match_in_c, slow):
    """match() for a type whose patterns and dispatch run in C (native.pattern_set); a line
    PCRE2 hands back to ``re`` may still time out, under the watchdog."""
    get_ident = threading.get_ident
    st = _ST

    def match(line):
        if get_ident() != st[2]:
            return slow(line)
        st[0] += 1
        try:
            return match_in_c(line)
        except _Timeout:
            return None, [TIMEOUT]
    _MATCH_CODES.add(match.__code__)
    return match


def _literal_test(clause: tuple[str, ...]) -> str:
    """Python source testing that a line holds one of the clause's literals."""
    return "(" + " or ".join(f"{lit!r} in line" for lit in clause) + ")"


def _build_multi(entries, slow):
    """match() for several patterns (with literal dispatch) or special captures.

    The function is generated: the literal tests of every pattern are written out in order, and
    consecutive patterns that need the same literal (the nine sendmail patterns of the mail type
    all need one of sendmail/sm-mta/...) share one test, so a line pays for each test at most
    once and no loop or helper call runs per pattern. Patterns are still tried in order, and a
    pattern is skipped only when a literal it needs is absent: first match wins as before."""
    ns = {"get_ident": threading.get_ident, "st": _ST, "slow": slow, "_Timeout": _Timeout,
          "FAILURE": FAILURE, "TIMEOUT": TIMEOUT}
    src = ["def match(line):",
           "    if get_ident() != st[2]:",
           "        return slow(line)",
           "    st[0] += 1",
           "    try:"]
    i, n = 0, len(entries)
    while i < n:
        req = entries[i][2]
        shared = req[0] if req else None
        j = i + 1
        if shared is not None:
            while j < n and entries[j][2] and entries[j][2][0] == shared:
                j += 1
            src.append(f"        if {_literal_test(shared)}:")
        for k in range(i, j):
            search, extract, req = entries[k]
            ns[f"s{k}"], ns[f"e{k}"] = search, extract
            indent = " " * (12 if shared is not None else 8)
            rest = req[1:] if shared is not None else req
            if rest:
                src.append(indent + "if " + " and ".join(_literal_test(c) for c in rest) + ":")
                indent += "    "
            # an entry without extractor searches for the captures themselves (PCRE2's)
            src += [f"{indent}v = s{k}(line)",
                    f"{indent}if v is not None:",
                    f"{indent}    return {'v' if extract is None else f'e{k}(v)'}, []"]
        i = j
    src += ["        return None, [FAILURE]",
            "    except _Timeout:",
            "        return None, [TIMEOUT]"]
    exec(compile("\n".join(src), "<grok dispatch>", "exec"), ns)
    match = ns["match"]
    _MATCH_CODES.add(match.__code__)
    return match


def _plain_captures(c: Compiled) -> bool:
    fields = [cap.field for cap in c.captures]
    return (c.groups == len(fields) and len(set(fields)) == len(fields)
            and not any(cap.conv for cap in c.captures))


def _field_spec(c: Compiled) -> FieldSpec:
    """The fields of ``c``'s captures in the order they go into the captures dict, each with its
    groups (numbers) and their conversions (1: int, 2: float; :data:`_CONVERTERS`): fields of one
    group without a conversion first, then the others, each in the pattern's order (all in
    group order for plain captures). Both the Python extractor (:func:`_make_extract`) and
    PCRE2's ``captures``, which builds the same dict in C, follow it."""
    index = c.groupindex
    by_field: dict[str, list] = {}
    for cap in c.captures:
        by_field.setdefault(cap.field, []).append(
            (index[cap.group], {"int": 1, "float": 2}.get(cap.conv or "", 0)))
    if _plain_captures(c):
        return tuple((f, tuple(gs)) for f, gs in by_field.items())
    singles = [(f, tuple(gs)) for f, gs in by_field.items() if len(gs) == 1 and not gs[0][1]]
    others = [(f, tuple(gs)) for f, gs in by_field.items() if len(gs) > 1 or gs[0][1]]
    return tuple(singles + others)


def _make_extract(c: Compiled, spec: FieldSpec):
    """A function (a match's groups) -> dict of non-empty captures, specialised for this pattern.

    A field captured by several groups of one pattern keeps every value, as Logstash's grok
    does: one group that took part gives its value, several give a list in the pattern's order
    (``%{WORD:x} %{WORD:x}`` on "a b" gives ``x: ["a", "b"]``); branches of an alternation never
    take part together, so ``(?:%{IP:relay}|%{HOSTNAME:relay})`` gives one value. A group inside
    a repetition gives the value of its last iteration (Oniguruma's rule, and the regex
    engines')."""
    if _plain_captures(c):
        fields = tuple(cap.field for cap in c.captures)

        def extract_plain(values):
            return {f: v for f, v in zip(fields, values) if v is not None}
        return extract_plain
    return _extract_by_position(spec)


def _extract_by_position(spec: FieldSpec):
    """The captures from one match's groups, a tuple (the mail patterns have dozens of groups,
    and one C call beats a ``group()`` call per group): per field, the value of its group, or the
    values of its groups that took part (a list when there are several), in ``spec``'s order.
    The fields of one group without a conversion are picked in C; the others one by one
    (conversions per group: ``%{NUMBER:x:int} %{NUMBER:x}`` converts the first value only)."""
    singles = [(f, gs[0][0] - 1) for f, gs in spec if len(gs) == 1 and not gs[0][1]]
    others = tuple((f, tuple((g - 1, _CONVERTERS[conv - 1] if conv else None) for g, conv in gs))
                   for f, gs in spec if len(gs) > 1 or gs[0][1])
    converts = any(convert for _, at in others for _, convert in at)
    single_fields = tuple(f for f, _ in singles)
    single_at = tuple(i for _, i in singles)
    nones = (None,) * len(singles)

    def extract(values):
        picked = [values[i] for i in single_at]
        out = dict(compress(zip(single_fields, picked), map(is_not, picked, nones)))
        for f, at in others:
            found = [v if convert is None else convert(v)
                     for v, convert in ((values[i], convert) for i, convert in at)
                     if v is not None]
            if found:
                out[f] = found[0] if len(found) == 1 else found
        return out
    if converts or not others:
        return extract

    # No conversions: every (field, group) pair is picked in C, single-group fields first, then
    # the groups of fields written more than once (sendmail's from/to/relay... in each branch of
    # an alternation). Branches exclude each other, so a field almost always has one value: the
    # pairs that took part make the dict at once. When a field has several (a repeated capture
    # outside an alternation), ``extract`` above gives its list.
    pairs = singles + [(f, i) for f, at in others for i, _ in at]
    pair_fields = tuple(f for f, _ in pairs)
    pick = itemgetter(*(i for _, i in pairs))  # a field in ``others`` has two groups or more
    pair_nones = (None,) * len(pairs)

    def extract_alternatives(values):
        picked = pick(values)
        present = list(compress(zip(pair_fields, picked), map(is_not, picked, pair_nones)))
        out = dict(present)
        if len(out) != len(present):  # a field with several values: its list
            return extract(values)
        return out
    return extract_alternatives


_CONVERTERS = (to_int, to_float)   # the conversions 1 and 2 of a field spec


class _LazySearch:
    """``c.regex.search``, compiling the regex-module pattern on the first call."""

    __slots__ = ("compiled", "search")

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self.search: Callable[..., Any] | None = None

    def __call__(self, line, timeout=None):
        search = self.search
        if search is None:
            search = self.search = self.compiled.regex.search
        return search(line, timeout=timeout)


def _locate(path: str | None, pattern: str) -> int | None:
    """The line of a config file where a pattern is written (for error messages)."""
    if not path or path.startswith("<"):
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    for probe in (pattern, pattern[:40], pattern.replace("\\", "\\\\")[:40]):
        at = text.find(probe)
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return None


class Matcher:
    """Compiled patterns for one type, tried in order (with any dispatch optimisation inside)."""

    # match(line) -> (captures with typed values, tags); (None, ['_grokparsefailure' or
    # '_groktimeout']). Set per instance in __init__ to the function built for these patterns:
    # callers pay no extra method call.
    match: MatchFn

    def __init__(self, patterns: list[str], definitions: dict[str, str] | None = None,
                 patterns_dirs: list[str] | None = None, timeout: float = 0.25,
                 source: str | None = None, library: Library | None = None,
                 prefilter: bool | None = None, watchdog: bool = True,
                 origins: list[tuple[str | None, int | None]] | None = None,
                 ecs: bool = False):
        if isinstance(patterns, str):
            patterns = [patterns]
        if ecs:
            # ECS mode: the library's captures have ECS names; so do the type's own expressions
            from logpipe.indexer.grok.ecs import COMMON, rename_captures
            patterns = [rename_captures(p, COMMON) for p in patterns]
        self.patterns = list(patterns)
        self.timeout = float(timeout)
        self.library = library or build_library(definitions, patterns_dirs, source, ecs=ecs)
        self._validate_user_definitions()
        self.compiled: list[Compiled] = []
        for k, expr in enumerate(self.patterns):
            path, line = origins[k] if origins and k < len(origins) else (None, None)
            try:
                self.compiled.append(compile_grok(expr, self.library, path=path, line=line))
            except GrokError as exc:
                if exc.path is None and source:
                    raise GrokError(str(exc), path=source, line=_locate(source, expr)) from None
                raise
        use_prefilter = len(self.compiled) > 1 if prefilter is None else prefilter
        # (line -> the match's groups or None, without time limit; the extractor of those
        # groups, or None where the search gives the captures themselves; required literals)
        self._entries: list[tuple[Callable[[str], Any], Callable | None, tuple]] = []
        self._slow = []      # the same with the regex module's search (accepts timeout=)
        for c in self.compiled:
            req = tuple(required_literals(c.pattern, c.flags) if use_prefilter else [])
            spec = _field_spec(c)
            extract = _make_extract(c, spec)
            # by PCRE2's JIT where it means the same (indexer/grok/native.py), else by re
            native = None if c.fast is None else captures_search(c.fast, spec, _CONVERTERS)
            if native is not None:
                self._entries.append((native, None, req))
            else:
                self._entries.append((re_groups((c.fast or c.regex).search), extract, req))
            self._slow.append((_LazySearch(c), extract, req))
        self._match: MatchFn = self.match_with_timeout
        if watchdog and self.timeout > 0 and _WATCHDOG.arm(self.timeout):
            c0 = self.compiled[0] if len(self.compiled) == 1 else None
            if (c0 is not None and not self._entries[0][2] and _plain_captures(c0)
                    and self._entries[0][1] is not None):   # one pattern on re
                self._match = _build_single(self._entries[0][0],
                                            tuple(cap.field for cap in c0.captures),
                                            self.match_with_timeout)
            else:
                self._match = _build_multi(tuple(self._entries), self.match_with_timeout)
                in_c = pattern_set(self._entries, self._match, FAILURE)
                if in_c is not None:   # every pattern on PCRE2: the dispatch too, in C
                    self._match = _build_set(in_c, self.match_with_timeout)
        self.match = self._match

    def _validate_user_definitions(self) -> None:
        """Broken user definitions are reported at load time, even those no pattern uses."""
        for name, d in self.library.user.items():
            compile_grok("%{" + name + "}", self.library)

    @property
    def fields(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.compiled:
            for f in c.fields:
                seen.setdefault(f, None)
        return list(seen)

    def match_with_timeout(self, line: str) -> MatchResult:
        """The same, with regex's own per-search timeout (any thread)."""
        timeout = self.timeout if self.timeout > 0 else None
        try:
            for search, extract, req in self._slow:
                if req and not _has_all(line, req):
                    continue
                m = search(line, timeout=timeout)
                if m is not None:
                    return extract(m.groups()), []
        except TimeoutError:
            return None, [TIMEOUT]
        return None, [FAILURE]

    def match_index(self, line: str) -> tuple[int | None, dict | None]:
        """Which pattern matched (its index) and the captures; for the debugger."""
        for i, (search, extract, req) in enumerate(self._slow):
            if req and not _has_all(line, req):
                continue
            try:
                m = search(line, timeout=self.timeout or None)
            except TimeoutError:
                return None, None
            if m is not None:
                return i, extract(m.groups())
        return None, None


def _has_all(line: str, req: tuple[tuple[str, ...], ...]) -> bool:
    for alts in req:
        for s in alts:
            if s in line:
                break
        else:
            return False
    return True


_CACHE: dict[tuple, Matcher] = {}


def matcher_for(type_config, timeout: float = 0.25) -> Matcher:
    """The Matcher of a TypeConfig, compiled once per process (keyed by patterns, defs, dirs)."""
    ecs = getattr(type_config, "ecs_compatibility", "disabled") not in ("disabled", None)
    key = (tuple(type_config.patterns), tuple(sorted(type_config.pattern_definitions.items())),
           tuple(type_config.patterns_dir), timeout, ecs)
    m = _CACHE.get(key)
    if m is None:
        m = Matcher(list(type_config.patterns), dict(type_config.pattern_definitions),
                    list(type_config.patterns_dir), timeout=timeout,
                    source=getattr(type_config, "source", None) or None, ecs=ecs)
        _CACHE[key] = m
    return m
