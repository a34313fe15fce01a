"""``logpipe ui``'s sign-in: the token's redirect stays on this origin; sessions are random,
signed, expire and are revoked by ``--rotate-token`` (search/web/auth.py), over the real app
and an embedded store."""

from __future__ import annotations

import re
import warnings

import pytest

from logpipe.common.cli import main as cli_main
from logpipe.common.config import home
from logpipe.search.web.app import create_app
from logpipe.search.web.auth import KEY_FILE, Secrets, load_token, same_origin_location
from logpipe.search.web.data import Data
from tests.support.stores import one_event_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "session-test-token-0123456789"


@pytest.fixture
def store_url(tmp_path):
    return one_event_store(tmp_path / "events.db")


def sign_in(client: TestClient, token: str = TOKEN) -> str:
    r = client.get(f"/?token={token}", follow_redirects=False)
    assert r.status_code == 303, r.text
    return re.match(r"logpipe_ui=([^;]+)", r.headers["set-cookie"]).group(1)


# ------------------------------------------------------------------ the redirect

@pytest.mark.parametrize("raw, location", [
    (b"/", "/"),
    (b"/trace/abc", "/trace/abc"),
    (b"//evil.example/x", "/"),
    (b"///evil.example/x", "/"),
    (b"/\\evil.example/x", "/"),
    (b"/\\/evil.example", "/"),
    (b"/a\r\nSet-Cookie: x=1", "/"),
    (b"/a\x00b", "/"),
    (b"/a\tb", "/"),
    (b"/%2F%2Fevil.example", "/%2F%2Fevil.example"),       # one path on this origin
    (b"/caf\xc3\xa9", "/caf%C3%A9"),                          # not Latin-1: encoded
    (b"/caf\xe9", "/caf%E9"),
    (b"javascript:alert(1)", "/"),
    (b"https://evil.example/", "/"),
])
def test_the_sign_in_redirect_goes_only_to_a_path_on_this_origin(raw, location):
    scope = {"raw_path": raw, "path": raw.decode("latin-1"), "root_path": "",
             "query_string": b"q=a&token=T&b=%C3%A9"}
    got = same_origin_location(scope)
    assert got == location + "?q=a&b=%C3%A9"
    assert got.isascii() and not got.startswith("//") and "\\" not in got


@pytest.mark.parametrize("path", ["//evil.example/x", "/\\evil.example/x", "//evil.example"])
def test_a_hostile_path_with_the_token_redirects_home(store_url, path):
    with TestClient(create_app(Data(store_url), TOKEN)) as client:
        r = client.get(f"http://testserver{path}?token={TOKEN}", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/"
        assert TOKEN not in r.headers["location"] and TOKEN not in r.headers["set-cookie"]


def test_a_path_beyond_latin_1_signs_in_and_redirects_encoded(store_url):
    with TestClient(create_app(Data(store_url), TOKEN)) as client:
        r = client.get(f"/trace/\u65e5\u672c?token={TOKEN}", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/trace/%E6%97%A5%E6%9C%AC"


# ------------------------------------------------------------------ sessions

def test_sessions_are_random_and_each_one_works(store_url):
    with TestClient(create_app(Data(store_url), TOKEN)) as a, \
            TestClient(create_app(Data(store_url), TOKEN)) as b:
        first, second = sign_in(a), sign_in(b)
        assert first != second and TOKEN not in first
        assert a.get("/api/search").json()["total"] == 1
        assert b.get("/api/search").json()["total"] == 1


def test_a_session_expires_after_its_lifetime(store_url):
    now = [1_800_000_000.0]
    app = create_app(Data(store_url), TOKEN, session_hours=1, clock=lambda: now[0])
    with TestClient(app) as client:
        r = client.get(f"/?token={TOKEN}", follow_redirects=False)
        assert "Max-Age=3600" in r.headers["set-cookie"]
        cookie = client.cookies["logpipe_ui"]
        now[0] += 3599
        assert client.get("/api/search").status_code == 200
        now[0] += 1
        expired = client.get("/api/search")
        assert expired.status_code == 401
        assert "session expired" in expired.json()["error"]
        assert "Max-Age=0" in expired.headers["set-cookie"]        # the browser drops it
        client.cookies.set("logpipe_ui", cookie)
        page = client.get("/")
        assert page.status_code == 401 and "expired" in page.text and "the one line" not in page.text
        client.cookies.clear()
        sign_in(client)                                            # the token starts a new one
        assert client.get("/api/search").status_code == 200


def test_a_session_cookie_cannot_be_altered(store_url):
    now = [1_800_000_000.0]
    app = create_app(Data(store_url), TOKEN, session_hours=1, clock=lambda: now[0])
    with TestClient(app) as client:
        sid, issued, mac = sign_in(client).split(".")
        now[0] += 7200
        assert client.get("/api/search").status_code == 401
        # a later issue time under the old signature does not revive it
        client.cookies.set("logpipe_ui", f"{sid}.{int(now[0])}.{mac}")
        assert client.get("/api/search").status_code == 401
        client.cookies.set("logpipe_ui", f"{sid}.{int(now[0])}.{'0' * 64}")
        assert client.get("/api/search").status_code == 401


def test_a_wrong_token_in_the_address_does_not_renew_a_session(store_url):
    with TestClient(create_app(Data(store_url), TOKEN)) as client:
        sign_in(client)
        r = client.get("/?token=not-the-token-at-all", follow_redirects=False)
        assert r.status_code == 303 and "set-cookie" not in r.headers
        assert r.headers["location"] == "/"


def test_the_csrf_token_belongs_to_its_session(store_url):
    with TestClient(create_app(Data(store_url), TOKEN)) as a, \
            TestClient(create_app(Data(store_url), TOKEN)) as b:
        sign_in(a), sign_in(b)
        csrf = [re.search(r'name="csrf-token" content="([0-9a-f]+)"', c.get("/").text).group(1)
                for c in (a, b)]
        assert csrf[0] != csrf[1]
        r = a.post("/api/dlq/replay", json={"filter": {}},
                   headers={"X-CSRF-Token": csrf[1], "Origin": "http://testserver"})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]


def test_rotate_token_revokes_every_session(store_url, tmp_path, capsys):
    token_file = tmp_path / "ui" / "token"
    token = load_token(str(token_file))
    app = create_app(Data(store_url), Secrets(token, token_file, home() / KEY_FILE))
    with TestClient(app) as client:
        sign_in(client, token)
        assert client.get("/api/search").status_code == 200
        capsys.readouterr()
        assert cli_main(["ui", "--rotate-token", "--token-file", str(token_file),
                         "--bind", "127.0.0.1:5601"]) == 0
        out = capsys.readouterr()
        new = token_file.read_text().strip()
        assert new != token and out.out.strip() == f"http://127.0.0.1:5601/?token={new}"
        assert "revoked" in out.err
        assert client.get("/api/search").status_code == 401                       # the cookie
        assert client.get("/api/search", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 401                                     # the old token
        client.cookies.clear()
        assert client.get(f"/?token={token}", follow_redirects=False).status_code == 401
        sign_in(client, new)
        assert client.get("/api/search").json()["total"] == 1


def test_rotate_token_needs_a_token_file_and_hours_above_zero(capsys):
    assert cli_main(["ui", "--rotate-token"]) == 2
    assert "--token-file" in capsys.readouterr().err
    assert cli_main(["ui", "--session-hours", "0", "--bind", "127.0.0.1:0"]) == 2
    assert "--session-hours" in capsys.readouterr().err
