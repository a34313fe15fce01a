"""A log line's escape sequences reach no terminal raw (issue 21.3): search, trace, dlq list/show,
stats and grok parse/debug show every C0 control, DEL and C1 control escaped (``\\x1b``), on a
terminal (a real pty) and in a pipe; ``--json`` stays exact JSON with no raw control character."""

from __future__ import annotations

import json
import os
import re
import pty
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from logpipe.common.broker import Keys, connect
from logpipe.common.cli import main
from logpipe.common.console import json_safe, printable
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.grok.cli import app as grok_app
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore

# clear the screen, set the window title, an OSC 8 hyperlink, an OSC 52 clipboard write, a C1
# CSI (U+009B), DEL, NUL, BEL, a backspace; and rich markup that must stay literal text
EVIL = ("ok \x1b[2J\x1b]0;pwned\x07 \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
        "\x1b]52;c;cm0gLXJmIH4=\x07 \x9b31m c1 \x7f del \x00 nul \x08 [/bold] [red]markup")
RAW = ["\x1b[2J", "\x1b]0;", "\x1b]8;;", "\x1b]52;", "\x9b", "\x07", "\x7f", "\x00", "\x08"]
SHOWN = ["\\x1b[2J", "\\x1b]52;c;cm0gLXJmIH4=\\x07", "\\x9b31m", "\\x7f", "\\x00", "\\x08",
         "[/bold] [red]markup"]
QID = "j061bW9V000809"


def assert_safe(text: str, escaped: bool = True) -> None:
    """No raw control sequence of EVIL in ``text``; with ``escaped``, all of them shown escaped
    (on a terminal, once the colours rich adds are taken out)."""
    for raw in RAW:
        assert raw not in text, (raw, text)
    text = re.sub("\x1b\\[[0-9;]*m", "", text)  # rich's own SGR colours (a terminal's)
    if escaped:
        for shown in SHOWN:
            assert shown in text, (shown, text)


