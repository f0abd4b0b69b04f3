"""Regression tests from a security review of the accounts work (registration, codes, reset, OAuth, sessions,
rate limits): each one failed before its fix (docs/accounts.md explains the rules)."""

import re
import threading
import time
from urllib.parse import urlparse

import pytest
from sqlalchemy import update

from oneapi.extensions import db
from oneapi.models import User
from oneapi.services import verification
from tests.conftest import free_port
from tests.test_accounts import (  # noqa: F401  (fixtures)
    PASSWORD,
    inbox,
    login,
    make_user_with_email,
    register,
    reset_link,
    set_options,
    wait_for_mail,
)
from tests.test_notify import smtp  # noqa: F401  (the SMTP server fixture)
from tests.test_oauth import oauth, provider, site  # noqa: F401  (fixtures: a local GitHub/OIDC/Lark mock)
from tests.test_rate_limits import attempt_login, from_address, limited  # noqa: F401  (fixture)

# --- password-reset poisoning through the Host header -------------------------------------------------

def test_reset_link_is_not_built_from_an_attacker_chosen_host(app, root, inbox):  # noqa: F811
    """ServerAddress is empty by default, so the mailed link is built from the request's Host header: anyone
    can ask for a reset of a victim's address with `Host: attacker.example` and the victim receives a genuine
    mail whose link carries the token to the attacker's server (nginx.conf passes any Host: server_name _)."""
    make_user_with_email(app, root, inbox)
    attacker = app.test_client()
    reply = attacker.get("/api/reset_password?email=alice@example.test", base_url="http://attacker.example")
    assert reply.json["success"] is True
    link = reset_link(wait_for_mail(inbox, 1))
    assert urlparse(link).hostname != "attacker.example", link


def test_reset_page_link_is_not_built_from_an_attacker_chosen_host(app, root, inbox):  # noqa: F811
    make_user_with_email(app, root, inbox)
    attacker = app.test_client()
    page = attacker.get("/reset", base_url="http://attacker.example").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    attacker.post("/reset", data={"email": "alice@example.test", "csrf_token": token},
                  base_url="http://attacker.example")
    link = reset_link(wait_for_mail(inbox, 1))
    assert urlparse(link).hostname != "attacker.example", link


# --- enumeration ---------------------------------------------------------------------------------------

def test_reset_answer_does_not_depend_on_the_account_when_mail_fails(app, root, inbox):  # noqa: F811
    """send_reset mails synchronously only for registered addresses; when the mail server is slow or down the
    answer (and its time) differs, so the "same answer either way" promise does not hold."""
    make_user_with_email(app, root, inbox)
    set_options(root, SMTPPort=free_port())  # nothing listens there any more
    client = app.test_client()
    known = client.get("/api/reset_password?email=alice@example.test").json
    unknown = client.get("/api/reset_password?email=nobody@example.test").json
    assert known == unknown


