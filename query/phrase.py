"""A value as a term of the query language: quoted, so that any text (spaces, colons,
wildcards, quotes) means itself. Used wherever code builds a query from a stored value
(``logpipe trace``, the page's filters, its surrounding lines, alert rules)."""

from __future__ import annotations


def phrase(value) -> str:
    """``value`` as a quoted phrase: backslashes and double quotes escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_phrase(field: str, value) -> str:
    """``field:"value"``: the events whose ``field`` is exactly ``value``."""
    return f"{field}:{phrase(value)}"


__all__ = ["phrase", "field_phrase"]
