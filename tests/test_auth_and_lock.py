"""Management authentication: the default-password lock, password login, access tokens, roles, /api/status."""

import re

import pytest
from sqlalchemy import select, update

from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON, hash_secret
from oneapi.services import accounts, cache
from tests.conftest import TEST_PASSWORD

LOCK_TEXT = "change the default password"
USER_PASSWORD = "user-pass-123"


def make_user(app, username, *, role=ROLE_COMMON, status=1, password=USER_PASSWORD, quota=0):
    with app.app_context():
        user = User(username=username, display_name=username, role=role, status=status, quota=quota)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user.id


def login(app, username, password=USER_PASSWORD):
    client = app.test_client()
    reply = client.post("/api/user/login", json={"username": username, "password": password})
    assert reply.status_code == 200 and reply.json["success"], reply.json
    return client


def set_user_status(app, user_id, status):
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(status=status))
        cache.publish(accounts.user_topic(user_id))
        db.session.commit()


def stored_access_token(app, username="root"):
    with app.app_context():
        return db.session.scalar(select(User.access_token).where(User.username == username))


def everything_stored(app):
    """Every value of every row of every table, as one string."""
    with app.app_context():
        parts = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                parts.extend(str(value) for value in row)
        return "\n".join(parts)


def login_root_default(client):
    reply = client.post("/api/user/login", json={"username": "root", "password": "123456"})
    assert reply.status_code == 200 and reply.json["success"], reply.json


# --- the default-password lock -------------------------------------------------------------------

LOCKED_ROUTES = [
    ("GET", "/api/channel/"),
    ("POST", "/api/channel/"),
    ("GET", "/api/token/"),
    ("POST", "/api/token/"),
    ("PUT", "/api/token/"),
    ("DELETE", "/api/token/1"),
    ("POST", "/api/user/token"),
    ("GET", "/api/option/"),
    ("PUT", "/api/option/"),
    ("GET", "/api/notice"),
    ("GET", "/api/about"),
    ("GET", "/api/home_page_content"),
    ("GET", "/api/no/such/route"),
]


@pytest.mark.parametrize("method,path", LOCKED_ROUTES)
def test_locked_routes_answer_403_for_root(client, method, path):
    login_root_default(client)
    reply = client.open(path, method=method, json={"name": "x", "key": "sk-x", "value": "1"})
    assert reply.status_code == 403
    assert reply.json["success"] is False
    assert LOCK_TEXT in reply.json["message"]


@pytest.mark.parametrize("method,path", LOCKED_ROUTES)
def test_locked_routes_answer_403_for_anonymous(client, method, path):
    reply = client.open(path, method=method, json={})
    assert reply.status_code == 403
    assert reply.json["success"] is False and LOCK_TEXT in reply.json["message"]


def test_lock_applies_to_access_token_requests(app, client):
    with app.app_context():
        db.session.execute(update(User).where(User.username == "root").values(access_token=hash_secret("a" * 32)))
        db.session.commit()
    reply = app.test_client().get("/api/channel/", headers={"Authorization": "a" * 32})
    assert reply.status_code == 403 and LOCK_TEXT in reply.json["message"]


def test_open_routes_while_locked(client):
    status = client.get("/api/status")
    assert status.status_code == 200 and status.json["success"] is True
    login_root_default(client)
    me = client.get("/api/user/self")
    assert me.status_code == 200 and me.json["success"] is True
    assert me.json["data"]["username"] == "root" and me.json["data"]["password"] == ""
    assert me.json["data"]["access_token"] == ""
    logout = client.get("/api/user/logout")
    assert logout.status_code == 200 and logout.json["success"] is True
    # the session is gone: /api/user/self now needs a login again
    assert client.get("/api/user/self").status_code == 401


def test_pages_redirect_while_locked(client):
    anonymous = client.get("/")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].split("?")[0].endswith("/login")
    assert client.get("/login").status_code == 200
    login_root_default(client)
    logged_in = client.get("/")
    assert logged_in.status_code == 302
    assert logged_in.headers["Location"].split("?")[0].endswith("/user/password")
    assert client.get("/user/password").status_code == 200


