"""Accounts of the web page (search/web/accounts.py, roles.py, audit.py): the store and its
hashing, one-time links under an injected clock, the role of every action over the real app
and an embedded store, the audit log, and ``logpipe ui user``."""

from __future__ import annotations

import re
import stat
import warnings

import orjson
import pytest

from logpipe.common.cli import main as cli_main
from logpipe.common.config import home
from logpipe.search.web.accounts import (AccountError, AccountStore, SignInError,
                                         hash_password, verify_password)
from logpipe.search.web.app import create_app
from logpipe.search.web.audit import AuditLog
from logpipe.search.web.data import Data
from tests.support.stores import one_event_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "roles-test-token-0123456789"
ORIGIN = {"Origin": "http://testserver"}
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = AccountStore(tmp_path / "state" / "accounts.db", clock=clock)
    yield s
    s.close()


@pytest.fixture
def store_url(tmp_path):
    return one_event_store(tmp_path / "events.db")


# ------------------------------------------------------------------ hashing and the store

def test_passwords_are_scrypt_with_a_salt_and_verify_only_themselves():
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    assert a.startswith("scrypt$16384$8$1$") and a != b          # a fresh salt each time
    assert PASSWORD not in a
    assert verify_password(PASSWORD, a) and verify_password(PASSWORD, b)
    assert not verify_password(PASSWORD + "!", a)
    assert not verify_password(PASSWORD, None)
    assert not verify_password(PASSWORD, "scrypt$x$y")           # damaged: no, not an error
    assert not verify_password(PASSWORD, "md5$1$2$3$00$00")


def test_the_accounts_file_is_private_and_holds_no_secret_in_clear(store, tmp_path):
    token = store.add("alice", "viewer")
    store.set_password("alice", PASSWORD)
    path = tmp_path / "state" / "accounts.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    blob = path.read_bytes()
    assert token.encode() not in blob and PASSWORD.encode() not in blob


def test_names_roles_and_passwords_are_checked(store):
    for bad in ("", "Alice", "a b", "-x", "x" * 33, "a.b", "é"):
        with pytest.raises(AccountError, match="account name"):
            store.add(bad, "viewer")
    with pytest.raises(AccountError, match="not one of viewer, operator, admin"):
        store.add("bob", "root")
    store.add("bob", "viewer")
    with pytest.raises(AccountError, match="already an account 'bob'"):
        store.add("bob", "admin")
    with pytest.raises(AccountError, match="10 to 1024 characters"):
        store.set_password("bob", "short")
    with pytest.raises(AccountError, match="no account 'carol'"):
        store.set_role("carol", "admin")
    store.set_role("bob", "operator")
    assert store.get("bob").role == "operator"
    store.remove("bob")
    assert store.get("bob") is None and store.list() == []


def test_a_link_works_once(store):
    token = store.add("alice", "operator")
    assert store.redeem(token).name == "alice"
    with pytest.raises(SignInError, match="already used"):
        store.redeem(token)
    with pytest.raises(SignInError, match="not known"):
        store.redeem("made-up")


def test_a_link_expires_and_a_new_link_replaces_the_old(store, clock):
    token = store.add("alice", "viewer", link_hours=1)
    clock.now += 3600
    with pytest.raises(SignInError, match="expired"):
        store.redeem(token)
    first = store.new_link("alice", 1)
    second = store.new_link("alice", 1)
    with pytest.raises(SignInError, match="not known"):
        store.redeem(first)
    clock.now += 3599
    assert store.redeem(second).role == "viewer"


def test_password_sign_in(store):
    store.add("alice", "viewer")
    with pytest.raises(SignInError, match="wrong name or password"):
        store.authenticate("alice", PASSWORD)       # no password set yet
    store.set_password("alice", PASSWORD)
    assert store.authenticate("alice", PASSWORD).name == "alice"
    for name, password in (("alice", "wrong password!"), ("nobody", PASSWORD), ("", "")):
        with pytest.raises(SignInError, match="wrong name or password"):
            store.authenticate(name, password)