def test_reset_mail_is_sent_after_the_answer(app, root, inbox, monkeypatch):  # noqa: F811
    """The lookup and the mail happen after the answer, so neither its content nor its time depends on whether
    the address has an account (a registered one used to answer ~30 ms later, more with a real provider)."""
    from oneapi.services import mail

    make_user_with_email(app, root, inbox)
    release, entered = threading.Event(), threading.Event()
    real_send = mail.send

    def held_send(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(mail, "send", held_send)
    client = app.test_client()
    known = client.get("/api/reset_password?email=alice@example.test").json  # answers while the mail is held
    unknown = client.get("/api/reset_password?email=nobody@example.test").json
    assert known == unknown and known["success"] is True
    assert entered.wait(5) and inbox.messages == []
    release.set()
    assert reset_link(wait_for_mail(inbox, 1))


def test_verification_mail_does_not_reveal_registered_addresses(app, root, inbox):  # noqa: F811
    """GET /api/verification answers "already used by an account" for a registered address: the enumeration
    the reset route was changed to prevent is one request away here (no login needed)."""
    make_user_with_email(app, root, inbox)
    client = app.test_client()
    known = client.get("/api/verification?email=alice@example.test").json
    unknown = client.get("/api/verification?email=nobody@example.test").json
    assert known["success"] == unknown["success"] and known["message"] == unknown["message"]


def test_an_account_without_a_password_costs_a_login_the_same_bcrypt(app, root, monkeypatch):
    """Unknown users pay a bcrypt of the dummy hash; a third-party account's "!" password used to fail at once,
    so its username answered ~100x faster than an unknown one."""
    from oneapi.auth import routes
    from oneapi.services import users

    with app.app_context():
        users.create("github_9", None, identity={"github_id": "9"}, max_username=64)
    checked = []
    real = routes.check_password
    monkeypatch.setattr(routes, "check_password", lambda hashed, password: checked.append(hashed) or real(
        hashed, password))
    for name in ("nobody-here", "github_9"):
        assert app.test_client().post("/api/user/login", json={"username": name, "password": "x" * 10}
                                      ).json["success"] is False
    assert checked == [routes._DUMMY_HASH, routes._DUMMY_HASH]


# --- codes: attempt counting under concurrency, and voiding someone else's link -----------------------

def test_wrong_guesses_are_counted_before_they_are_compared(app, root):
    """take() reads `attempts < 5`, compares, and only then increments: concurrent guesses (workers, nodes,
    gevent) all pass the check, so far more than 5 guesses are tried against one code."""
    with app.app_context():
        code = verification.issue(verification.VERIFY, "victim@example.test")
    guesses = 10
    barrier = threading.Barrier(guesses, timeout=3)
    compared = []
    real = verification.hmac

    class SlowHmac:
        @staticmethod
        def compare_digest(a, b):
            compared.append(1)
            try:
                barrier.wait()  # every guess has read the row before any of them counts
            except threading.BrokenBarrierError:
                pass
            return real.compare_digest(a, b)

    results = []

    def guess(value):
        with app.app_context():
            results.append(verification.take(verification.VERIFY, "victim@example.test", value))
            db.session.remove()

    verification.hmac = SlowHmac
    try:
        wrong = [f"{i:06x}" for i in range(guesses) if f"{i:06x}" != code][:guesses - 1]
        threads = [threading.Thread(target=guess, args=(value,)) for value in [*wrong, code]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        verification.hmac = real
    assert len(compared) <= verification.MAX_ATTEMPTS, f"{len(compared)} guesses were compared, results {results}"


def test_a_stranger_cannot_void_someone_elses_reset_link(app, root, inbox):  # noqa: F811
    """Five wrong tokens for the victim's address, from anyone, kill the victim's genuine 128-bit link (and
    every new one): a targeted, unauthenticated denial of password recovery."""
    make_user_with_email(app, root, inbox)
    assert app.test_client().get("/api/reset_password?email=alice@example.test").json["success"]
    link = reset_link(wait_for_mail(inbox, 1))
    token = dict(part.split("=", 1) for part in urlparse(link).query.split("&"))["token"]
    attacker = app.test_client()
    for _ in range(verification.MAX_ATTEMPTS):
        attacker.post("/api/user/reset", json={"email": "alice@example.test", "token": "0" * 32})
    reply = app.test_client().post("/api/user/reset", json={"email": "alice@example.test", "token": token}).json
    assert reply["success"] is True, reply


# --- rate limits ---------------------------------------------------------------------------------------

def test_ipv6_clients_of_one_prefix_share_the_critical_bucket(limited):  # noqa: F811
    """The bucket is the full address; an IPv6 client owns at least a /64 (2^64 addresses), so it gets a
    fresh critical allowance per request: unlimited password and code guessing."""
    limited.config.update(CRITICAL_RATE_LIMIT=2)
    statuses = [attempt_login(from_address(limited, f"2001:db8:1:2::{n:x}")).status_code for n in range(1, 6)]
    assert 429 in statuses, statuses


def test_forwarded_ipv6_clients_of_one_prefix_share_the_critical_bucket(limited):  # noqa: F811
    limited.config.update(CRITICAL_RATE_LIMIT=2)
    statuses = [attempt_login(from_address(limited, "127.0.0.1", **{"X-Forwarded-For": f"2001:db8:1:2::{n:x}"}))
                .status_code for n in range(1, 6)]
    assert 429 in statuses, statuses


# --- 500s on unencodable input -------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/api/user/login", '{"username": "\\ud800", "password": "whatever-pass"}'),
    ("/api/user/register", '{"username": "bob", "password": "\\ud800aaaaaaaaa"}'),
    ("/api/user/register", '{"username": "\\ud800b", "password": "aaaaaaaaaaaa"}'),
    ("/api/user/reset", '{"email": "\\ud800@example.test", "token": "abc"}'),
])
def test_lone_surrogates_are_a_clear_error_not_a_500(app, root, path, body):
    reply = app.test_client().post(path, data=body, content_type="application/json")
    assert reply.status_code != 500, (reply.status_code, reply.get_data(as_text=True)[:200])


