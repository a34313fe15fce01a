"""Whole results as files: CSV (the chosen columns) and NDJSON (each stored document), one
line per event, built as the events stream in (any number, constant memory). Used by
``logpipe search --csv`` / ``--json`` and the web page's export (``/api/export``).

Values come from strangers' log lines, and a spreadsheet runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return, which some read as such a start) as a
formula: such a cell is written with a leading ``'`` (OWASP's "CSV injection" advice), so it
opens as the text it was.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Iterator

import orjson

from logpipe.search.render import stored_doc

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)


def csv_cell(value) -> str:
    """One value as a CSV cell's text, defused: a formula start gets a ``'`` in front."""
    text = _text(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(events: Iterable[dict], columns: list[str]) -> Iterator[str]:
    """The header, then one CSV record per event (RFC 4180 quoting, ``\\r\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line([csv_cell(c) for c in columns])
    for event in events:
        yield line([csv_cell(event.get(c)) for c in columns])


def ndjson_lines(events: Iterable[dict]) -> Iterator[str]:
    """One JSON document per line, as stored (``@timestamp`` first)."""
    for event in events:
        yield orjson.dumps(stored_doc(event), option=orjson.OPT_NON_STR_KEYS).decode() + "\n"


__all__ = ["csv_cell", "csv_lines", "ndjson_lines", "FORMULA_STARTS"]