def test_role_and_password_changes_bump_the_generation(store):
    store.add("alice", "viewer")
    g = store.get("alice").generation
    store.set_role("alice", "operator")
    store.set_password("alice", PASSWORD)
    assert store.get("alice").generation == g + 2


def test_the_audit_log_is_private_appended_and_read_newest_first(tmp_path, clock):
    log = AuditLog(tmp_path / "a" / "audit.log", clock=clock)
    log.record("replay", "alice", role="operator", ip="127.0.0.1", replayed=2)
    clock.now += 1
    log.record("sign_in_failed", "(unknown name)", ok=False)
    path = tmp_path / "a" / "audit.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes().splitlines()[0]
    assert orjson.loads(first)["what"] == {"replayed": 2}
    with open(path, "ab") as f:
        f.write(b"not json\n")
    entries = log.entries()
    assert [e["action"] for e in entries] == ["unreadable line", "sign_in_failed", "replay"]


# ------------------------------------------------------------------ over the app

@pytest.fixture
def app_parts(tmp_path, store_url, clock):
    accounts = AccountStore(tmp_path / "state" / "accounts.db", clock=clock)
    audit = AuditLog(tmp_path / "state" / "audit.log", clock=clock)
    app = create_app(Data(store_url), TOKEN, clock=clock, accounts_store=accounts,
                     audit_log=audit)
    return app, accounts, audit


def signed_in(app, accounts, name: str, role: str) -> TestClient:
    token = accounts.add(name, role)
    client = TestClient(app)
    page = client.get(f"/signin?link={token}")
    assert page.status_code == 200 and 'id="signin-button"' in page.text
    r = client.post("/signin", data={"link": token}, headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account", r.text
    assert "logpipe_ui=" in r.headers["set-cookie"] and token not in r.headers["set-cookie"]
    return client


def csrf(client: TestClient, path: str = "/account") -> str:
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', client.get(path).text).group(1)


def post(client, path, body, **kw):
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf(client), **ORIGIN}, **kw)


CHANGES = [("/api/dlq/replay", {"filter": {"stage": "index"}}),
           ("/api/dlq/purge", {"filter": {}, "confirm": "0"}),
           ("/api/alerts/ack", {"rule": "r", "key": ""}),
           ("/api/alerts/mute", {"rule": "r", "minutes": 5}),
           ("/api/alerts/rules", {"name": "r", "kind": "count", "query": "*",
                                  "window": "5m", "threshold": 1}),
           ("/api/alerts/rules/delete", {"name": "r"})]


def test_a_viewer_reads_but_changes_nothing(app_parts):
    app, accounts, audit = app_parts
    with signed_in(app, accounts, "vera", "viewer") as web:
        for path in ("/", "/api/search?q=*", "/trace/x", "/dlq", "/alerts", "/account"):
            assert web.get(path).status_code in (200, 404, 503), path
        assert "the one line" in web.get("/api/search?q=*").text
        for path, body in CHANGES:
            r = post(web, path, body)
            assert r.status_code == 403, (path, r.text)
            assert "needs the operator role" in r.json()["error"]
            assert "logpipe ui user role vera operator" in r.json()["error"]
        r = post(web, "/api/saved", {"name": "mine", "q": "*"})     # saving a search: a viewer's
        assert r.status_code != 403, r.text
        for path in ("/audit", "/accounts/add"):
            assert web.get(path).status_code in (403, 405)
        r = web.post("/accounts/add", data={"csrf": csrf(web), "name": "x", "role": "admin"},
                     headers=ORIGIN)
        assert r.status_code == 403 and accounts.get("x") is None
        html = web.get("/alerts").text
        assert 'id="new-rule"' not in html and "vera (viewer)" in html
        assert 'id="nav-audit"' not in html
    denied = [e for e in audit.entries() if e["action"] in ("replay", "purge", "alert_mute")]
    assert denied and all(e["who"] == "vera" and not e["ok"] for e in denied)
    assert all(e["what"]["denied"] == "needs operator" for e in denied)


