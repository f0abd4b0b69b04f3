"""Getting an account and keeping it safe (issue #6): registration switches, email verification, invitation
rewards, password reset and email binding against a real SMTP server on 127.0.0.1 (aiosmtpd), Turnstile
against a local siteverify, and sessions that end when they should."""

import json
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select, update

from oneapi.extensions import db
from oneapi.models import Log, LogType, Token, User, VerificationCode
from tests.test_console_pages import csrf
from tests.test_egress import LocalServer
from tests.test_notify import smtp  # noqa: F401  (the SMTP server fixture)

PASSWORD = "a-good-password"


def set_options(admin, **values):
    for key, value in values.items():
        reply = admin.put("/api/option/", json={"key": key, "value": str(value)}).json
        assert reply["success"], reply


@pytest.fixture
def inbox(root, smtp):  # noqa: F811
    server = smtp()
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=server.port, SMTPFrom="gateway@example.test",
                SystemName="Gateway", ServerAddress="https://gateway.example.test")
    return server


def wait_for_mail(inbox, count, seconds=5.0):
    deadline = time.monotonic() + seconds
    while len(inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(inbox.messages) >= count, inbox.messages
    return inbox.messages[count - 1]


def code_in(message):
    return re.search(r"verification code is (\w+)", message["body"]).group(1)


def register(client, **fields):
    return client.post("/api/user/register", json={"username": "alice", "password": PASSWORD, **fields}).json


def login(app, username, password=PASSWORD):
    client = app.test_client()
    reply = client.post("/api/user/login", json={"username": username, "password": password}).json
    assert reply["success"], reply
    return client


def user(app, username):
    with app.app_context():
        row = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge_all()
        return row


# --- registration ------------------------------------------------------------------------------------

def test_register_gives_the_new_user_quota_and_a_default_token(app, root):
    set_options(root, QuotaForNewUser=1234)
    assert register(app.test_client(), email="ignored@example.test")["success"] is True
    alice = user(app, "alice")
    assert alice.quota == 1234 and alice.email == ""  # an address nobody proved is not stored
    with app.app_context():
        assert db.session.scalar(select(Token.name).where(Token.user_id == alice.id)) == "default"
    assert login(app, "alice").get("/api/user/self").json["data"]["username"] == "alice"


@pytest.mark.parametrize("switch", ["RegisterEnabled", "PasswordRegisterEnabled"])
def test_registration_switches(app, root, switch):
    set_options(root, **{switch: "false"})
    reply = register(app.test_client())
    assert reply["success"] is False and "turned off" in reply["message"] or "closed" in reply["message"]
    assert user(app, "alice") is None


@pytest.mark.parametrize("fields, message", [
    ({"username": ""}, "username"), ({"username": "x" * 13}, "username"), ({"password": "short"}, "password"),
    ({"username": "deleted_x"}, "reserved"), ({"aff_code": "nope"}, "invitation"),
])
def test_bad_registrations_are_refused_and_create_nothing(app, root, fields, message):
    reply = register(app.test_client(), **fields)
    assert reply["success"] is False and message in reply["message"]
    with app.app_context():
        assert db.session.scalar(select(User.id).where(User.username != "root")) is None


def test_a_taken_username_is_refused(app, root):
    assert register(app.test_client())["success"] is True
    reply = register(app.test_client())
    assert reply["success"] is False and "taken" in reply["message"]


def test_bad_bodies_get_clear_errors(app, root):
    client = app.test_client()
    assert client.post("/api/user/register", data="nope", content_type="application/json").status_code == 400
    assert client.post("/api/user/register", data="{}", content_type="text/plain").status_code == 415
    reply = client.post("/api/user/register", json={"username": 5, "password": PASSWORD})
    assert reply.json["success"] is False and reply.json["message"] == "username must be a string"


def test_invitation_rewards_both_sides(app, root):
    set_options(root, QuotaForInviter=500, QuotaForInvitee=300, QuotaForNewUser=100)
    assert register(app.test_client(), username="bob")["success"]
    code = login(app, "bob").get("/api/user/aff").json["data"]
    assert register(app.test_client(), aff_code=code)["success"]
    alice, bob = user(app, "alice"), user(app, "bob")
    assert alice.inviter_id == bob.id
    assert alice.quota == 100 + 300 and bob.quota == 100 + 500
    with app.app_context():
        rows = db.session.execute(select(Log.user_id, Log.quota).where(Log.type == LogType.SYSTEM)).all()
    assert sorted(rows) == sorted([(bob.id, 100), (alice.id, 100), (alice.id, 300), (bob.id, 500)])


# --- email verification ------------------------------------------------------------------------------

def test_registration_with_a_verified_email(app, root, inbox):
    set_options(root, EmailVerificationEnabled="true")
    client = app.test_client()
    assert register(client)["success"] is False  # address and code required
    assert client.get("/api/verification?email=Alice@Example.test").json["success"] is True
    mail = wait_for_mail(inbox, 1)
    assert mail["to"] == ["alice@example.test"] and mail["from"] == "gateway@example.test"
    assert mail["message"]["Subject"].startswith("Gateway")
    code = code_in(mail)
    assert len(code) == 6
    assert register(client, email="alice@example.test", verification_code="000000" if code != "000000" else "111111")[
        "success"] is False
    assert register(client, email="alice@example.test", verification_code=code.upper())["success"] is True
    assert user(app, "alice").email == "alice@example.test"
    # single use: the same code cannot make a second account
    reply = register(client, username="alice2", email="alice@example.test", verification_code=code)
    assert reply["success"] is False
    # the address is taken now: the same answer as for any address, and no code, but a mail telling its owner
    reply = client.get("/api/verification?email=alice@example.test").json
    assert reply["success"] is True
    mail = wait_for_mail(inbox, 2)
    assert "already has an account" in mail["message"]["Subject"] and "verification code" not in mail["body"]


def test_codes_are_stored_hashed_and_die_after_five_wrong_guesses(app, root, inbox):
    set_options(root, EmailVerificationEnabled="true")
    client = app.test_client()
    assert client.get("/api/verification?email=a@example.test").json["success"]
    code = code_in(wait_for_mail(inbox, 1))
    with app.app_context():
        stored = db.session.scalar(select(VerificationCode.code_hash))
    assert code not in stored
    for _ in range(5):
        assert register(client, email="a@example.test", verification_code="zzzzzz")["success"] is False
    assert register(client, email="a@example.test", verification_code=code)["success"] is False


def test_expired_codes_are_refused(app, root, inbox):
    set_options(root, EmailVerificationEnabled="true")
    client = app.test_client()
    assert client.get("/api/verification?email=a@example.test").json["success"]
    code = code_in(wait_for_mail(inbox, 1))
    with app.app_context():
        db.session.execute(update(VerificationCode).values(expires_at=int(time.time()) - 1))
        db.session.commit()
    assert register(client, email="a@example.test", verification_code=code)["success"] is False


def test_domain_whitelist(app, root, inbox):
    set_options(root, EmailDomainWhitelist="example.test, corp.test", EmailDomainRestrictionEnabled="true")
    client = app.test_client()
    reply = client.get("/api/verification?email=a@gmail.com").json
    assert reply["success"] is False and "corp.test" in reply["message"]
    assert client.get("/api/verification?email=a@corp.test").json["success"] is True
    assert client.get("/api/verification?email=not-an-address").json["success"] is False
    assert len(inbox.messages) <= 1


def test_a_mail_server_that_is_down_is_a_clear_error(app, root):
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=1)  # nothing listens on port 1
    reply = app.test_client().get("/api/verification?email=a@example.test").json
    assert reply["success"] is False and "could not be sent" in reply["message"]
    with app.app_context():  # the code of a mail that never left is withdrawn
        assert db.session.scalar(select(VerificationCode.id)) is None


