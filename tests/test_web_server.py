"""``logpipe ui``'s bind address and token file rules (search/web/server.py, auth.py)."""

import os
import stat

import pytest

from logpipe.common.errors import ConfigError
from logpipe.search.web.auth import Guard, load_token
from logpipe.search.web.server import is_loopback, parse_bind


def test_bind_addresses():
    assert parse_bind("127.0.0.1:5601") == ("127.0.0.1", 5601)
    assert parse_bind("[::1]:8080") == ("::1", 8080)
    for bad in ("5601", "host:port", "1.2.3.4:70000"):
        with pytest.raises(ConfigError):
            parse_bind(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.org")


def test_token_file_made_private_and_reused(tmp_path):
    path = tmp_path / "dir" / "token"
    token = load_token(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(str(path)) == token and len(token) >= 32
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_token(str(path))


def test_changes_need_the_csrf_token_and_the_same_origin():
    guard = Guard("t" * 32)
    session, _ = guard.session(guard.new_session())
    ok = {"x-csrf-token": guard.csrf_of(session), "origin": "http://127.0.0.1:5601",
          "host": "127.0.0.1:5601"}
    assert guard.change_allowed("cookie", ok, "http", session) is None
    assert guard.change_allowed("cookie", {**ok, "origin": "http://evil"}, "http", session)
    assert guard.change_allowed("cookie", {**ok, "x-csrf-token": "x"}, "http", session)
    no_origin = {k: v for k, v in ok.items() if k != "origin"}
    assert guard.change_allowed("cookie", no_origin, "http", session)
    assert guard.change_allowed("cookie", {**no_origin, "referer": "http://127.0.0.1:5601/dlq"},
                                "http", session) is None
    assert guard.change_allowed("bearer", {}, "http") is None
    # the CSRF token is the session's: another session's (or none) is refused
    other, _ = guard.session(guard.new_session())
    assert other != session and guard.csrf_of(other) != guard.csrf_of(session)
    assert guard.change_allowed("cookie", ok, "http", other)
    assert guard.change_allowed("cookie", ok, "http", None)