def test_printable_escapes_every_control_character():
    controls = [chr(c) for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)]]
    shown = printable("".join(controls))
    assert all(c not in shown for c in controls)
    assert shown.startswith("\\x00\\x01") and "\\t\\n\\x0b\\x0c\\r" in shown
    assert shown.endswith("\\x7f\\x80" + "".join(f"\\x{c:02x}" for c in range(0x81, 0xa0)))
    assert printable("plain é ✓ text") == "plain é ✓ text"
    assert json.loads(json_safe(json.dumps("\x7f\x9b", ensure_ascii=False))) == "\x7f\x9b"


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.prepare()
    sink.write([Event("e1", {"@timestamp": "2026-11-28T10:00:01.000Z", "host": "mail1",
                             "type": "mail", "program": "sendmail", "qid": QID,
                             "message": EVIL, "relay": EVIL, "stat": "Sent"})])
    sink.close()
    monkeypatch.setenv("LOGPIPE_STORE_URL", url)
    return url


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_tty(*args: str) -> tuple[int, str]:
    """The command on a real terminal (a pty as stdin, stdout and stderr)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "400", "LINES": "50", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=120)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


# ---------------------------------------------------------------- search and trace

def test_search_in_a_pipe_escapes_controls(store, capsys):
    code, out, _ = run(capsys, "search", "qid:" + QID, "-f", "host,message,relay")
    assert code == 0
    assert_safe(out)
    assert out.count("\t") == 2 and out.count("\n") == 1  # one row, three columns


def test_search_json_is_exact_json_without_raw_controls(store, capsys):
    code, out, _ = run(capsys, "search", "--json", "qid:" + QID)
    assert code == 0
    assert_safe(out, escaped=False)
    doc = json.loads(out)
    assert doc["message"] == EVIL and doc["relay"] == EVIL


def test_top_values_in_a_pipe_escape_controls(store, capsys):
    code, out, _ = run(capsys, "search", "--top", "relay", "*")
    assert code == 0
    # (the embedded store's top values end a value at a NUL: what follows it is not shown)
    assert_safe(out, escaped=False)
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07 \\x9b31m" in out


def test_trace_in_a_pipe_escapes_controls(store, capsys):
    code, out, _ = run(capsys, "trace", QID)
    assert code == 0
    assert_safe(out)
    assert f"relay={printable(EVIL)}" in out


def test_search_trace_and_top_on_a_terminal_escape_controls(store):
    for args in (["search", "qid:" + QID, "-f", "message"], ["trace", QID, "-f", "message"],
                 ["search", "--top", "relay", "*"]):
        code, out = run_tty(*args)
        assert code == 0, out
        assert "Traceback" not in out
        assert_safe(out, escaped=args[1] != "--top")  # top values end at the NUL


# ---------------------------------------------------------------- dead letters and stats

@pytest.fixture
def letter(redis_url):
    client = connect(redis_url)
    dlq = DeadLetterQueue(client, Keys())
    dlq.add(EVIL.encode(), "rec-1", "parse", "no pattern matched: " + EVIL, "mail")
    entry = next(dlq.iter()).entry_id
    client.close()
    return entry


def test_dlq_list_and_show_escape_controls(redis_url, letter, capsys):
    code, out, _ = run(capsys, "dlq", "list", "--redis", redis_url)
    assert code == 0 and out.startswith(letter)
    assert_safe(out, escaped=False)  # the reason is cut at 120 characters
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07 \\x9b31m c1 \\x7f del \\x00" in out
    for args in (["dlq", "list", "--json"], ["dlq", "show", letter]):
        code, out, _ = run(capsys, *args, "--redis", redis_url)
        assert code == 0
        assert_safe(out, escaped=False)
        doc = json.loads(out)
        assert doc["record"] == EVIL and doc["reason"] == "no pattern matched: " + EVIL


def test_stats_escape_a_shipper_name(redis_url, capsys):
    client = connect(redis_url)
    client.hset(Keys().shippers, "web1" + EVIL,
                json.dumps({"updated": time.time(), "lines": 3}))
    client.close()
    code, out, _ = run(capsys, "stats", "--redis", redis_url)
    assert code == 0
    assert_safe(out)
    code, out, _ = run(capsys, "stats", "--json", "--redis", redis_url)
    assert code == 0
    assert_safe(out, escaped=False)
    assert json.loads(out)["shippers"][0]["name"] == "web1" + EVIL
    code, out = run_tty("stats", "--redis", redis_url)
    assert code == 0, out
    assert_safe(out)


# ---------------------------------------------------------------- grok

def test_grok_parse_is_exact_json_and_debug_escapes(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(("GET " + EVIL + "\n").encode())
    runner = CliRunner()
    result = runner.invoke(grok_app, ["parse", "-p", "%{WORD:verb} %{GREEDYDATA:rest}",
                                        str(log)])
    assert result.exit_code == 0, result.output
    assert_safe(result.output, escaped=False)
    assert json.loads(result.output) == {"message": "GET " + EVIL, "verb": "GET", "rest": EVIL}
    code, out, err = run_subprocess("grok", "parse", "-p", "%{WORD:verb} %{GREEDYDATA:rest}",
                                    str(log))
    assert code == 0 and json.loads(out)["rest"] == EVIL, err
    assert_safe(out, escaped=False)
    result = runner.invoke(grok_app, ["debug", "-p", "%{INT:n}", str(log)])
    assert result.exit_code == 0
    assert_safe(result.output)
    code, out = run_tty("grok", "debug", "-p", "%{INT:n}", str(log))
    assert code == 0, out
    assert_safe(out)


def run_subprocess(*args: str) -> tuple[int, str, str]:
    run = subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                         timeout=120)
    return run.returncode, run.stdout.decode(), run.stderr.decode()


def test_an_error_quoting_a_query_escapes_controls(capsys):
    code, _, err = run(capsys, "search", "--store", "sqlite:///:memory:", "a:(b\x1b]52;c;x\x07")
    assert code == 2
    assert "\x1b" not in err and "\\x1b]52;c;x\\x07" in err