def test_no_smtp_no_codes(app, root):
    reply = app.test_client().get("/api/verification?email=a@example.test").json
    assert reply["success"] is False and "not configured" in reply["message"]


# --- password reset ----------------------------------------------------------------------------------

def make_user_with_email(app, root, inbox, username="alice", email="alice@example.test"):
    assert register(app.test_client(), username=username)["success"]
    with app.app_context():
        db.session.execute(update(User).where(User.username == username).values(email=email))
        db.session.commit()


def reset_link(message):
    return re.search(r"(https?://\S+/user/reset\?\S+)", message["body"]).group(1)


def test_password_reset_by_mail(app, root, inbox):
    set_options(root, ServerAddress="https://gateway.example.test/")
    make_user_with_email(app, root, inbox)
    old_session = login(app, "alice")
    client = app.test_client()
    reply = client.get("/api/reset_password?email=alice@example.test").json
    assert reply["success"] is True
    link = reset_link(wait_for_mail(inbox, 1))
    assert link.startswith("https://gateway.example.test/user/reset?")
    query = parse_qs(urlparse(link).query)
    assert query["email"] == ["alice@example.test"]
    token = query["token"][0]
    reply = client.post("/api/user/reset", json={"email": "alice@example.test", "token": token}).json
    assert reply["success"] is True
    new_password = reply["data"]
    assert len(new_password) == 12
    assert old_session.get("/api/user/self").status_code == 401  # every older session ended
    assert login(app, "alice", new_password).get("/api/user/self").json["success"]
    assert app.test_client().post("/api/user/login", json={"username": "alice", "password": PASSWORD}).json[
        "success"] is False
    # the link works once
    again = client.post("/api/user/reset", json={"email": "alice@example.test", "token": token}).json
    assert again["success"] is False


