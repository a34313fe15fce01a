"""User mistakes get one clear message (file, line, position) and exit 2, never a traceback."""

import subprocess
import sys

import pytest


def logpipe(*args, **kw):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)


@pytest.mark.parametrize("config, expected", [
    ("[types.mail]\npatterns = [\n  '%{SYSLOGBASE} %{NOSUCHPATTERN:x}',\n]\n",
     [":3: unknown pattern %{NOSUCHPATTERN}", "^ (position 14)"]),
    ("[types.mail\npatterns = 1\n", ["not valid TOML", "line 1"]),
    ("[types.mail]\npatterns = ['(?<x>unclosed']\n", [":2:", "unclosed"]),
    ("[types.mail]\npatterns = ['%{WORD}']\n[types.mail.fields]\nconvert = { a = 'date' }\n",
     ["convert.a: unknown type 'date'"]),
])
def test_index_refuses_a_broken_pipeline_config_at_start(tmp_path, config, expected):
    path = tmp_path / "pipeline.toml"
    path.write_text(config)
    run = logpipe("index", "--redis", "redis://127.0.0.1:1/0", "--store",
                  f"sqlite:///{tmp_path}/e.db", "--config", str(path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert str(path) in run.stderr
    for text in expected:
        assert text in run.stderr


def test_bad_broker_url_is_one_line(tmp_path):
    # An unreachable broker is waited for (tests/integration/test_start_order.py); a URL that
    # cannot work is a mistake, reported at once.
    log = tmp_path / "x.log"
    log.write_text("a line\n")
    for command in (["stats"], ["ship", "--once", str(log)]):
        run = logpipe(*command, "--redis", "http://user:hunter2@127.0.0.1:1/0")
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert "invalid broker URL 'http://user:***@127.0.0.1:1/0'" in run.stderr
        assert "hunter2" not in run.stderr


def test_unknown_store_url_is_explained(tmp_path):
    run = logpipe("search", "--store", "mongodb://x", "*")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "unknown store URL" in run.stderr
