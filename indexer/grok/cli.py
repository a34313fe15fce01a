"""``logpipe grok parse`` and ``logpipe grok debug``.

Patterns come from ``--pattern`` (repeatable), ``--pattern-file`` (one grok expression per line,
``#`` comments), or a pipeline type: ``--type NAME`` picks a built-in pipeline, or the type of a
``--config`` file. ``--patterns-dir`` adds Logstash-format pattern files.

``parse`` writes one JSON object per input line, in input order: the captures plus ``message``
(a capture named ``message``, as SYSLOGLINE makes, replaces the line, like Logstash's
``overwrite => ["message"]``); a line nothing matches gives
``{"message": ..., "tags": ["_grokparsefailure"]}``.

``debug`` shows which pattern matched each line and its captures; for a line that failed, how far
each pattern got: the longest leading part of the pattern (by grok references and regex pieces)
that still matches, and where in the line it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional

import orjson
import typer

from logpipe.common.console import json_safe_bytes, printable
from logpipe.common.errors import ConfigError
from logpipe.indexer.grok.explain import explain
from logpipe.indexer.grok.matcher import FAILURE, Matcher

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Parse lines with grok patterns; debug patterns.")


def _read_pattern_file(path: str) -> tuple[list[str], list[tuple[str, int]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pattern file: {exc.strerror}", path) from None
    except UnicodeDecodeError:
        raise ConfigError("pattern file is not UTF-8 text", path) from None
    patterns, origins = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        patterns.append(line.rstrip("\r"))
        origins.append((path, number))
    if not patterns:
        raise ConfigError("pattern file holds no pattern (one grok expression per line)", path)
    return patterns, origins


def build_matcher(pattern: list[str] | None, pattern_file: str | None,
                  patterns_dir: list[str] | None, config: str | None,
                  type_: str | None) -> Matcher:
    """The Matcher the options describe (shared by parse and debug)."""
    patterns = list(pattern or [])
    origins: list[tuple[str | None, int | None]] = [(None, None)] * len(patterns)
    if pattern_file:
        more, where = _read_pattern_file(pattern_file)
        patterns += more
        origins += where
    dirs = list(patterns_dir or [])
    if patterns:
        defs: dict[str, str] = {}
        if config and type_:
            from logpipe.indexer.pipeline_config import load_pipeline as load
            tc = load(config).types.get(type_)
            if tc:
                defs, dirs = dict(tc.pattern_definitions), list(tc.patterns_dir) + dirs
        return Matcher(patterns, defs, dirs, origins=origins)
    if not type_:
        if config:
            raise ConfigError("--config needs --type to say which type's patterns to use")
        raise ConfigError("no patterns: give --pattern, --pattern-file, or --type "
                          "(syslog, mail, apache, sshd or a type of --config)")
    from logpipe.indexer.pipeline_config import load_pipeline as load
    cfg = load(config)
    tc = cfg.types.get(type_)
    if tc is None:
        raise ConfigError(f"unknown type {type_!r} (known: {', '.join(sorted(cfg.types))})",
                          config)
    if not tc.patterns:
        raise ConfigError(f"type {type_!r} has no grok patterns", tc.source or config)
    return Matcher(list(tc.patterns), dict(tc.pattern_definitions),
                   list(tc.patterns_dir) + dirs, source=tc.source or None)


def _lines(input_: str) -> Iterator[str]:
    if input_ == "-":
        stream = sys.stdin
    else:
        try:
            stream = open(input_, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot read input: {exc.strerror}", input_) from None
    try:
        for raw in stream:
            yield raw.rstrip("\n").rstrip("\r")
    finally:
        if stream is not sys.stdin:
            stream.close()


_PATTERN_OPT = typer.Option(None, "--pattern", "-p", help="A grok expression (repeatable; tried in order).")
_FILE_OPT = typer.Option(None, "--pattern-file", "-f", help="File with one grok expression per line.")
_DIR_OPT = typer.Option(None, "--patterns-dir", "-d", help="Directory (or file) of Logstash-format "
                        "pattern definitions (repeatable).")
_CONFIG_OPT = typer.Option(None, "--config", "-c", help="A pipeline config (TOML) whose --type to use.")
_TYPE_OPT = typer.Option(None, "--type", "-t", help="Use this type's patterns (built-in: syslog, mail, apache, sshd).")
_INPUT_ARG = typer.Argument("-", help="Input file, or - for stdin.")


@app.command()
def parse(
    input_: str = _INPUT_ARG,
    pattern: Optional[List[str]] = _PATTERN_OPT,
    pattern_file: Optional[str] = _FILE_OPT,
    patterns_dir: Optional[List[str]] = _DIR_OPT,
    config: Optional[str] = _CONFIG_OPT,
    type_: Optional[str] = _TYPE_OPT,
) -> None:
    """Write one JSON object per input line: the captures plus message (or _grokparsefailure)."""
    matcher = build_matcher(pattern, pattern_file, patterns_dir, config, type_)
    # bytes straight from orjson to the binary stream: no decode and re-encode per line
    # None on a text-only stream (tests' capture): _write writes str there
    binary: BinaryIO | None = getattr(sys.stdout, "buffer", None)
    if binary is not None:
        sys.stdout.flush()
    buf: list[bytes] = []
    match = matcher.match
    dumps = orjson.dumps
    for line in _lines(input_):
        caps, tags = match(line)
        if caps is None:
            buf.append(dumps({"message": line, "tags": tags}))
        else:
            buf.append(dumps({"message": line, **caps}))
        if len(buf) >= 1024:
            _write(binary, buf)
            buf.clear()
    if buf:
        _write(binary, buf)
    (sys.stdout if binary is None else binary).flush()


def _write(binary: BinaryIO | None, buf: list[bytes]) -> None:
    """The JSON lines, each ending in a newline: bytes to stdout's binary buffer, or decoded to
    stdout itself when it has none. No raw control character: JSON escapes C0, DEL and C1 are
    escaped here (the same JSON values)."""
    data = json_safe_bytes(b"\n".join(buf) + b"\n")
    if binary is None:
        sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        binary.write(data)
        binary.flush()


# --- debug ------------------------------------------------------------------------------------

def _debug_records(matcher: Matcher, lines: Iterator[str]) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        index, caps = matcher.match_index(line)
        if index is not None:
            yield {"line": number, "message": line, "matched": index,
                   "pattern": matcher.patterns[index], "captures": caps}
            continue
        _, tags = matcher.match(line)
        attempts = [{"pattern": expr, **explain(expr, matcher, line)}
                    for expr in matcher.patterns]
        yield {"line": number, "message": line, "matched": None, "tags": tags or [FAILURE],
               "attempts": attempts}


def _plain(rec: dict, write) -> None:
    write(f"line {rec['line']}: {printable(rec['message'])}")
    if rec["matched"] is not None:
        write(f"  matched pattern #{rec['matched'] + 1}: {printable(rec['pattern'])}")
        for k, v in rec["captures"].items():
            write(f"    {k} = {v!r}")
        return
    write(f"  no pattern matched ({', '.join(rec['tags'])})")
    for i, a in enumerate(rec["attempts"], 1):
        good = "".join(a["pieces"][:a["matched"]])
        write(f"  pattern #{i}: {printable(a['pattern'])}")
        if a["failed_piece"] is None:
            write("    the whole pattern matches on its own (timeout?)")
            continue
        write(f"    matches up to: {good!r}" if good else "    even its first piece fails")
        write(f"    then fails at: {a['failed_piece']!r}")
        if good:
            write(f"    line covered:  {rec['message'][a['start']:a['end']]!r} "
                  f"(chars {a['start']}-{a['end']}), stopped at char {a['end']}: "
                  f"{rec['message'][a['end']:a['end'] + 30]!r}")


def _rich(rec: dict, console) -> None:
    from rich.markup import escape as markup_escape
    from rich.table import Table

    def escape(text: str) -> str:  # literal text: no markup, control characters visible
        return markup_escape(printable(text))
    console.print(f"[bold]line {rec['line']}[/bold]: {escape(rec['message'])}")
    if rec["matched"] is not None:
        console.print(f"  [green]matched pattern #{rec['matched'] + 1}[/green]: "
                      f"{escape(rec['pattern'])}")
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("field")
        table.add_column("value")
        for k, v in rec["captures"].items():
            table.add_row(escape(str(k)), escape(repr(v)))
        console.print(table)
        return
    console.print(f"  [red]no pattern matched[/red] ({', '.join(rec['tags'])})")
    for i, a in enumerate(rec["attempts"], 1):
        good = "".join(a["pieces"][:a["matched"]])
        rest = "".join(a["pieces"][a["matched"]:])
        console.print(f"  pattern #{i}: [green]{escape(good)}[/green][red]{escape(rest)}[/red]")
        if a["failed_piece"] is None:
            continue
        msg = rec["message"]
        console.print(f"    line: {escape(msg[:a['start']])}[green]{escape(msg[a['start']:a['end']])}"
                      f"[/green][red]|[/red]{escape(msg[a['end']:])}")
        console.print(f"    stopped at char {a['end']}; next piece "
                      f"[bold]{escape(a['failed_piece'])}[/bold] does not fit there")


@app.command()
def debug(
    input_: str = _INPUT_ARG,
    pattern: Optional[List[str]] = _PATTERN_OPT,
    pattern_file: Optional[str] = _FILE_OPT,
    patterns_dir: Optional[List[str]] = _DIR_OPT,
    config: Optional[str] = _CONFIG_OPT,
    type_: Optional[str] = _TYPE_OPT,
) -> None:
    """Show which pattern matched each line; for failures, how far each pattern got."""
    matcher = build_matcher(pattern, pattern_file, patterns_dir, config, type_)
    records = _debug_records(matcher, _lines(input_))
    if sys.stdout.isatty():
        from rich.console import Console
        console = Console()
        for rec in records:
            _rich(rec, console)
    else:
        def write(s: str) -> None:
            sys.stdout.write(s + "\n")
        for rec in records:
            _plain(rec, write)
