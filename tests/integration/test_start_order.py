"""Start order never matters; configuration mistakes exit at once.

``logpipe ship`` and ``logpipe stats`` started before the broker wait for it (one log line when
it is unreachable, one when it is back) and then do their work; a wrong password or a user
without permission exits with code 2 and a message that never shows the password. Every wait
here is on a real signal (a log line, the server answering), never a sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from logpipe.common.broker import connect
from logpipe.services.valkey import ValkeyServer, find_free_port
from tests.integration.test_shipper_helpers import Agent, Writer, records, wait_for

pytestmark = pytest.mark.integration
SECRET = "s3cret-Pass-4-test"


@pytest.fixture
def later_valkey(tmp_path):
    """A server whose port and password are known now, started by the test when it wants."""
    server = ValkeyServer(data_dir=tmp_path / "valkey", port=find_free_port(), password=SECRET)
    yield server
    server.cleanup()


def test_shipper_started_before_the_broker_delivers_everything(tmp_path, later_valkey):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "early")
    w.write(1500)
    agent = Agent(tmp_path, later_valkey.url, "--batch-lines", "200", str(logs / "*.log"))
    agent.start()
    try:
        wait_for(lambda: "event=broker_down" in agent.output(), what="broker_down", agent=agent)
        assert agent.proc.poll() is None, agent.output()  # waiting, not exited
        later_valkey.start()
        client = connect(later_valkey.url)
        w.write(500)
        wait_for(lambda: {r["line"] for r in records(client)} >= set(w.written), timeout=120,
                 what="all lines", agent=agent)
    finally:
        code = agent.stop()
    assert code == 0, agent.output()
    out = agent.output()
    assert out.count("event=broker_down") == 1, out
    assert out.count("event=broker_up") == 1, out
    assert SECRET not in out
    assert sorted(r["line"] for r in records(client)) == sorted(w.written)
    client.close()


def test_shipper_once_started_before_the_broker_exits_0_when_delivered(tmp_path, later_valkey):
    log = tmp_path / "once.log"
    w = Writer(log, "once-early")
    w.write(700)
    agent = Agent(tmp_path, later_valkey.url, "--once", str(log)).start()
    try:
        wait_for(lambda: "event=broker_down" in agent.output(), what="broker_down", agent=agent)
        later_valkey.start()
        assert agent.proc.wait(120) == 0, agent.output()
    finally:
        agent.stop()
    client = connect(later_valkey.url)
    assert [r["line"] for r in records(client)] == w.written
    client.close()


@pytest.fixture
def running_valkey(tmp_path):
    server = ValkeyServer(data_dir=tmp_path / "valkey-up", password=SECRET)
    server.start()
    yield server
    server.cleanup()


def _with_credentials(server: ValkeyServer, user: str, password: str) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def test_shipper_with_a_wrong_password_exits_2_without_showing_it(tmp_path, running_valkey):
    log = tmp_path / "x.log"
    Writer(log, "pw").write(10)
    wrong = "Wr0ng-Secret-Value"
    agent = Agent(tmp_path, _with_credentials(running_valkey, "default", wrong), str(log))
    agent.start()
    code = agent.proc.wait(60)  # a guard against waiting forever, not a timing assertion
    out = agent.output()
    assert code == 2, out
    assert "refused the password" in out and "Traceback" not in out
    assert wrong not in out and SECRET not in out
    assert "event=broker_down" not in out  # a mistake, not an outage to wait out


def test_shipper_without_permission_on_the_list_exits_2(tmp_path, running_valkey):
    admin = connect(running_valkey.url)
    admin.execute_command("ACL", "SETUSER", "agent1", "on", ">agent-pw-1", "~other:*", "+@all")
    admin.close()
    log = tmp_path / "x.log"
    Writer(log, "acl").write(10)
    agent = Agent(tmp_path, _with_credentials(running_valkey, "agent1", "agent-pw-1"), str(log))
    agent.start()
    code = agent.proc.wait(60)
    out = agent.output()
    assert code == 2, out
    assert "NOPERM" in out and "logpipe:raw" in out and "Traceback" not in out
    assert "agent-pw-1" not in out


def test_shipper_with_a_bad_url_exits_2(tmp_path):
    log = tmp_path / "x.log"
    Writer(log, "url").write(1)
    agent = Agent(tmp_path, "http://127.0.0.1:1/", str(log)).start()
    code = agent.proc.wait(60)
    out = agent.output()
    assert code == 2 and "invalid broker URL" in out and "Traceback" not in out, out


def _stats(url: str, tmp_path, *args: str) -> tuple[subprocess.Popen, "os.PathLike"]:
    err = tmp_path / "stats.err"
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home")}
    env.pop("LOGPIPE_REDIS_URL", None)
    with open(err, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "stats", "--redis", url,
                                 *args], stdout=subprocess.PIPE, stderr=f, env=env)
    return proc, err


def test_stats_started_before_the_broker_waits_for_it(tmp_path, later_valkey):
    proc, err = _stats(later_valkey.url, tmp_path, "--json")
    try:
        wait_for(lambda: "broker_unreachable" in err.read_text(), what="broker_unreachable")
        assert proc.poll() is None
        later_valkey.start()
        client = connect(later_valkey.url)
        client.rpush("logpipe:raw", b"one", b"two")
        client.close()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert proc.returncode == 0, text
    assert text.count("broker_unreachable") == 1 and text.count("broker_back") == 1, text
    assert SECRET not in text
    assert json.loads(out)["raw_list"] == 2


def test_stats_with_a_wrong_password_exits_2_without_showing_it(tmp_path, running_valkey):
    wrong = "An0ther-Wrong-Secret"
    proc, err = _stats(_with_credentials(running_valkey, "default", wrong), tmp_path)
    assert proc.wait(60) == 2
    proc.stdout.close()
    text = err.read_text()
    assert "refused the password" in text and "Traceback" not in text
    assert wrong not in text and SECRET not in text
    assert "broker_unreachable" not in text