def test_an_operator_edits_alert_rules_and_the_audit_names_them(app_parts):
    app, accounts, audit = app_parts
    with signed_in(app, accounts, "otto", "operator") as web:
        path, body = CHANGES[4]
        r = post(web, path, body)
        assert r.status_code == 200, r.text
        assert post(web, "/api/alerts/mute", {"rule": "r", "minutes": 5}).status_code == 200
        assert post(web, "/api/alerts/rules/delete", {"name": "r"}).status_code == 200
        assert 'id="new-rule"' in web.get("/alerts").text
        assert web.get("/audit").status_code == 403
        r = web.post("/accounts/role", data={"csrf": csrf(web), "name": "otto",
                                             "role": "admin"}, headers=ORIGIN)
        assert r.status_code == 403 and accounts.get("otto").role == "operator"
    done = [(e["who"], e["role"], e["action"], e["ok"]) for e in reversed(audit.entries())]
    assert ("otto", "operator", "alert_rule_saved", True) in done
    assert ("otto", "operator", "alert_mute", True) in done
    assert ("otto", "operator", "alert_rule_deleted", True) in done
    assert ("otto", "operator", "sign_in", True) in done


def test_only_an_admin_manages_accounts_and_the_token_is_an_admin(app_parts):
    app, accounts, audit = app_parts
    with signed_in(app, accounts, "ada", "admin") as web:
        r = web.post("/accounts/add", data={"csrf": csrf(web), "name": "newbie",
                                            "role": "viewer"}, headers=ORIGIN)
        assert r.status_code == 200, r.text
        link = re.search(r'id="new-link">[^<]*<code>([^<]+)</code>', r.text).group(1)
        assert link.startswith("http://testserver/signin?link=")
        assert accounts.get("newbie").role == "viewer"
        assert web.post("/accounts/role", data={"csrf": csrf(web), "name": "newbie",
                                                "role": "operator"},
                        headers=ORIGIN).status_code == 200
        assert accounts.get("newbie").role == "operator"
        page = web.get("/audit").text
        assert "user_add" in page and "user_role" in page and 'id="nav-audit"' in page
        r = web.post("/accounts/add", data={"name": "sneaky", "role": "admin"}, headers=ORIGIN)
        assert r.status_code == 403 and accounts.get("sneaky") is None     # no CSRF token
    token_link = link.split("link=")[1]
    assert token_link not in (audit.path.read_text())
    with TestClient(app) as web:
        assert web.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
        assert web.get("/audit").status_code == 200
        r = web.post("/accounts/remove", data={"csrf": csrf(web), "name": "newbie"},
                     headers=ORIGIN)
        assert r.status_code == 200 and accounts.get("newbie") is None
    assert audit.entries()[0]["who"] == "token" and audit.entries()[0]["action"] == "user_remove"


def test_a_link_signs_in_once_and_expires(app_parts, clock):
    app, accounts, audit = app_parts
    token = accounts.add("lena", "viewer", link_hours=2)
    with TestClient(app) as web:
        assert web.post("/signin", data={"link": token}, headers={
            "Origin": "http://evil.example"}).status_code == 403
        assert web.post("/signin", data={"link": token}, headers=ORIGIN,
                        follow_redirects=False).status_code == 303
        assert web.get("/api/search?q=*").status_code == 200
    with TestClient(app) as other:
        r = other.post("/signin", data={"link": token}, headers=ORIGIN)
        assert r.status_code == 401 and "already used" in r.text
        assert other.get("/api/search?q=*").status_code == 401
    late = accounts.new_link("lena", 2)
    clock.now += 2 * 3600
    with TestClient(app) as web:
        r = web.post("/signin", data={"link": late}, headers=ORIGIN)
        assert r.status_code == 401 and "expired" in r.text
    failed = [e for e in audit.entries() if e["action"] == "sign_in_failed"]
    assert len(failed) == 2 and all(token not in orjson.dumps(e).decode() for e in failed)