def test_a_session_ended_by_a_demotion_stays_ended_after_a_promotion(app, root):
    """The stamp is a pure function of (password hash, role, status, session_version) and promote/demote do
    not raise session_version: demoting an admin and promoting them back brings every admin session that
    the demotion "ended" (a stolen cookie included) back to life."""
    assert root.post("/api/user/", json={"username": "alice", "password": PASSWORD}).json["success"]
    assert root.post("/api/user/manage", json={"username": "alice", "action": "promote"}).json["success"]
    stolen = login(app, "alice").get_cookie("session").value
    assert root.post("/api/user/manage", json={"username": "alice", "action": "demote"}).json["success"]
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/api/user/self").status_code == 401  # ended, as documented
    assert root.post("/api/user/manage", json={"username": "alice", "action": "promote"}).json["success"]
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/api/user/self").status_code == 401, "the old admin session is alive again"


# --- per-token limit when Redis is down ----------------------------------------------------------------

def test_token_rpm_limit_survives_a_redis_outage(database, upstream, tmp_path):
    """token_allowed() calls the storage directly, outside Flask-Limiter's fallback handling: with Redis down,
    every /v1 call of a token with rpm_limit is a 500 until some /api or page request of the same process
    happens to trip Flask-Limiter's own fallback (never, with the address limits at 0, or on a relay-only
    worker). The docs promise counting in memory while Redis is away."""
    from oneapi import create_app
    from tests.conftest import TEST_PASSWORD, add_channel, add_token, empty_tables
    from tests.test_rate_limits import CHAT

    dsn, sqlite_path = database
    app = create_app({
        "TESTING": True, "SQL_DSN": dsn, "SQLITE_PATH": sqlite_path, "DATA_DIR": str(tmp_path), "BCRYPT_ROUNDS": 4,
        "CACHE_SYNC_INTERVAL": 0, "INITIAL_ROOT_PASSWORD": "",
        "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: Redis is down
        "GLOBAL_API_RATE_LIMIT": 0, "GLOBAL_WEB_RATE_LIMIT": 0, "CRITICAL_RATE_LIMIT": 0,
    })
    with app.app_context():
        empty_tables()
        from oneapi.bootstrap import create_root_if_needed

        create_root_if_needed()
    admin = app.test_client()
    assert admin.post("/api/user/login", json={"username": "root", "password": "123456"}).json["success"]
    assert admin.put("/api/user/self", json={"password": TEST_PASSWORD}).json["success"]
    add_channel(admin, upstream.url)
    key = add_token(admin, name="slow", rpm_limit=5)["key"]
    reply = app.test_client().post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    assert reply.status_code == 200, (reply.status_code, reply.get_data(as_text=True)[:200])


# --- unauthenticated bodies ----------------------------------------------------------------------------

