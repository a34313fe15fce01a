"""The root ``logpipe`` command.

Subcommands are registered by module path and imported only when used, so ``logpipe ship`` on an
agent never imports the indexer or its dependencies (rq, elasticsearch, regex).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.core
import typer.main

from logpipe.common.console import printable, printable_lines
from logpipe.common.errors import LogpipeError, QueryError

# name -> (module, attribute holding a typer.Typer, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ship": ("logpipe.shipper.cli", "app", "Tail files or stdin and push lines onto the broker."),
    "index": ("logpipe.indexer.cli", "index_app", "Run the dispatcher and a pool of RQ indexer workers."),
    "dlq": ("logpipe.indexer.cli", "dlq_app", "Inspect, replay or purge the dead-letter queue."),
    "stats": ("logpipe.indexer.cli", "stats_app", "Show pipeline figures (queue, workers, rates, lag)."),
    "search": ("logpipe.search.cli", "search_app", "Search stored events (Lucene syntax)."),
    "trace": ("logpipe.search.cli", "trace_app", "Show every event of one mail message."),
    "messages": ("logpipe.search.messages", "messages_app",
                 "Search mail message records (one per transaction)."),
    "report": ("logpipe.search.report", "report_app",
               "The daily mail summary (pflogsumm-like) from the message records."),
    "prune": ("logpipe.search.cli", "prune_app", "Delete events older than a given age."),
    "maintain": ("logpipe.search.cli", "maintain_app",
                 "Do the store's deferred work now (full text, counts, value indexes)."),
    "grok": ("logpipe.indexer.grok.cli", "app", "Parse lines with grok patterns; debug patterns."),
    "test": ("logpipe.indexer.parse_tests_cli", "app",
             "Run parsing test cases (lines and expected fields) against a pipeline config."),
    "import-logstash": ("logpipe.indexer.logstash_import", "app",
                        "Convert a Logstash config into a logpipe pipeline config."),
    "up": ("logpipe.services.embedded", "up_app", "Start the embedded broker, store and workers."),
    "down": ("logpipe.services.embedded", "down_app", "Stop the embedded services."),
    "demo": ("logpipe.services.embedded", "demo_app",
             "Run the whole pipeline on a generated maillog and search it."),
    "acl": ("logpipe.common.acl_cli", "acl_app", "Set up least-privilege broker users (Redis ACLs)."),
    "gen-logs": ("logpipe.services.loggen", "app", "Write realistic sample logs (mail, syslog, apache)."),
    "alerts": ("logpipe.search.alerts.cli", "alerts_app",
               "Alert rules on searches: run the evaluator, list, test (mail, webhook)."),
    "ui": ("logpipe.search.web.cli", "ui_app", "Serve the web page (search, trace, dead letters, health)."),
}


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists every subcommand from :data:`COMMANDS` and imports one only when it
    runs. Built on typer's own group class (typer no longer installs click)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module_name, attr, _ = spec
        module = importlib.import_module(module_name)
        command = typer.main.get_command(getattr(module, attr))
        command.name = name
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, spec[2]) for name, spec in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(cls=LazyGroup, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


@app.callback()
def root():
    """logpipe: ship logs to a broker, parse them with grok, search them."""


cli = typer.main.get_command(app)


def _usage_error_kind() -> Any:  # a ClickException class: has show() and exit_code
    """The exception class typer's commands raise for a bad command line: ``ClickException``,
    from click with older typer and from typer's own copy with newer typer. Found through the
    public ``typer.BadParameter`` so neither click nor typer's private modules are imported."""
    for kind in typer.BadParameter.__mro__:
        if kind.__name__ == "ClickException":
            return kind
    return typer.BadParameter


_USAGE_ERROR = _usage_error_kind()


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode typer returns the code of a ``typer.Exit`` raised by a command
        # instead of raising it (commands themselves return None).
        code = cli.main(args=argv, prog_name="logpipe", standalone_mode=False)
    except (LogpipeError, QueryError) as exc:
        # a message may quote a query, a file name or a line: control characters shown escaped
        typer.echo(f"logpipe: error: {printable_lines(str(exc))}", err=True)
        return 2
    except typer.Exit as exc:
        return getattr(exc, "exit_code", 0)
    except _USAGE_ERROR as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if not exc.filename:  # not about a path: a bug or an outage, shown in full
            raise
        # a path given on the command line (or under LOGPIPE_HOME) that cannot be used: missing,
        # not a directory, not writable. Commands name most themselves; this is the net.
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        typer.echo(f"logpipe: error: {printable(where)}: {exc.strerror or exc}", err=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - only the broker's access refusals are mapped
        message = _access_refused(exc)
        if message is None:
            raise
        typer.echo(f"logpipe: error: {message}", err=True)
        return 2
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _access_refused(exc: Exception) -> str | None:
    """A broker that refuses this user a command or the password is a configuration mistake:
    one line saying so, no traceback."""
    import redis.exceptions

    if isinstance(exc, redis.exceptions.NoPermissionError):
        return (f"the broker refused a command: {exc} (NOPERM: this URL's ACL user may not do "
                f"this; use a URL with the right user, see `logpipe acl setup`)")
    if isinstance(exc, redis.exceptions.AuthenticationError):
        from logpipe.common.broker.connection import password_refused
        return str(password_refused(None, exc))
    return None


def run() -> None:
    code = main()
    quick_exit_gc()
    sys.exit(code)


def quick_exit_gc() -> None:
    """Leave everything alive now out of the interpreter's shutdown collections: tearing down
    a process that imported the store clients, RQ and typer took 0.2-0.6 s of CPU under load,
    after its work was done (issue 27: ``index --burst`` is timed to its exit). Buffers are
    still flushed and atexit handlers still run."""
    import gc

    gc.disable()
    gc.freeze()


if __name__ == "__main__":
    run()
