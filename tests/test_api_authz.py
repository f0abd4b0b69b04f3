"""Who may call what under /api: a table of every route against anonymous, common user, admin and root (each
by access token and by session cookie), then the role hierarchy: an admin acts only on users below it, only
root promotes and demotes, root cannot be disabled, deleted or demoted, DELETE /api/user/:id answers the
truth, and disabling or demoting someone takes effect on their very next request."""

from dataclasses import dataclass, field

import pytest

from oneapi.extensions import db
from oneapi.models import Redemption, Token, User
from oneapi.models.token import generate_key
from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON, ROLE_ROOT
from oneapi.openapi.document import build
from tests.conftest import TEST_PASSWORD, add_channel
from tests.test_api_openapi import app_operations

PASSWORD = "someone-pass-1"
ROLES = ("anonymous", "common", "admin", "root")
RANK = {"anonymous": 0, "common": 1, "admin": 10, "root": 100}
NEED = {"public": 0, "user": 1, "admin": 10, "root": 100}


@dataclass
class Person:
    id: int
    username: str
    access_token: str


@dataclass
class World:
    app: object
    people: dict
    ids: dict = field(default_factory=dict)

    def client(self, who, how="token"):
        client = self.app.test_client()
        if who == "anonymous":
            return client
        person = self.people[who]
        if how == "token":
            client.environ_base["HTTP_AUTHORIZATION"] = person.access_token
        else:
            client.environ_base["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"  # as the console's scripts send
            password = TEST_PASSWORD if who == "root" else PASSWORD
            reply = client.post("/api/user/login", json={"username": person.username, "password": password})
            assert reply.json["success"], reply.json
        return client


def make_user(app, username, role):
    with app.app_context():
        user = User(username=username, display_name=username, role=role, quota=10**6)
        user.set_password(PASSWORD)
        access_token = user.new_access_token()
        db.session.add(user)
        db.session.commit()
        return Person(user.id, username, access_token)


@pytest.fixture
def world(app, root, upstream):
    access_token = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    people = {"root": Person(1, "root", access_token), "common": make_user(app, "common", ROLE_COMMON),
              "admin": make_user(app, "admin", ROLE_ADMIN), "admin2": make_user(app, "admin2", ROLE_ADMIN),
              "victim": make_user(app, "victim", ROLE_COMMON)}
    channel_id = add_channel(root, upstream.url)[0]
    with app.app_context():
        token = Token(user_id=people["victim"].id, name="victim's")
        token.set_key(generate_key())
        redemption = Redemption(user_id=1, key="0123456789abcdef0123456789abcdef", name="r", quota=10)
        db.session.add_all([token, redemption])
        db.session.commit()
        ids = {"user_id": people["victim"].id, "token_id": token.id, "channel_id": channel_id,
               "redemption_id": redemption.id}
    return World(app, people, ids)


# (method, path, who may call it, JSON body or query string). Bodies aim at the victim and at harmless values,
# so every allowed call can run for each role in turn on the same database.
ROUTES = [
    ("GET", "/api/openapi.json", "public", None),
    ("GET", "/api/status", "public", None),
    ("GET", "/api/notice", "public", None),
    ("GET", "/api/about", "public", None),
    ("GET", "/api/home_page_content", "public", None),
    ("GET", "/api/models", "user", None),
    ("POST", "/api/user/login", "public", {"username": "nobody", "password": "wrong-password"}),
    ("GET", "/api/user/logout", "public", None),
    ("GET", "/api/user/self", "user", None),
    ("PUT", "/api/user/self", "user", {"display_name": "changed"}),
    ("DELETE", "/api/user/self", "user", None),
    ("POST", "/api/user/token", "user", None),
    ("GET", "/api/user/token", "public", None),
    ("GET", "/api/user/aff", "user", None),
    ("GET", "/api/user/available_models", "user", None),
    ("GET", "/api/user/dashboard", "user", None),
    ("POST", "/api/user/topup", "user", {"key": "no-such-code"}),
    ("GET", "/api/user/", "admin", {"p": "0"}),
    ("GET", "/api/user/search", "admin", {"keyword": "vic"}),
    ("GET", "/api/user/{user_id}", "admin", None),
    ("POST", "/api/user/", "admin", {"username": "newbie", "password": "newbie-pass-1"}),
    ("PUT", "/api/user/", "admin", {"id": "{user_id}", "display_name": "renamed"}),
    ("DELETE", "/api/user/{user_id}", "admin", None),
    ("POST", "/api/user/manage", "admin", {"username": "victim", "action": "enable"}),
    ("GET", "/api/group/", "admin", None),
    ("POST", "/api/topup", "admin", {"user_id": "{user_id}", "quota": 1}),
    ("GET", "/api/token/", "user", None),
    ("GET", "/api/token/search", "user", {"keyword": "t"}),
    ("GET", "/api/token/{token_id}", "user", None),
    ("POST", "/api/token/", "user", {"name": "mine"}),
    ("PUT", "/api/token/", "user", {"id": "{token_id}", "name": "x"}),
    ("DELETE", "/api/token/{token_id}", "user", None),
    ("POST", "/api/token/{token_id}/key", "user", None),
    ("GET", "/api/channel/", "admin", None),
    ("GET", "/api/channel/search", "admin", {"keyword": "mo"}),
    ("GET", "/api/channel/{channel_id}", "admin", None),
    ("POST", "/api/channel/", "admin", {"name": "more", "key": "sk-a\nsk-b", "base_url": "http://127.0.0.1:9"}),
    ("PUT", "/api/channel/", "admin", {"id": "{channel_id}", "name": "renamed"}),
    ("DELETE", "/api/channel/{channel_id}", "admin", None),
    ("DELETE", "/api/channel/disabled", "admin", None),
    ("GET", "/api/channel/models", "admin", None),
    ("GET", "/api/channel/test", "admin", None),
    ("GET", "/api/channel/test/{channel_id}", "admin", None),
    ("GET", "/api/channel/update_balance", "admin", None),
    ("GET", "/api/channel/update_balance/{channel_id}", "admin", None),
    ("GET", "/api/redemption/", "admin", None),
    ("GET", "/api/redemption/search", "admin", {"keyword": "r"}),
    ("GET", "/api/redemption/{redemption_id}", "admin", None),
    ("POST", "/api/redemption/", "admin", {"name": "batch", "count": 2, "quota": 5}),
    ("PUT", "/api/redemption/", "admin", {"id": "{redemption_id}", "name": "renamed"}),
    ("DELETE", "/api/redemption/{redemption_id}", "admin", None),
    ("GET", "/api/redemption/export", "admin", {"name": "r"}),
    ("GET", "/api/log/", "admin", None),
    ("DELETE", "/api/log/", "admin", {"target_timestamp": "1"}),
    ("GET", "/api/log/stat", "admin", None),
    ("GET", "/api/log/search", "admin", {"keyword": "x"}),
    ("GET", "/api/log/self", "user", None),
    ("GET", "/api/log/self/", "user", None),
    ("GET", "/api/log/self/stat", "user", None),
    ("GET", "/api/log/self/search", "user", {"keyword": "x"}),
    ("GET", "/api/oauth/state", "public", None),
    ("GET", "/api/oauth/github", "public", {"code": "c", "state": "s"}),
    ("GET", "/api/oauth/oidc", "public", {"code": "c", "state": "s"}),
    ("GET", "/api/oauth/lark", "public", {"code": "c", "state": "s"}),
    ("GET", "/api/oauth/wechat", "public", {"code": "c"}),
    ("GET", "/api/oauth/wechat/bind", "user", {"code": "c"}),
    ("GET", "/api/option/", "root", None),
    ("PUT", "/api/option/", "root", {"key": "Notice", "value": "hello"}),
    ("POST", "/api/user/register", "public", {"username": "newbie", "password": "p" * 10}),
    ("GET", "/api/verification", "public", {"email": "a@example.test"}),
    ("GET", "/api/reset_password", "public", {"email": "a@example.test"}),
    ("POST", "/api/user/reset", "public", {"email": "a@example.test", "token": "t"}),
    ("GET", "/api/oauth/email/bind", "user", {"email": "a@example.test", "code": "c"}),
    ("POST", "/api/oauth/email/bind", "user", {"email": "a@example.test", "code": "c"}),
]
# Calls after which the same person cannot call again (they delete themselves).
ONCE = {("DELETE", "/api/user/self")}
# Answers that are neither an authorization refusal nor a success: GET /api/user/token is 405 for everyone.
FIXED_STATUS = {("GET", "/api/user/token"): 405, ("GET", "/api/oauth/github"): 403, ("GET", "/api/oauth/oidc"): 403,
                ("GET", "/api/oauth/lark"): 403}
# A state change by GET is refused from a session cookie (only access tokens may): 405.
SESSION_STATUS = {("GET", "/api/oauth/email/bind"): 405}


def fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, str):
        for name, number in ids.items():
            value = value.replace("{" + name + "}", str(number))
    return value


