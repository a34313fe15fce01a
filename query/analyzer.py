"""The message analyzer: Elasticsearch's "standard" rules (UAX#29 word boundaries,
lower-cased), so the embedded store's full text and Elasticsearch's agree token for token.

``analyze(text)`` gives the tokens; ``fts_text(text)`` what the embedded store hands its FTS5
tokenizer. ``ANALYZER_VERSION`` changes whenever the tokens a text gives change (a store made with
another version rebuilds its full-text index).
"""

from __future__ import annotations

import re

# A token is a run of word characters, continued across a MidLetter (':', '.', "'", ...) between
# two letters and across a MidNum (',', ';', '.', "'", ...) between two digits (UAX#29 rules WB6/7
# and WB11/12); '_' joins (WB13); a Han ideograph or a Hiragana character is a token on its own.
_IDEO = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_MARKS = "\u0300-\u036f"
_MIDLETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a"
_MIDNUMLET = ".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
_MIDNUM = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_X = f"(?:[^\\W{_IDEO}][{_MARKS}]*)"
_TOKEN_RE = re.compile(
    f"[{_IDEO}]"
    f"|(?=_*[^\\W_{_IDEO}]){_X}+"
    f"(?:(?:(?<=[^\\W\\d_{_IDEO}])[{_MIDLETTER}{_MIDNUMLET}](?=[^\\W\\d_{_IDEO}])"
    f"|(?<=\\d)[{_MIDNUM}{_MIDNUMLET}](?=\\d)){_X}+)*")
# the same rules for ASCII text, without the Unicode classes: three times faster
_ASCII_TOKEN_RE = re.compile(
    r"(?:[a-z0-9]|_+[a-z0-9])[a-z0-9_]*"
    r"(?:(?:(?<=[a-z])[.:'](?=[a-z])|(?<=[0-9])[.,;'](?=[0-9]))[a-z0-9_]+)*")
# characters that can sit inside a token besides letters, digits and marks (the FTS5 tokenchars)
TOKEN_EXTRA_CHARS = "_" + "".join(sorted(set(_MIDLETTER + _MIDNUMLET + _MIDNUM)))
MAX_TOKEN_LENGTH = 255
# Lucene lower-cases code point by code point (simple case mapping): no final sigma, no 'i̇'
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


# What the embedded store hands to its FTS5 tokenizer (unicode61, the extra characters above as
# token characters). For ASCII text it is the text itself with every '.', ':', "'", ',', ';' that
# does not join a token turned into a space: one C-speed pass instead of a Python token list;
# FTS5 then finds exactly the tokens analyze() gives (plus runs of bare '_', which no query can
# ask for). Other text gets analyze()'s tokens, space-separated.
_BAD_MID_RE = re.compile(r"[.:',;](?!(?<=[A-Za-z][.:'])[A-Za-z])(?!(?<=[0-9][.,;'])[0-9])")
_LONG_RUN_RE = re.compile(r"[A-Za-z0-9_.:',;]{%d}" % (MAX_TOKEN_LENGTH + 1))
ANALYZER_VERSION = "uax29-1"


def _ascii_body_re(text: str) -> str:
    return _BAD_MID_RE.sub(" ", text)


try:  # the same substitution as one C loop (query/_fts.c): ~10x faster on a mail line
    from logpipe.query._fts import ascii_body as _ascii_body
except ImportError:  # built without a compiler
    _ascii_body = _ascii_body_re


def fts_text(text: str) -> str:
    if text.isascii() and (len(text) <= MAX_TOKEN_LENGTH or not _LONG_RUN_RE.search(text)):
        return _ascii_body(text)
    return " ".join(analyze(text))


def analyze(text: str) -> list[str]:
    """The tokens of a message, as Elasticsearch's standard analyzer makes them."""
    if text.isascii():
        tokens = _ASCII_TOKEN_RE.findall(text.lower())
    else:
        tokens = _TOKEN_RE.findall(text.translate(_SIMPLE_LOWER).lower())
    if any(len(t) > MAX_TOKEN_LENGTH for t in tokens):
        tokens = [t[i:i + MAX_TOKEN_LENGTH] for t in tokens
                  for i in range(0, len(t), MAX_TOKEN_LENGTH)]
    return tokens
