"""A broker URL read from a URL file: its credentials are read from the file again for every new
connection (common/broker/connection.py: UrlFileCredentials), so a password rotated by
`logpipe acl setup` reaches a running process at its next reconnect."""

from __future__ import annotations

from logpipe.common.broker import connect
from logpipe.common.config import resolve_redis_url
from logpipe.common.private import write_private


def test_a_reconnect_reads_the_rewritten_file(tmp_path):
    url_file = tmp_path / "indexer.url"
    write_private(url_file, "redis://logpipe-indexer:old%40pw@127.0.0.1:6399/0\n")
    client = connect(resolve_redis_url(str(url_file)))
    kwargs = client.connection_pool.connection_kwargs
    assert "password" not in kwargs or kwargs["password"] is None  # only the provider has it
    provider = kwargs["credential_provider"]
    assert provider.get_credentials() == ("logpipe-indexer", "old@pw")
    # several brokers in one file: the one of this client's address counts
    write_private(url_file, "redis://logpipe-indexer:other@127.0.0.2:6399/0 "
                            "redis://logpipe-indexer:new@127.0.0.1:6399/0\n")
    assert provider.get_credentials() == ("logpipe-indexer", "new")
    url_file.unlink()  # a file that cannot be read: the credentials it started with
    assert provider.get_credentials() == ("logpipe-indexer", "old@pw")


def test_a_url_given_as_such_keeps_its_password():
    client = connect("redis://:plain@127.0.0.1:6399/0")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs.get("password") == "plain" and kwargs.get("credential_provider") is None
