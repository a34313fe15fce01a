"""How far grok patterns get on a line that none of them matches.

``explain`` is ``logpipe grok debug``'s answer for one pattern (the longest leading run of its
pieces that still matches, and where in the line that run stopped); ``closest_pattern`` scores
every pattern of a matcher that way and keeps the one that got furthest (the page's "closest
pattern" of a dead letter). Both are pure functions of the matcher and the line.
"""

from __future__ import annotations

import regex

from logpipe.common.errors import GrokError
from logpipe.indexer.grok.compiler import compile_grok, split_pieces
from logpipe.indexer.grok.matcher import Matcher


def explain(expr: str, matcher: Matcher, line: str) -> dict:
    """How far ``expr`` gets on ``line``: the longest leading run of pieces that matches.

    Returns {pieces, matched (count of pieces), start, end (span in the line of that prefix's
    match), failed_piece (the first piece that did not fit, or None)}."""
    pieces = split_pieces(expr)

    def attempt(k: int):
        if k == 0:
            return (0, 0)
        try:
            c = compile_grok("".join(pieces[:k]), matcher.library)
            m = c.regex.search(line, timeout=matcher.timeout or 1.0)
        except (GrokError, TimeoutError, regex.error):
            return None
        return m.span() if m else None

    lo, hi, best = 0, len(pieces), (0, 0)
    while lo < hi:                 # a longer prefix matching implies the shorter ones do
        mid = (lo + hi + 1) // 2
        span = attempt(mid)
        if span is not None:
            lo, best = mid, span
        else:
            hi = mid - 1
    return {"pieces": pieces, "matched": lo, "start": best[0], "end": best[1],
            "failed_piece": pieces[lo] if lo < len(pieces) else None}


def closest_pattern(matcher: Matcher, line: str) -> dict | None:
    """The matcher's pattern that got furthest on ``line`` (by the share of its pieces that
    matched, then by how far into the line): {pattern, matched, pieces (count), good (the
    pieces that matched, joined), failed_piece, line, start, end}; None without patterns."""
    best = None
    for expr in matcher.patterns:
        found = explain(expr, matcher, line)
        score = (found["matched"] / max(1, len(found["pieces"])), found["end"])
        if best is None or score > best[0]:
            best = (score, expr, found)
    if best is None:
        return None
    _, expr, found = best
    return {"pattern": expr, "matched": found["matched"], "pieces": len(found["pieces"]),
            "good": "".join(found["pieces"][:found["matched"]]),
            "failed_piece": found["failed_piece"], "line": line,
            "end": found["end"], "start": found["start"]}


__all__ = ["explain", "closest_pattern"]