def test_reset_says_the_same_for_unknown_addresses_and_sends_nothing(app, root, inbox):
    reply = app.test_client().get("/api/reset_password?email=nobody@example.test").json
    assert reply["success"] is True and "if the address" in reply["message"]
    time.sleep(0.2)
    assert inbox.messages == []


def test_reset_with_a_wrong_token(app, root, inbox):
    make_user_with_email(app, root, inbox)
    reply = app.test_client().post("/api/user/reset", json={"email": "alice@example.test", "token": "f" * 32}).json
    assert reply["success"] is False and "invalid" in reply["message"]


def test_reset_pages_do_not_use_the_link_on_get(app, root, inbox):
    make_user_with_email(app, root, inbox)
    client = app.test_client()
    page = client.get("/reset")
    assert page.status_code == 200 and b"Send the link" in page.data
    reply = client.post("/reset", data={"email": "alice@example.test", "csrf_token": csrf(client, "/reset")})
    assert reply.status_code == 302
    path = reset_link(wait_for_mail(inbox, 1)).split("/user/reset", 1)[1]
    assert b"Give me a new password" in client.get("/user/reset" + path).data
    assert client.get("/user/reset" + path).status_code == 200  # a mail scanner opening it twice changes nothing
    query = parse_qs(urlparse(path).query)
    page = client.post("/user/reset", data={"email": query["email"][0], "token": query["token"][0],
                                            "csrf_token": csrf(client, "/user/reset" + path)})
    assert page.status_code == 200
    password = re.search(rb"data-new-password>([^<]+)<", page.data).group(1).decode()
    assert login(app, "alice", password)


# --- binding an email --------------------------------------------------------------------------------

def test_bind_email_with_a_code(app, root, inbox):
    assert register(app.test_client())["success"]
    alice = login(app, "alice")
    assert alice.get("/api/verification?email=new@example.test").json["success"]
    code = code_in(wait_for_mail(inbox, 1))
    # a state-changing GET from a cookie session is refused: a link on another site must not bind an address
    refused = alice.get(f"/api/oauth/email/bind?email=new@example.test&code={code}")
    assert refused.status_code == 405
    reply = alice.post("/api/oauth/email/bind", json={"email": "new@example.test", "code": code}).json
    assert reply["success"] is True
    assert alice.get("/api/user/self").json["data"]["email"] == "new@example.test"


def test_bind_email_by_get_with_an_access_token(app, root, inbox):
    assert register(app.test_client())["success"]
    token = login(app, "alice").post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    client = app.test_client()
    assert client.get("/api/verification?email=new@example.test").json["success"]
    code = code_in(wait_for_mail(inbox, 1))
    reply = client.get(f"/api/oauth/email/bind?email=new@example.test&code={code}", headers={"Authorization": token})
    assert reply.json["success"] is True and user(app, "alice").email == "new@example.test"


def test_bind_refuses_an_address_of_another_account(app, root, inbox):
    make_user_with_email(app, root, inbox, "bob", "bob@example.test")
    assert register(app.test_client())["success"]
    alice = login(app, "alice")
    assert alice.get("/api/verification?email=bob@example.test").json["success"]  # no code: bob's already
    assert "already has an account" in wait_for_mail(inbox, 1)["message"]["Subject"]
    reply = alice.post("/api/oauth/email/bind", json={"email": "bob@example.test", "code": "abcdef"})
    assert reply.json["success"] is False
    assert user(app, "alice").email == "" and user(app, "bob").email == "bob@example.test"


def test_bind_needs_a_login(app, root):
    reply = app.test_client().post("/api/oauth/email/bind", json={"email": "a@example.test", "code": "abcdef"})
    assert reply.status_code == 401


# --- Turnstile ---------------------------------------------------------------------------------------

@pytest.fixture
def siteverify(app):
    server = LocalServer()
    app.config["TURNSTILE_VERIFY_URL"] = server.url + "/siteverify"
    yield server
    server.close()