def test_password_set_after_the_link_then_sign_in_by_password(app_parts):
    app, accounts, audit = app_parts
    with signed_in(app, accounts, "pia", "viewer") as web:
        r = web.post("/account/password", data={"csrf": csrf(web), "password": PASSWORD,
                                                "again": PASSWORD}, headers=ORIGIN)
        assert r.status_code == 200 and 'id="account-done"' in r.text
        assert web.get("/api/search?q=*").status_code == 200     # a fresh session
    with TestClient(app) as web:
        r = web.post("/login", data={"name": "pia", "password": "not it at all"},
                     headers=ORIGIN)
        assert r.status_code == 401 and "wrong name or password" in r.text
        r = web.post("/login", data={"name": PASSWORD, "password": "x"}, headers=ORIGIN)
        assert r.status_code == 401
        assert web.get("/").status_code == 401
        r = web.post("/login", data={"name": "pia", "password": PASSWORD}, headers=ORIGIN,
                     follow_redirects=False)
        assert r.status_code == 303
        assert "pia (viewer)" in web.get("/").text
    text = audit.path.read_text()
    assert PASSWORD not in text
    whos = [(e["action"], e["who"]) for e in audit.entries()]
    assert ("sign_in_failed", "pia") in whos and ("sign_in_failed", "(unknown name)") in whos
    assert ("password_set", "pia") in whos and ("sign_in", "pia") in whos


def test_removing_or_demoting_an_account_ends_its_sessions_at_once(app_parts):
    app, accounts, _ = app_parts
    with signed_in(app, accounts, "omar", "operator") as web:
        assert web.get("/dlq").status_code in (200, 503)
        accounts.set_role("omar", "viewer")
        r = web.get("/api/search?q=*")
        assert r.status_code == 401 and "role or password changed" in r.text
    with signed_in(app, accounts, "rita", "viewer") as web:
        accounts.remove("rita")
        r = web.get("/")
        assert r.status_code == 401 and "account was removed" in r.text


def test_the_sign_in_pages_show_nothing_of_the_logs(app_parts):
    app, _, _ = app_parts
    with TestClient(app) as web:
        for path in ("/login", "/signin"):
            r = web.get(path)
            assert r.status_code == 200 and "the one line" not in r.text
        assert web.get("/static/app.css").status_code == 200
        assert web.get("/static/app.js").status_code == 401
        assert web.get("/").status_code == 401


# ------------------------------------------------------------------ the CLI

def test_cli_user_commands(capsys, monkeypatch):
    assert cli_main(["ui", "user", "add", "carl", "--role", "operator"]) == 0
    out = capsys.readouterr()
    link = out.out.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:5601/signin\?link=[A-Za-z0-9_-]{40,}", link)
    assert cli_main(["ui", "user", "list"]) == 0
    assert re.search(r"carl\s+operator\s+no password", capsys.readouterr().out)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(PASSWORD + "\n"))
    assert cli_main(["ui", "user", "passwd", "carl"]) == 0
    assert cli_main(["ui", "user", "role", "carl", "admin"]) == 0
    assert cli_main(["ui", "user", "role", "carl", "god"]) != 0
    assert "not one of viewer, operator, admin" in capsys.readouterr().err
    assert cli_main(["ui", "user", "remove", "carl"]) == 0
    assert cli_main(["ui", "user", "remove", "carl"]) != 0
    state = home()
    assert stat.S_IMODE((state / "accounts.db").stat().st_mode) == 0o600
    log = (state / "audit.log").read_text()
    assert PASSWORD not in log and link.split("link=")[1] not in log
    actions = [orjson.loads(x)["action"] for x in log.splitlines()]
    assert actions == ["user_add", "password_set", "user_role", "user_remove"]