def test_anonymous_api_bodies_are_capped_well_below_the_relay_cap(app, root):
    """MAX_CONTENT_LENGTH is the relay's 64 MB for every route, and json_object() parses whatever comes, before
    any login: a 16 MB `[{},{},...]` costs ~380 MB of RAM, so 64 MB bodies on /api/user/login (or register,
    reset) cost ~1.5 GB each. A few parallel requests from one address exhaust a worker's memory."""
    body = "[" + "{}," * (4 * 1024 * 1024 // 3) + "{}]"  # 4 MB; a login body is under 1 KB
    reply = app.test_client().post("/api/user/login", data=body, content_type="application/json")
    assert reply.status_code == 413, reply.status_code


def test_deeply_nested_json_is_a_clear_error_not_a_500(app, root):
    body = "[" * 100_000 + "]" * 100_000
    reply = app.test_client().post("/api/user/login", data=body, content_type="application/json")
    assert reply.status_code != 500, reply.get_data(as_text=True)[:200]


# --- CSRF: body-less state changes skip the json_object() rule -----------------------------------------

def test_body_less_posts_from_a_cookie_session_need_the_json_proof(app, root):
    """The CSRF rule lives in json_object(); POST /api/user/token and POST /api/token/<id>/key never call it,
    so a plain HTML form (a sibling subdomain is same-site, so SameSite=Lax does not stop it) rotates the
    victim's access token or API key."""
    assert root.post("/api/user/", json={"username": "alice", "password": PASSWORD}).json["success"]
    alice = login(app, "alice")
    reply = alice.post("/api/user/token", data={"x": "1"}, content_type="application/x-www-form-urlencoded")
    assert reply.status_code in (400, 403, 415), reply.json


# --- OAuth: the GitHub login fallback ------------------------------------------------------------------

def test_a_recycled_github_login_does_not_take_over_a_legacy_account(app, site, provider):  # noqa: F811
    """Rows written by the original hold the GitHub *login*. _owner() falls back to it whenever the numeric id
    is unknown, so after the owner renames their GitHub account, whoever registers the freed login on GitHub
    logs in as them (and the row is then rewritten to the attacker's id). This is the takeover the numeric
    id was meant to stop; it stays open for every legacy row until its owner happens to log in once.
    (Conflicts on purpose with test_oauth.py::test_a_login_stored_by_the_original_still_logs_in...)"""
    assert site.post("/api/user/", json={"username": "victim", "password": PASSWORD}).json["success"]
    with app.app_context():
        db.session.execute(update(User).where(User.username == "victim").values(github_id="octocat"))
        db.session.commit()
    provider.give("github", "attacker-code", {"id": 999999, "login": "octocat", "name": "", "email": None})
    attacker = app.test_client()
    reply = oauth(attacker, "github", "attacker-code").json
    assert not (reply["success"] and reply["data"]["username"] == "victim"), reply


def test_without_server_address_no_reset_mail_is_sent(app, root, inbox):  # noqa: F811
    make_user_with_email(app, root, inbox)
    set_options(root, ServerAddress="")
    reply = app.test_client().get("/api/reset_password?email=alice@example.test").json
    assert reply["success"] is False and "ServerAddress" in reply["message"]
    assert b"Forgot your password" not in app.test_client().get("/login").data
    time.sleep(0.2)
    assert inbox.messages == []


def test_pages_refuse_framing_and_api_bodies_are_capped(app, root):
    page = app.test_client().get("/login")
    assert page.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
        "Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "same-origin" and page.headers["X-Content-Type-Options"] == "nosniff"
    reply = app.test_client().post("/api/user/login", data="x" * (3 * 1024 * 1024), content_type="application/json")
    assert reply.status_code == 413 and reply.json["success"] is False


@pytest.mark.parametrize("forwarded, address, bucket", [
    ("198.51.100.9:5678", "198.51.100.9", "198.51.100.9"), ("[2001:db8::5]:443", "2001:db8::5", "2001:db8::/64"),
    ("2001:db8::6", "2001:db8::6", "2001:db8::/64"), ("garbage", "127.0.0.1", "127.0.0.1"),
])
def test_forwarded_addresses_with_ports(app, forwarded, address, bucket):
    from oneapi import ratelimit
    from oneapi.proxies import TrustedProxies, parse_networks

    seen = {}
    proxied = TrustedProxies(lambda environ, start: seen.update(addr=environ["REMOTE_ADDR"]) or [],
                             parse_networks("127.0.0.1"))
    proxied({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}, None)
    assert seen["addr"] == address
    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        assert ratelimit.client_address() == bucket


def test_the_nearest_proxy_decides_the_scheme(app):
    reply = app.test_client().post("/api/user/login", json={"username": "root", "password": "123456"},
                                   headers={"X-Forwarded-Proto": "https, http"})
    assert "Secure" not in reply.headers["Set-Cookie"]


def test_trusted_proxies_are_parsed_like_token_subnets():
    from oneapi.proxies import parse_networks

    assert [str(n) for n in parse_networks("127.0.0.1, 10.0.0.0/8,::1")] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert parse_networks("") == ()
    with pytest.raises(SystemExit, match="TRUSTED_PROXIES.*nonsense"):
        parse_networks("10.0.0.0/8,nonsense")


def test_the_access_log_keeps_no_reset_token(live_server_factory):
    """gunicorn's default access line holds the query string: a reset link's token would be readable (and
    usable for 10 minutes) by anyone who reads the log."""
    import requests

    server = live_server_factory("gunicorn", ACCESS_LOG="-")
    requests.get(server.url + "/user/reset?email=a%40example.test&token=SECRET-TOKEN-123",
                 headers={"Referer": server.url + "/user/reset?token=SECRET-TOKEN-123"}, allow_redirects=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(server.log.name) as f:
            text = f.read()
        if '"GET /user/reset HTTP/1.1"' in text:
            break
        time.sleep(0.1)
    assert '"GET /user/reset HTTP/1.1"' in text
    assert "SECRET-TOKEN-123" not in text and "example.test" not in text