def test_turnstile_guards_registration(app, root, siteverify):
    set_options(root, TurnstileSiteKey="site-key", TurnstileSecretKey="secret-key", TurnstileCheckEnabled="true")
    client = app.test_client()
    reply = register(client)
    assert reply["success"] is False and "Turnstile" in reply["message"]
    siteverify.answer = (200, {"Content-Type": "application/json"}, json.dumps({"success": False}).encode())
    reply = client.post("/api/user/register?turnstile=bad", json={"username": "alice", "password": PASSWORD}).json
    assert reply["success"] is False and "failed" in reply["message"]
    siteverify.answer = (200, {"Content-Type": "application/json"}, json.dumps({"success": True}).encode())
    reply = client.post("/api/user/register?turnstile=good", json={"username": "alice", "password": PASSWORD}).json
    assert reply["success"] is True
    sent = parse_qs(siteverify.requests[-1]["body"].decode())
    assert sent["secret"] == ["secret-key"] and sent["response"] == ["good"] and sent["remoteip"] == ["127.0.0.1"]
    # the session passed once: no second challenge
    assert register(client, username="bob")["success"] is True
    # the register page carries the widget
    assert b'data-sitekey="site-key"' in app.test_client().get("/register").data


def test_turnstile_unreachable_fails_closed(app, root):
    app.config["TURNSTILE_VERIFY_URL"] = "http://127.0.0.1:1/siteverify"
    set_options(root, TurnstileSiteKey="site-key", TurnstileCheckEnabled="true")
    reply = app.test_client().post("/api/user/register?turnstile=x", json={"username": "a", "password": PASSWORD})
    assert reply.json["success"] is False


# --- pages -------------------------------------------------------------------------------------------

def test_register_page_creates_the_account_and_logs_in(app, root):
    client = app.test_client()
    login_page = client.get("/login").data
    assert b'href="/register"' in login_page
    token = csrf(client, "/register")
    reply = client.post("/register", data={"username": "carol", "password": PASSWORD, "password2": PASSWORD,
                                           "csrf_token": token})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/dashboard")
    assert client.get("/api/user/self").json["data"]["username"] == "carol"


def test_register_page_errors_keep_the_form(app, root):
    client = app.test_client()
    token = csrf(client, "/register")
    reply = client.post("/register", data={"username": "carol", "password": PASSWORD, "password2": "other-pass",
                                           "csrf_token": token})
    assert reply.status_code == 400 and b"differ" in reply.data and b'value="carol"' in reply.data
    assert user(app, "carol") is None


def test_register_page_when_closed(app, root):
    set_options(root, RegisterEnabled="false")
    client = app.test_client()
    assert b"Registration is closed" in client.get("/register").data
    assert b'href="/register"' not in client.get("/login").data


# --- sessions ----------------------------------------------------------------------------------------

def test_changing_the_password_keeps_this_session_and_ends_the_others(app, root):
    assert register(app.test_client())["success"]
    here, elsewhere = login(app, "alice"), login(app, "alice")
    assert here.put("/api/user/self", json={"password": "another-password"}).json["success"]
    assert here.get("/api/user/self").json["success"] is True
    assert elsewhere.get("/api/user/self").status_code == 401


def test_an_admin_changing_a_password_ends_the_users_sessions(app, root):
    assert register(app.test_client())["success"]
    alice = login(app, "alice")
    alice_id = user(app, "alice").id
    assert root.put("/api/user/", json={"id": alice_id, "password": "reset-by-admin"}).json["success"]
    assert alice.get("/api/user/self").status_code == 401


def test_disable_then_enable_does_not_revive_a_session(app, root):
    assert register(app.test_client())["success"]
    alice = login(app, "alice")
    assert root.post("/api/user/manage", json={"username": "alice", "action": "disable"}).json["success"]
    assert root.post("/api/user/manage", json={"username": "alice", "action": "enable"}).json["success"]
    assert alice.get("/api/user/self").status_code == 401


def test_session_cookie_flags(app):
    client = app.test_client()
    plain = client.post("/api/user/login", json={"username": "root", "password": "123456"})
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    # over HTTPS as told by a trusted proxy (the loopback nginx): Secure
    secure = app.test_client().post("/api/user/login", json={"username": "root", "password": "123456"},
                                    headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in secure.headers["Set-Cookie"]
    # the same header from an address that is not a proxy is ignored
    forged = app.test_client().post("/api/user/login", json={"username": "root", "password": "123456"},
                                    headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert "Secure" not in forged.headers["Set-Cookie"]