def call(client, method, path, payload, ids):
    url = fill(path, ids)
    if method == "GET" or (method == "DELETE" and payload):
        return client.open(url, method=method, query_string=payload or {})
    body = {k: fill(v, ids) for k, v in payload.items()} if payload else None
    return client.open(url, method=method, json=body)


def test_the_table_covers_every_route_and_agrees_with_the_document(app):
    table = {(path, method.lower()): need for method, path, need, _ in ROUTES}
    assert len(table) == len(ROUTES)
    assert set(table) == set(app_operations(app)), set(table) ^ set(app_operations(app))
    document = build("test")
    for (path, method), need in table.items():
        assert document["paths"][path][method]["x-role"] == need, (method, path)


@pytest.mark.parametrize(("method", "path", "need", "payload"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_authorization_matrix(world, method, path, need, payload):
    for who in ROLES:
        for how in ("token", "session"):
            if who == "anonymous" and how == "session":
                continue
            if (method, path) in ONCE and how == "session":
                continue
            reply = call(world.client(who, how), method, path, payload, world.ids)
            where = f"{method} {path} as {who} by {how}: {reply.status_code} {reply.get_data(as_text=True)[:200]}"
            assert reply.status_code < 500, where
            if how == "session" and (method, path) in SESSION_STATUS:
                assert reply.status_code == SESSION_STATUS[(method, path)], where
            elif (method, path) in FIXED_STATUS:
                assert reply.status_code == FIXED_STATUS[(method, path)], where
            elif need != "public" and who == "anonymous":
                assert reply.status_code == 401 and reply.json["success"] is False, where
            elif RANK[who] < NEED[need]:
                assert reply.status_code == 403 and reply.json["success"] is False, where
            else:
                assert reply.status_code not in (401, 403, 405), where


def test_an_invalid_access_token_is_refused_as_the_original_does(world):
    client = world.app.test_client()
    reply = client.get("/api/user/self", headers={"Authorization": "Bearer not-a-real-token"})
    assert reply.status_code == 200 and reply.json["success"] is False
    assert "data" not in reply.json or not reply.json["data"]


def test_bearer_prefix_is_optional(world):
    token = world.people["common"].access_token
    for header in (token, f"Bearer {token}"):
        reply = world.app.test_client().get("/api/user/self", headers={"Authorization": header})
        assert reply.json["success"] is True and reply.json["data"]["username"] == "common"


# ---- the role hierarchy ----------------------------------------------------------------------------------


def user_row(world, user_id):
    with world.app.app_context():
        user = db.session.get(User, user_id)
        return {"role": user.role, "status": user.status, "display_name": user.display_name,
                "username": user.username, "quota": user.quota}


@pytest.mark.parametrize("target", ["admin2", "root"])
def test_an_admin_cannot_touch_an_equal_or_higher_role(world, target):
    admin = world.client("admin")
    person = world.people[target]
    before = user_row(world, person.id)
    attempts = [
        admin.get(f"/api/user/{person.id}"),
        admin.put("/api/user/", json={"id": person.id, "display_name": "pwned"}),
        admin.put("/api/user/", json={"id": person.id, "password": "new-password-9"}),
        admin.put("/api/user/", json={"id": person.id, "quota": 0}),
        admin.delete(f"/api/user/{person.id}"),
        admin.post("/api/topup", json={"user_id": person.id, "quota": 5}),
        *(admin.post("/api/user/manage", json={"username": person.username, "action": action})
          for action in ("disable", "enable", "delete", "promote", "demote")),
    ]
    for reply in attempts:
        assert reply.status_code == 403 and reply.json["success"] is False, (reply.request.path, reply.json)
    assert user_row(world, person.id) == before
    assert world.client(target).get("/api/user/self").json["success"] is True


def test_an_admin_manages_common_users(world):
    admin = world.client("admin")
    victim = world.people["victim"]
    assert admin.get(f"/api/user/{victim.id}").json["data"]["username"] == "victim"
    assert admin.put("/api/user/", json={"id": victim.id, "display_name": "renamed"}).json["success"] is True
    reply = admin.post("/api/user/manage", json={"username": "victim", "action": "disable"})
    assert reply.json["success"] is True and reply.json["data"] == {"role": ROLE_COMMON, "status": 2}
    assert admin.post("/api/user/manage", json={"username": "victim", "action": "enable"}).json["success"] is True
    assert user_row(world, victim.id)["display_name"] == "renamed"


def test_only_root_promotes_and_demotes(world):
    admin, root = world.client("admin"), world.client("root")
    common = world.people["common"]
    for reply in (admin.post("/api/user/manage", json={"username": "common", "action": "promote"}),
                  admin.put("/api/user/", json={"id": common.id, "role": ROLE_ADMIN}),
                  admin.post("/api/user/manage", json={"username": "victim", "action": "demote"})):
        assert reply.status_code == 403 and reply.json["success"] is False, reply.json
    assert user_row(world, common.id)["role"] == ROLE_COMMON
    reply = admin.post("/api/user/", json={"username": "sneaky", "password": "sneaky-pass-1", "role": ROLE_ADMIN})
    assert reply.json["success"] is False
    reply = root.post("/api/user/manage", json={"username": "common", "action": "promote"})
    assert reply.json["success"] is True and reply.json["data"]["role"] == ROLE_ADMIN
    assert user_row(world, common.id)["role"] == ROLE_ADMIN
    reply = root.post("/api/user/manage", json={"username": "common", "action": "demote"})
    assert reply.json["success"] is True and reply.json["data"]["role"] == ROLE_COMMON
    assert root.put("/api/user/", json={"id": common.id, "role": ROLE_ADMIN}).json["success"] is True
    assert user_row(world, common.id)["role"] == ROLE_ADMIN
    reply = root.put("/api/user/", json={"id": common.id, "role": ROLE_ROOT})
    assert reply.json["success"] is False and "role" in reply.json["message"]
    assert user_row(world, common.id)["role"] == ROLE_ADMIN


ROOT_ATTEMPTS = [
    ("POST", "/api/user/manage", {"username": "root", "action": "disable"}),
    ("POST", "/api/user/manage", {"username": "root", "action": "delete"}),
    ("POST", "/api/user/manage", {"username": "root", "action": "demote"}),
    ("PUT", "/api/user/", {"id": 1, "status": 2}),
    ("PUT", "/api/user/", {"id": 1, "role": ROLE_COMMON}),
    ("PUT", "/api/user/", {"id": 1, "role": ROLE_ADMIN}),
    ("DELETE", "/api/user/1", None),
    ("DELETE", "/api/user/self", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROOT_ATTEMPTS, ids=[f"{m} {p} {b}" for m, p, b in ROOT_ATTEMPTS])
def test_root_cannot_be_disabled_deleted_or_demoted(world, method, path, body):
    root = world.client("root")
    reply = root.open(path, method=method, json=body)
    assert reply.status_code < 500 and reply.json["success"] is False, reply.json
    row = user_row(world, 1)
    assert row["role"] == ROLE_ROOT and row["status"] == 1 and row["username"] == "root"
    assert root.get("/api/option/").json["success"] is True


def test_delete_user_answers_success_only_when_it_deleted(world):
    admin = world.client("admin")
    victim = world.people["victim"]
    reply = admin.delete(f"/api/user/{victim.id}")
    assert reply.status_code == 200 and reply.json["success"] is True, reply.get_data(as_text=True)
    assert user_row(world, victim.id)["status"] == 3
    assert admin.get(f"/api/user/{victim.id}").json["success"] is False
    again = admin.delete(f"/api/user/{victim.id}")
    assert again.json["success"] is False and again.json["message"]
    missing = admin.delete("/api/user/999999")
    assert missing.json["success"] is False and missing.json["message"]
    forbidden = admin.delete(f"/api/user/{world.people['admin2'].id}")
    assert forbidden.json["success"] is False and forbidden.json["message"]
    listed = {u["id"] for u in admin.get("/api/user/").json["data"]}
    assert victim.id not in listed
    # the deleted user's credentials stop working
    assert world.app.test_client().get(
        "/api/user/self", headers={"Authorization": victim.access_token}).json["success"] is False


def _both_ways(world, who):
    return world.client(who, "token"), world.client(who, "session")


@pytest.mark.parametrize("how", ["manage", "update"])
def test_disabling_takes_effect_on_the_next_request(world, how):
    by_token, by_session = _both_ways(world, "common")
    for client in (by_token, by_session):
        assert client.get("/api/user/self").json["success"] is True
    root = world.client("root")
    if how == "manage":
        reply = root.post("/api/user/manage", json={"username": "common", "action": "disable"})
    else:
        reply = root.put("/api/user/", json={"id": world.people["common"].id, "status": 2})
    assert reply.json["success"] is True
    for client in (by_token, by_session):
        reply = client.get("/api/user/self")
        assert reply.status_code in (401, 403) and reply.json["success"] is False
        assert client.post("/api/token/", json={"name": "after"}).json["success"] is False
    assert world.app.test_client().post(
        "/api/user/login", json={"username": "common", "password": PASSWORD}).json["success"] is False


@pytest.mark.parametrize("how", ["manage", "update"])
def test_demoting_takes_effect_on_the_next_request(world, how):
    by_token, by_session = _both_ways(world, "admin")
    for client in (by_token, by_session):
        assert client.get("/api/user/").json["success"] is True
    root = world.client("root")
    if how == "manage":
        reply = root.post("/api/user/manage", json={"username": "admin", "action": "demote"})
    else:
        reply = root.put("/api/user/", json={"id": world.people["admin"].id, "role": ROLE_COMMON})
    assert reply.json["success"] is True
    # The access token keeps working with the lower role; the session ends (it logged in as an admin).
    reply = by_token.get("/api/user/")
    assert reply.status_code == 403 and reply.json["success"] is False
    assert by_token.get("/api/user/self").json["data"]["role"] == ROLE_COMMON
    assert by_session.get("/api/user/").status_code == 401
    assert by_session.get("/api/user/self").status_code == 401