def test_changing_the_password_opens_everything(app, client):
    login_root_default(client)
    assert client.get("/api/channel/").status_code == 403
    reply = client.put("/api/user/self", json={"password": TEST_PASSWORD})
    assert reply.status_code == 200 and reply.json["success"] is True, reply.json
    channels = client.get("/api/channel/")
    assert channels.status_code == 200 and channels.json == {"success": True, "message": "", "data": []}
    assert client.get("/").status_code == 200
    assert client.get("/api/notice").json["success"] is True
    with app.app_context():
        assert db.session.scalar(select(User.must_change_password).where(User.username == "root")) is False
    # the new password works, the old one does not
    fresh = app.test_client()
    assert fresh.post("/api/user/login", json={"username": "root", "password": "123456"}).json["success"] is False
    assert fresh.post("/api/user/login", json={"username": "root", "password": TEST_PASSWORD}).json["success"] is True


@pytest.mark.parametrize("password", ["123456", "short", "1234567", "x" * 65])
def test_bad_new_passwords_are_refused_and_keep_the_lock(client, password):
    login_root_default(client)
    reply = client.put("/api/user/self", json={"password": password})
    assert reply.json["success"] is False
    assert reply.json["message"]
    assert client.get("/api/channel/").status_code == 403
    # the default password still logs in: nothing was changed
    again = client.post("/api/user/login", json={"username": "root", "password": "123456"})
    assert again.json["success"] is True


def test_eight_character_password_is_accepted(client):
    login_root_default(client)
    assert client.put("/api/user/self", json={"password": "abcdefgh"}).json["success"] is True
    assert client.get("/api/channel/").status_code == 200


# --- login ---------------------------------------------------------------------------------------


def test_wrong_password_unknown_user_and_disabled_user_get_the_same_answer(app, root):
    make_user(app, "alice")
    make_user(app, "bob", status=2)
    fresh = app.test_client()
    wrong = fresh.post("/api/user/login", json={"username": "alice", "password": "not-her-password"})
    unknown = fresh.post("/api/user/login", json={"username": "nobody", "password": "whatever-123"})
    disabled = fresh.post("/api/user/login", json={"username": "bob", "password": USER_PASSWORD})
    for reply in (wrong, unknown, disabled):
        assert reply.json["success"] is False
        assert "data" not in reply.json or not reply.json["data"]
    assert wrong.json["message"] == unknown.json["message"] == disabled.json["message"]
    assert wrong.status_code == unknown.status_code == disabled.status_code
    # none of them got a session
    assert fresh.get("/api/user/self").status_code == 401


def test_login_returns_the_user_and_a_session(app, root):
    user_id = make_user(app, "alice")
    fresh = app.test_client()
    reply = fresh.post("/api/user/login", json={"username": "alice", "password": USER_PASSWORD})
    assert reply.json["success"] is True
    assert reply.json["data"]["id"] == user_id and reply.json["data"]["username"] == "alice"
    assert reply.json["data"]["role"] == ROLE_COMMON and reply.json["data"]["status"] == 1
    me = fresh.get("/api/user/self")
    assert me.status_code == 200 and me.json["data"]["id"] == user_id


def test_login_with_missing_fields_or_bad_body(app, root):
    fresh = app.test_client()
    assert fresh.post("/api/user/login", json={"username": "root"}).json["success"] is False
    bad = fresh.post("/api/user/login", data="not json", content_type="application/json")
    assert bad.status_code == 400 and bad.json["success"] is False


def test_disabling_a_user_ends_the_existing_session(app, root):
    user_id = make_user(app, "alice")
    alice = login(app, "alice")
    assert alice.get("/api/user/self").json["success"] is True
    set_user_status(app, user_id, 2)
    reply = alice.get("/api/user/self")
    # docs/compatibility.md: a disabled user gets 403 (the original's "user is banned"), not "not logged in"
    assert reply.status_code == 403
    assert reply.json["success"] is False and "disabled" in reply.json["message"]


