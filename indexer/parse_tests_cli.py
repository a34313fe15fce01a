"""``logpipe test``: run test files (indexer/parse_tests.py) against a pipeline config.

Exit codes: 0 every case passed, 1 some failed (each shown as a diff per field), 2 a test file
or the config is malformed (one line: file, line, what is wrong)."""

from __future__ import annotations

from typing import List, Optional

import typer

from logpipe.indexer.parse_tests import load_tests, report, run_file

app = typer.Typer(add_completion=False, help="Run parsing test cases against a pipeline config.")


@app.command()
def test(
    files: List[str] = typer.Argument(..., help="Test files (TOML: [[case]] line + [case.expect])."),
    config: Optional[str] = typer.Option(None, "--config", "-c",
                                         help="Pipeline config (default: the file's `config`, "
                                              "else the built-in types)."),
    type_: Optional[str] = typer.Option(None, "--type", "-t",
                                        help="Type of cases that name none."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List passing cases too."),
):
    """Run every case; a failing one is shown as expected vs got per field; exit 1 if any fail."""
    loaded = [load_tests(f) for f in files]   # every file checked before anything runs
    total = failed = 0
    for tests in loaded:
        outcomes = run_file(tests, config, type_)
        total += len(outcomes)
        failed += sum(1 for o in outcomes if o.differences)
        for row in report(tests, outcomes, verbose):
            typer.echo(row)
    typer.echo(f"{total} case{'s' if total != 1 else ''}: {total - failed} passed, "
               f"{failed} failed")
    if failed:
        raise typer.Exit(1)
