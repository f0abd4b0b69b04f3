"""Third-party login (spec §3.7) end to end against a local GitHub / OIDC / Lark / WeChat Server
(tests/mock_oauth.py): register, log in again, bind, the state, the switches, provider failures, secrets."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from oneapi.auth import providers
from oneapi.extensions import db
from oneapi.models import Log, Token, User
from tests.conftest import TEST_PASSWORD
from tests.mock_oauth import CLIENT_SECRETS, WECHAT_TOKEN, MockOAuth

OCTOCAT = {"id": 101, "login": "octocat", "name": "The Octocat", "email": "octo@example.com"}
HUBOT = {"id": 202, "login": "hubot", "name": "", "email": None}
ALICE = {"sub": "sub-alice", "preferred_username": "alice", "name": "Alice", "email": "alice@example.com",
         "email_verified": True}
LARK_BOB = {"open_id": "ou_bob", "name": "Bob", "union_id": "on_x"}
SERVER = "https://gateway.example.com"


@pytest.fixture(scope="module")
def provider():
    mock = MockOAuth()
    yield mock
    mock.close()


@pytest.fixture
def site(app, root, provider):
    """Every provider configured and switched on, pointing at the mock; `root` is logged in."""
    provider.reset()
    app.config.update(GITHUB_OAUTH_BASE_URL=provider.url + "/github", GITHUB_API_BASE_URL=provider.url + "/github-api",
                      LARK_AUTHORIZE_URL=provider.url + "/lark/authorize", LARK_TOKEN_URL=provider.url + "/lark/token",
                      LARK_USERINFO_URL=provider.url + "/lark/userinfo", EGRESS_ALLOW_PRIVATE=True)
    set_options(root, ServerAddress=SERVER, QuotaForNewUser="1234",
                GitHubClientId="gh-client", GitHubClientSecret=CLIENT_SECRETS["github"], GitHubOAuthEnabled="true",
                OidcClientId="oidc-client", OidcClientSecret=CLIENT_SECRETS["oidc"],
                OidcWellKnown=provider.url + "/.well-known/openid-configuration", OidcEnabled="true",
                LarkClientId="lark-client", LarkClientSecret=CLIENT_SECRETS["lark"],
                WeChatServerAddress=provider.url, WeChatServerToken=WECHAT_TOKEN, WeChatAuthEnabled="true",
                WeChatAccountQRCodeImageURL="https://example.com/qr.png")
    return root


def set_options(root, **values):
    for key, value in values.items():
        reply = root.put("/api/option/", json={"key": key, "value": value}).json
        assert reply["success"], (key, reply)


def state_of(client):
    reply = client.get("/api/oauth/state").json
    assert reply["success"] and re.fullmatch(r"[A-Za-z0-9]{12}", reply["data"]), reply
    return reply["data"]


def oauth(client, name, code, state=None):
    state = state_of(client) if state is None else state
    return client.get(f"/api/oauth/{name}", query_string={"code": code, "state": state})


def user_row(app, **where):
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(**where))
        if user is not None:
            db.session.expunge(user)
        return user


# ---- GitHub


def test_github_registers_then_logs_in_the_same_user(app, site, provider):
    provider.give("github", "code-1", OCTOCAT)
    client = app.test_client()
    reply = oauth(client, "github", "code-1")
    assert reply.status_code == 200 and reply.json["success"], reply.json
    assert reply.json["data"]["username"] == "github_2"  # root is user 1
    me = client.get("/api/user/self").json["data"]
    assert (me["github_id"], me["display_name"], me["email"], me["quota"]) == ("101", "The Octocat",
                                                                                "octo@example.com", 1234)
    with app.app_context():
        assert db.session.scalar(select(Token).where(Token.user_id == me["id"])) is not None  # the default token
        assert db.session.scalar(select(Log).where(Log.user_id == me["id"])).quota == 1234
    # The code went to the token endpoint with the redirect URI built from ServerAddress.
    (_, _, headers, body), = provider.requests_to("/github/login/oauth/access_token")
    fields = parse_qs(body)
    assert fields["code"] == ["code-1"] and fields["redirect_uri"] == [SERVER + "/oauth/github"]
    assert fields["client_id"] == ["gh-client"] and headers["Accept"] == "application/json"
    # No password logs this user in.
    for password in ("", "!", TEST_PASSWORD):
        assert not app.test_client().post("/api/user/login", json={"username": "github_2", "password": password}
                                          ).json["success"]

    provider.give("github", "code-2", OCTOCAT)
    again = app.test_client()
    reply = oauth(again, "github", "code-2")
    assert reply.json["success"] and reply.json["data"]["id"] == me["id"]
    with app.app_context():
        assert db.session.query(User).count() == 2


def test_github_user_without_a_name(app, site, provider):
    provider.give("github", "c", HUBOT)
    client = app.test_client()
    assert oauth(client, "github", "c").json["success"]
    me = client.get("/api/user/self").json["data"]
    assert (me["display_name"], me["email"]) == ("GitHub User", "")


def test_a_login_stored_by_the_original_is_not_trusted_and_the_owner_binds_again(app, site, provider):
    """The original stored GitHub logins, which can be renamed and registered again by someone else: such a row
    is never matched by login (that would hand the account over), nor duplicated; its owner logs in by
    password and binds again, which stores the numeric id."""
    assert site.post("/api/user/", json={"username": "legacy", "password": TEST_PASSWORD}).json["success"]
    with app.app_context():
        db.session.scalar(select(User).filter_by(username="legacy")).github_id = "octocat"
        db.session.commit()
    provider.give("github", "c", OCTOCAT)
    client = app.test_client()
    reply = oauth(client, "github", "c").json
    assert reply["success"] is False and "bind GitHub again" in reply["message"]
    assert client.get("/api/user/self").status_code == 401
    with app.app_context():
        assert db.session.query(User).count() == 2  # no duplicate account was made
    owner = app.test_client()
    assert owner.post("/api/user/login", json={"username": "legacy", "password": TEST_PASSWORD}).json["success"]
    provider.give("github", "c2", OCTOCAT)
    assert oauth(owner, "github", "c2").json["message"] == "bind"
    assert user_row(app, username="legacy").github_id == "101"
    provider.give("github", "c3", OCTOCAT)
    assert oauth(app.test_client(), "github", "c3").json["data"]["username"] == "legacy"


def test_binding_when_logged_in_and_conflicts(app, site, provider):
    provider.give("github", "c1", OCTOCAT)
    reply = oauth(site, "github", "c1")  # root is logged in: this binds
    assert reply.json == {"success": True, "message": "bind"}
    assert site.get("/api/user/self").json["data"]["username"] == "root"
    assert user_row(app, username="root").github_id == "101"
    provider.give("github", "c2", OCTOCAT)
    assert oauth(site, "github", "c2").json["success"]  # the same identity again: still fine

    provider.give("github", "c3", HUBOT)
    other = app.test_client()
    assert oauth(other, "github", "c3").json["success"]  # hubot registers as github_2
    provider.give("github", "c4", OCTOCAT)
    reply = oauth(other, "github", "c4")  # ...and tries to bind root's identity
    assert reply.json == {"success": False, "message": "this GitHub account is already bound to another user"}
    assert user_row(app, username="github_2").github_id == "202"


def test_state_must_match_and_is_single_use(app, site, provider):
    client = app.test_client()
    provider.give("github", "c", OCTOCAT)
    assert oauth(client, "github", "c", state="").status_code == 403  # no state given
    assert oauth(client, "github", "c", state="whatever1234").status_code == 403  # none made in this session
    state = state_of(client)
    reply = oauth(client, "github", "c", state=state + "x")
    assert reply.status_code == 403 and reply.json["success"] is False and "state" in reply.json["message"]
    assert oauth(client, "github", "c", state=state).status_code == 403  # a failed attempt used it up
    state = state_of(client)
    assert oauth(client, "github", "c", state=state).json["success"]
    client.get("/api/user/logout")
    provider.give("github", "c", OCTOCAT)
    assert oauth(client, "github", "c", state=state).status_code == 403  # used once already
    # Another session's state is no good either.
    stranger = app.test_client()
    assert oauth(stranger, "github", "c", state=state_of(client)).status_code == 403
    assert provider.codes  # the code was never sent to the provider


def test_registration_off_refuses_new_accounts_only(app, site, provider):
    provider.give("github", "c1", OCTOCAT)
    assert oauth(app.test_client(), "github", "c1").json["success"]
    set_options(site, RegisterEnabled="false")
    provider.give("github", "c2", HUBOT)
    reply = oauth(app.test_client(), "github", "c2").json
    assert reply == {"success": False, "message": "the administrator has turned off registration of new users"}
    provider.give("github", "c3", OCTOCAT)
    assert oauth(app.test_client(), "github", "c3").json["success"]  # an existing account still logs in


def test_disabled_user_is_refused(app, site, provider):
    provider.give("github", "c1", OCTOCAT)
    assert oauth(app.test_client(), "github", "c1").json["success"]
    assert site.post("/api/user/manage", json={"username": "github_2", "action": "disable"}).json["success"]
    provider.give("github", "c2", OCTOCAT)
    client = app.test_client()
    assert oauth(client, "github", "c2").json == {"success": False, "message": "this user is disabled"}
    assert client.get("/api/user/self").status_code == 401


def test_deleted_users_identity_registers_anew(app, site, provider):
    provider.give("github", "c1", OCTOCAT)
    first = oauth(app.test_client(), "github", "c1").json["data"]["id"]
    assert site.delete(f"/api/user/{first}").json["success"]
    provider.give("github", "c2", OCTOCAT)
    reply = oauth(app.test_client(), "github", "c2").json
    assert reply["success"] and reply["data"]["id"] != first


@pytest.mark.parametrize("mode, message", [
    ("garbage", "GitHub answered with something that is not JSON"),
    ("500", "GitHub answered HTTP 500"),
])
def test_provider_failures_are_clear_errors(app, site, provider, mode, message):
    provider.give("github", "c", OCTOCAT)
    provider.mode = mode
    reply = oauth(app.test_client(), "github", "c")
    assert reply.status_code == 200 and reply.json == {"success": False, "message": message}


def test_a_refused_code_says_why_without_the_secret(app, site, provider):
    reply = oauth(app.test_client(), "github", "unknown-code")
    assert reply.json["success"] is False
    assert reply.json["message"].startswith("GitHub did not accept the code (bad_verification_code")
    set_options(site, GitHubClientSecret="wrong-secret")
    provider.give("github", "c", OCTOCAT)
    reply = oauth(app.test_client(), "github", "c").json
    assert "invalid_client" in reply["message"] and "wrong-secret" not in reply["message"]


def test_unreachable_and_slow_providers(app, site, provider, monkeypatch):
    from tests.conftest import free_port

    app.config["GITHUB_OAUTH_BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    reply = oauth(app.test_client(), "github", "c").json
    assert reply == {"success": False, "message": "could not connect to GitHub; try again later"}
    app.config["GITHUB_OAUTH_BASE_URL"] = provider.url + "/github"
    monkeypatch.setattr(providers, "TIMEOUT", 0.3)
    provider.mode, provider.delay = "slow", 1.0
    provider.give("github", "c", OCTOCAT)
    reply = oauth(app.test_client(), "github", "c").json
    assert reply == {"success": False, "message": "GitHub did not answer in time; try again later"}
    # OIDC goes through the egress guard, with the same timeout.
    provider.give("oidc", "c", ALICE)
    reply = oauth(app.test_client(), "oidc", "c").json
    assert reply["success"] is False and "timed out" in reply["message"]


def test_switches(app, site, provider):
    set_options(site, GitHubOAuthEnabled="false", OidcEnabled="false", LarkClientId="", WeChatAuthEnabled="false")
    client = app.test_client()
    for name, label in (("github", "GitHub"), ("oidc", "OIDC"), ("lark", "Lark")):
        provider.give(name, "c", {})
        reply = oauth(client, name, "c").json
        assert reply == {"success": False,
                         "message": f"the administrator has not enabled login and registration through {label}"}
    reply = client.get("/api/oauth/wechat?code=c", headers={"X-Requested-With": "fetch"}).json
    assert reply["success"] is False and "WeChat" in reply["message"]
    assert not provider.seen
    assert "data-oauth" not in client.get("/login").get_data(as_text=True)
    assert client.get("/oauth/github/start").status_code == 400


def test_secrets_stay_out_of_options_and_status(app, site):
    options = site.get("/api/option/").json["data"]
    keys = {row["key"] for row in options}
    assert {"OidcEnabled", "OidcClientId", "OidcWellKnown", "LarkClientId", "GitHubClientId"} <= keys
    assert not keys & {"GitHubClientSecret", "OidcClientSecret", "LarkClientSecret", "WeChatServerToken"}
    status = app.test_client().get("/api/status").json["data"]
    assert status["github_oauth"] and status["oidc"] and status["lark_client_id"] == "lark-client"
    for body in (site.get("/api/option/").get_data(as_text=True), app.test_client().get("/api/status").get_data(
            as_text=True)):
        for secret in (*CLIENT_SECRETS.values(), WECHAT_TOKEN):
            assert secret not in body


def test_option_validation(app, root):
    assert not root.put("/api/option/", json={"key": "OidcEnabled", "value": "true"}).json["success"]
    set_options(root, OidcClientId="x")
    reply = root.put("/api/option/", json={"key": "OidcEnabled", "value": "true"}).json
    assert reply["success"] is False and "OidcWellKnown" in reply["message"]
    assert not root.put("/api/option/", json={"key": "OidcWellKnown", "value": "file:///etc/passwd"}).json["success"]
    set_options(root, OidcAuthorizationEndpoint="https://a/x", OidcTokenEndpoint="https://a/t",
                OidcUserinfoEndpoint="https://a/u", OidcEnabled="true")


# ---- OIDC


def test_oidc_through_discovery(app, site, provider):
    provider.give("oidc", "c1", ALICE)
    client = app.test_client()
    reply = oauth(client, "oidc", "c1").json
    assert reply["success"] and reply["data"]["username"] == "alice"
    me = client.get("/api/user/self").json["data"]
    assert (me["oidc_id"], me["display_name"], me["email"]) == ("sub-alice", "Alice", "alice@example.com")
    (_, _, headers, body), = provider.requests_to("/oidc/token")
    fields = parse_qs(body)
    assert fields["grant_type"] == ["authorization_code"] and fields["redirect_uri"] == [SERVER + "/oauth/oidc"]
    assert fields["client_secret"] == [CLIENT_SECRETS["oidc"]]
    # A second person wanting the same name, with an unverified email that is already taken, gets oidc_<n>.
    provider.give("oidc", "c2", {"sub": "sub-other", "preferred_username": "alice", "email": "alice@example.com",
                                 "email_verified": False})
    other = app.test_client()
    assert oauth(other, "oidc", "c2").json["data"]["username"] == "oidc_3"
    me = other.get("/api/user/self").json["data"]
    assert (me["display_name"], me["email"]) == ("OIDC User", "")
    # Logging in again finds alice.
    provider.give("oidc", "c3", ALICE)
    assert oauth(app.test_client(), "oidc", "c3").json["data"]["username"] == "alice"


def test_oidc_endpoints_from_the_options_and_the_egress_guard(app, site, provider):
    set_options(site, OidcWellKnown="", OidcAuthorizationEndpoint=provider.url + "/oidc/authorize",
                OidcTokenEndpoint=provider.url + "/oidc/token", OidcUserinfoEndpoint=provider.url + "/oidc/userinfo")
    provider.give("oidc", "c", {"sub": "s-1"})
    assert oauth(app.test_client(), "oidc", "c").json["data"]["username"] == "oidc_2"
    assert not provider.requests_to("/.well-known/openid-configuration")
    app.config["EGRESS_ALLOW_PRIVATE"] = False  # the OIDC URLs are set in the console: loopback is refused
    provider.give("oidc", "c", {"sub": "s-2"})
    reply = oauth(app.test_client(), "oidc", "c").json
    assert reply["success"] is False and "private, local or reserved" in reply["message"]
    assert not provider.requests_to("/oidc/token")[1:]


def test_oidc_userinfo_without_subject(app, site, provider):
    provider.give("oidc", "c", {"name": "nobody"})
    reply = oauth(app.test_client(), "oidc", "c").json
    assert reply == {"success": False, "message": "the OIDC provider returned a user without a subject (sub)"}
    provider.give("oidc", "c", {"sub": "x" * 192})
    reply = oauth(app.test_client(), "oidc", "c").json
    assert reply == {"success": False, "message": "OIDC returned an id longer than 191 characters"}


# ---- Lark


def test_lark_register_login_and_bind(app, site, provider):
    provider.give("lark", "c1", LARK_BOB)
    client = app.test_client()
    reply = oauth(client, "lark", "c1").json
    assert reply["success"] and reply["data"]["username"] == "lark_2"
    me = client.get("/api/user/self").json["data"]
    assert (me["lark_id"], me["display_name"]) == ("ou_bob", "Bob")
    (_, _, headers, body), = provider.requests_to("/lark/token")
    assert headers["Content-Type"] == "application/json"
    import json

    sent = json.loads(body)
    assert sent == {"grant_type": "authorization_code", "code": "c1", "redirect_uri": SERVER + "/oauth/lark",
                    "client_id": "lark-client", "client_secret": CLIENT_SECRETS["lark"]}
    provider.give("lark", "c2", LARK_BOB)
    assert oauth(app.test_client(), "lark", "c2").json["data"]["id"] == me["id"]
    provider.give("lark", "c3", {"open_id": "ou_root", "name": "Root"})
    assert oauth(site, "lark", "c3").json["message"] == "bind"
    assert user_row(app, username="root").lark_id == "ou_root"


def test_lark_works_without_a_switch_and_refuses_garbage(app, site, provider):
    provider.give("lark", "c", {"name": "no open id"})
    assert oauth(app.test_client(), "lark", "c").json == {"success": False,
                                                          "message": "Lark returned a user without an open_id"}
    provider.mode = "garbage"
    provider.give("lark", "c", LARK_BOB)
    reply = oauth(app.test_client(), "lark", "c").json
    assert reply == {"success": False, "message": "Lark answered with something that is not JSON"}


# ---- WeChat


def test_wechat_login_needs_a_same_site_proof(app, site, provider):
    provider.give("wechat", "123456", "wx-carol")
    client = app.test_client()
    reply = client.get("/api/oauth/wechat?code=123456")  # what a cross-site link could do
    assert reply.status_code == 400 and reply.json["success"] is False
    assert not provider.seen
    reply = client.get("/api/oauth/wechat?code=123456", headers={"X-Requested-With": "XMLHttpRequest"}).json
    assert reply["success"] and reply["data"]["username"] == "wechat_2"
    me = client.get("/api/user/self").json["data"]
    assert (me["wechat_id"], me["display_name"]) == ("wx-carol", "WeChat User")
    (_, path, headers, _), = provider.requests_to("/api/wechat/user")
    assert headers["Authorization"] == WECHAT_TOKEN and path.endswith("code=123456")
    # The state from /api/oauth/state also works, once.
    provider.give("wechat", "654321", "wx-carol")
    again = app.test_client()
    state = state_of(again)
    assert again.get(f"/api/oauth/wechat?code=654321&state={state}").json["data"]["id"] == me["id"]
    assert again.get(f"/api/oauth/wechat?code=654321&state={state}").status_code == 400


def test_wechat_bind(app, site, provider):
    provider.give("wechat", "111111", "wx-root")
    assert site.get("/api/oauth/wechat/bind?code=111111").status_code == 400  # cookie only: refused
    assert not provider.seen
    reply = site.get("/api/oauth/wechat/bind?code=111111", headers={"X-Requested-With": "x"}).json
    assert reply["success"], reply
    assert user_row(app, username="root").wechat_id == "wx-root"
    assert app.test_client().get("/api/oauth/wechat/bind?code=1", headers={"X-Requested-With": "x"}).status_code == 401
    # Someone else's WeChat cannot be bound to root.
    provider.give("wechat", "222222", "wx-dave")
    assert app.test_client().get("/api/oauth/wechat?code=222222", headers={"X-Requested-With": "x"}).json["success"]
    provider.give("wechat", "333333", "wx-dave")
    reply = site.get("/api/oauth/wechat/bind?code=333333", headers={"X-Requested-With": "x"}).json
    assert reply == {"success": False, "message": "this WeChat account is already bound to another user"}


def test_wechat_server_refusals(app, site, provider):
    client = app.test_client()
    reply = client.get("/api/oauth/wechat?code=000000", headers={"X-Requested-With": "x"}).json
    assert reply == {"success": False, "message": "the code is wrong or has expired"}
    set_options(site, WeChatServerToken="not-the-token")
    provider.give("wechat", "1", "wx-x")
    reply = client.get("/api/oauth/wechat?code=1", headers={"X-Requested-With": "x"}).json
    assert reply == {"success": False, "message": "bad token"}
    provider.mode = "500"
    reply = client.get("/api/oauth/wechat?code=1", headers={"X-Requested-With": "x"}).json
    assert reply == {"success": False, "message": "the WeChat server answered HTTP 500"}
    assert client.get("/api/oauth/wechat?code=", headers={"X-Requested-With": "x"}).json["message"] == (
        "the verification code is missing")


# ---- pages


def csrf(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_login_page_buttons_and_the_redirect_flow(app, site, provider):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    for name in ("github", "oidc", "lark", "wechat"):
        assert f'data-oauth="{name}"' in page
    reply = client.get("/oauth/github/start")
    assert reply.status_code == 302
    target = urlsplit(reply.headers["Location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == provider.url + "/github/login/oauth/authorize"
    assert query["client_id"] == ["gh-client"] and query["redirect_uri"] == [SERVER + "/oauth/github"]
    provider.give("github", "c1", OCTOCAT)
    reply = client.get(f"/oauth/github?code=c1&state={query['state'][0]}")
    assert reply.status_code == 302 and urlsplit(reply.headers["Location"]).path == "/"
    assert client.get("/api/user/self").json["data"]["github_id"] == "101"

    oidc = urlsplit(app.test_client().get("/oauth/oidc/start").headers["Location"])
    assert oidc.path == "/oidc/authorize" and "openid" in parse_qs(oidc.query)["scope"][0]
    lark = urlsplit(app.test_client().get("/oauth/lark/start").headers["Location"])
    assert lark.path == "/lark/authorize" and parse_qs(lark.query)["client_id"] == ["lark-client"]


def test_callback_page_errors(app, site, provider):
    client = app.test_client()
    reply = client.get("/oauth/github?code=c&state=nope")
    assert reply.status_code == 403 and "Start the login again" in reply.get_data(as_text=True)
    client.get("/oauth/github/start")
    reply = client.get("/oauth/github?error=access_denied&state=x")
    assert reply.status_code == 400 and "access_denied" in reply.get_data(as_text=True)
    state = parse_qs(urlsplit(client.get("/oauth/github/start").headers["Location"]).query)["state"][0]
    reply = client.get(f"/oauth/github?code=bad&state={state}")
    assert reply.status_code == 400 and "bad_verification_code" in reply.get_data(as_text=True)


def test_settings_page_binds(app, site, provider):
    page = site.get("/setting").get_data(as_text=True)
    assert "Linked accounts" in page and "Bind GitHub" in page and "Bind WeChat" in page
    state = parse_qs(urlsplit(site.get("/oauth/github/start").headers["Location"]).query)["state"][0]
    provider.give("github", "c1", OCTOCAT)
    reply = site.get(f"/oauth/github?code=c1&state={state}")
    assert reply.status_code == 302 and urlsplit(reply.headers["Location"]).path == "/setting"
    page = site.get("/setting").get_data(as_text=True)
    assert "bound: <code>101</code>" in page and "now bound" in page

    provider.give("wechat", "123", "wx-root")
    token = csrf(site, "/setting")
    assert site.post("/oauth/wechat/bind", data={"code": "123"}).status_code == 400  # no CSRF token
    reply = site.post("/oauth/wechat/bind", data={"code": "123", "csrf_token": token})
    assert reply.status_code == 302
    assert user_row(app, username="root").wechat_id == "wx-root"


def test_wechat_login_page(app, site, provider):
    client = app.test_client()
    page = client.get("/oauth/wechat").get_data(as_text=True)
    assert "https://example.com/qr.png" in page and 'name="code"' in page
    token = csrf(client, "/oauth/wechat")
    reply = client.post("/oauth/wechat", data={"code": "999", "csrf_token": token})
    assert reply.status_code == 400 and "wrong or has expired" in reply.get_data(as_text=True)
    provider.give("wechat", "999", "wx-erin")
    reply = client.post("/oauth/wechat", data={"code": "999", "csrf_token": token})
    assert reply.status_code == 302
    assert client.get("/api/user/self").json["data"]["wechat_id"] == "wx-erin"


def test_a_third_party_user_sets_a_first_password_on_the_page(app, site, provider):
    provider.give("github", "code-pw", OCTOCAT)
    client = app.test_client()
    assert oauth(client, "github", "code-pw").json["success"]
    page = client.get("/user/password").get_data(as_text=True)
    assert "has no password yet" in page and 'name="current"' not in page
    token = csrf(client, "/user/password")
    reply = client.post("/user/password", data={"password": "first-password", "password2": "first-password",
                                                "csrf_token": token})
    assert reply.status_code == 302
    assert client.get("/api/user/self").json["success"]  # this session stays
    assert app.test_client().post("/api/user/login", json={"username": "github_2", "password": "first-password"}
                                  ).json["success"]
    # From now on the page asks for the current password.
    assert 'name="current"' in client.get("/user/password").get_data(as_text=True)