# --- access tokens -------------------------------------------------------------------------------


def test_access_token_is_32_hex_and_works_with_and_without_bearer(app, root):
    reply = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"})
    assert reply.status_code == 200 and reply.json["success"] is True
    token = reply.json["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    for header in (token, f"Bearer {token}"):
        script = app.test_client()
        me = script.get("/api/user/self", headers={"Authorization": header})
        assert me.status_code == 200 and me.json["success"] is True
        assert me.json["data"]["username"] == "root"
        assert me.json["data"]["access_token"] == ""
        channels = script.get("/api/channel/", headers={"Authorization": header})
        assert channels.status_code == 200 and channels.json["success"] is True


def test_access_token_is_stored_hashed(app, root):
    token = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    stored = stored_access_token(app)
    assert stored and stored != token and token not in stored
    assert token not in everything_stored(app)


def test_get_user_token_is_405_and_creates_nothing(app, root):
    assert stored_access_token(app) is None
    reply = root.get("/api/user/token")
    assert reply.status_code == 405
    assert reply.json["success"] is False
    assert not re.search(r"[0-9a-f]{32}", reply.get_data(as_text=True))
    assert stored_access_token(app) is None
    # and with a token already made, GET leaves it alone
    token = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    before = stored_access_token(app)
    assert root.get("/api/user/token").status_code == 405
    assert stored_access_token(app) == before
    assert app.test_client().get("/api/user/self", headers={"Authorization": token}).json["success"] is True


def test_old_access_token_stops_working_after_a_new_one(app, root):
    old = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    script = app.test_client()
    assert script.get("/api/user/self", headers={"Authorization": old}).json["success"] is True
    new = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    assert new != old
    stale = app.test_client().get("/api/user/self", headers={"Authorization": old})
    assert stale.status_code == 200  # the original's answer for an unknown access token
    assert stale.json["success"] is False
    fresh = app.test_client().get("/api/user/self", headers={"Authorization": f"Bearer {new}"})
    assert fresh.json["success"] is True and fresh.json["data"]["username"] == "root"


def test_unknown_access_token_is_refused(app, root):
    reply = app.test_client().get("/api/channel/", headers={"Authorization": "Bearer " + "0" * 32})
    assert reply.json["success"] is False
    assert "data" not in reply.json


def test_access_token_of_a_disabled_user_is_refused(app, root):
    user_id = make_user(app, "alice")
    alice = login(app, "alice")
    token = alice.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    assert app.test_client().get("/api/user/self", headers={"Authorization": token}).json["success"] is True
    set_user_status(app, user_id, 2)
    reply = app.test_client().get("/api/user/self", headers={"Authorization": token})
    assert reply.status_code == 403
    assert reply.json["success"] is False and "disabled" in reply.json["message"]


# --- roles ---------------------------------------------------------------------------------------


def test_anonymous_gets_401(app, root):
    anonymous = app.test_client()
    for method, path in (("GET", "/api/channel/"), ("GET", "/api/token/"), ("GET", "/api/user/self"),
                         ("POST", "/api/user/token"), ("GET", "/api/option/")):
        reply = anonymous.open(path, method=method)
        assert reply.status_code == 401, path
        assert reply.json["success"] is False


ADMIN_ROUTES = [("GET", "/api/channel/"), ("POST", "/api/channel/"), ("PUT", "/api/channel/"),
                ("GET", "/api/channel/1"), ("DELETE", "/api/channel/1")]
ROOT_ROUTES = [("GET", "/api/option/"), ("PUT", "/api/option/")]


def test_common_user_gets_403_on_admin_and_root_routes(app, root):
    make_user(app, "alice")
    alice = login(app, "alice")
    for method, path in ADMIN_ROUTES + ROOT_ROUTES:
        reply = alice.open(path, method=method, json={"id": 1, "name": "x", "key": "sk-x", "type": 1,
                                                      "models": "m", "value": "1"})
        assert reply.status_code == 403, path
        assert reply.json["success"] is False
    # nothing was created or changed
    assert root.get("/api/channel/").json["data"] == []
    assert alice.get("/api/user/self").json["success"] is True
    assert alice.get("/api/token/").json == {"success": True, "message": "", "data": []}


def test_admin_can_manage_channels_but_not_options(app, root):
    make_user(app, "admin1", role=ROLE_ADMIN)
    admin = login(app, "admin1")
    assert admin.get("/api/channel/").status_code == 200
    for method, path in ROOT_ROUTES:
        reply = admin.open(path, method=method, json={"key": "SystemName", "value": "Hacked"})
        assert reply.status_code == 403 and reply.json["success"] is False
    assert app.test_client().get("/api/status").json["data"]["system_name"] == "One API"


def test_demotion_takes_effect_at_once(app, root):
    admin_id = make_user(app, "admin1", role=ROLE_ADMIN)
    admin = login(app, "admin1")
    assert admin.get("/api/channel/").status_code == 200
    with app.app_context():
        db.session.execute(update(User).where(User.id == admin_id).values(role=ROLE_COMMON))
        cache.publish(accounts.user_topic(admin_id))
        db.session.commit()
    reply = admin.get("/api/channel/")
    assert reply.status_code == 401  # the demotion ended the session
    assert admin.get("/api/user/self").status_code == 401
    again = login(app, "admin1")
    assert again.get("/api/user/self").json["data"]["role"] == ROLE_COMMON
    assert again.get("/api/channel/").status_code == 403


# --- /api/status ---------------------------------------------------------------------------------

STATUS_FIELDS = ("version, start_time, email_verification, github_oauth, github_client_id, lark_client_id, system_name, "
                 "logo, footer_html, wechat_qrcode, wechat_login, server_address, turnstile_check, turnstile_site_key, "
                 "top_up_link, chat_link, quota_per_unit, display_in_currency, oidc, oidc_client_id, oidc_well_known, "
                 "oidc_authorization_endpoint, oidc_token_endpoint, oidc_userinfo_endpoint").split(", ")


def test_status_has_every_field_of_the_spec(client):
    reply = client.get("/api/status")
    assert reply.status_code == 200
    body = reply.json
    assert body["success"] is True and body["message"] == ""
    missing = [name for name in STATUS_FIELDS if name not in body["data"]]
    assert missing == []
    data = body["data"]
    assert data["system_name"] == "One API"
    assert data["quota_per_unit"] == 500000
    assert data["display_in_currency"] is True
    assert data["github_oauth"] is False and data["email_verification"] is False
    assert isinstance(data["start_time"], int) and data["start_time"] > 1_600_000_000
    assert isinstance(data["version"], str) and data["version"]


def test_status_reflects_options(root):
    assert root.put("/api/option/", json={"key": "SystemName", "value": "My Gateway"}).json["success"] is True
    assert root.put("/api/option/", json={"key": "DisplayInCurrencyEnabled", "value": "false"}).json["success"] is True
    data = root.get("/api/status").json["data"]
    assert data["system_name"] == "My Gateway" and data["display_in_currency"] is False


def test_every_api_response_has_a_request_id(client):
    for reply in (client.get("/api/status"), client.get("/api/channel/"), client.post("/api/user/login", json={})):
        assert re.fullmatch(r"\d{20,}", reply.headers.get("X-Oneapi-Request-Id", ""))


def test_cookie_sessions_must_send_json_content_type(root):
    """A cross-site form cannot send application/json: cookie-authenticated writes require it (CSRF)."""
    reply = root.post("/api/token/", data='{"name": "forged"}', content_type="text/plain")
    assert reply.status_code == 415 and "application/json" in reply.json["message"]
    assert root.get("/api/token/search?keyword=forged").json["data"] == []
    token = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    scripted = root.application.test_client()
    reply = scripted.post("/api/token/", data='{"name": "scripted"}', content_type="text/plain",
                          headers={"Authorization": token})
    assert reply.json["success"]  # access-token scripts may leave the header out, as with the original
