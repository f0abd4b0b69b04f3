"""API tokens under /api/token: keys shown once and stored hashed, validation, owner scoping, status rules,
deletion, key regeneration and ordering."""

import hashlib
import re
import time

import pytest
from sqlalchemy import inspect, select, update

from oneapi.extensions import db
from oneapi.models import Token, User
from oneapi.models.user import ROLE_COMMON
from tests.conftest import add_channel, add_token

USER_PASSWORD = "user-pass-123"
KEY_RE = re.compile(r"sk-[0-9A-Za-z]{48}")


def make_user(app, username, *, quota=10**9):
    with app.app_context():
        user = User(username=username, display_name=username, role=ROLE_COMMON, quota=quota)
        user.set_password(USER_PASSWORD)
        db.session.add(user)
        db.session.commit()
        return user.id


def login(app, username):
    client = app.test_client()
    assert client.post("/api/user/login", json={"username": username, "password": USER_PASSWORD}).json["success"]
    return client


def token_row(app, token_id):
    """The stored row, column by column, read straight from the table."""
    with app.app_context():
        table = Token.__table__
        row = db.session.execute(table.select().where(table.c.id == token_id)).mappings().first()
        return dict(row) if row else None


def everything_stored(app):
    with app.app_context():
        parts = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                parts.extend(str(value) for value in row)
        return "\n".join(parts)


def token_count(app):
    with app.app_context():
        return len(db.session.scalars(select(Token.id)).all())


def v1_models(client, key):
    return client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})


def chat(client, key):
    return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})


# --- creation and secrecy -------------------------------------------------------------------------


def test_create_shows_the_full_key_once(app, root):
    reply = root.post("/api/token/", json={"name": "mine", "remain_quota": 1234, "unlimited_quota": False,
                                           "expired_time": -1, "models": "gpt-4o,gpt-4o-mini",
                                           "subnet": "10.0.0.0/8,192.168.1.0/24"})
    assert reply.status_code == 200 and reply.json["success"] is True
    data = reply.json["data"]
    key = data["key"]
    assert KEY_RE.fullmatch(key) and len(key) == 51
    assert data["name"] == "mine" and data["remain_quota"] == 1234 and data["unlimited_quota"] is False
    assert data["expired_time"] == -1 and data["status"] == 1 and data["used_quota"] == 0
    assert data["models"] == "gpt-4o,gpt-4o-mini" and data["subnet"] == "10.0.0.0/8,192.168.1.0/24"
    assert isinstance(data["id"], int)

    secret = key[3:]
    listing = root.get("/api/token/")
    assert listing.json["success"] is True and len(listing.json["data"]) == 1
    one = root.get(f"/api/token/{data['id']}")
    assert one.json["success"] is True
    for shown in (listing.json["data"][0], one.json["data"]):
        assert shown["id"] == data["id"] and shown["name"] == "mine"
        assert secret not in shown["key"] and shown["key"] != key
        assert "*" in shown["key"] and shown["key"].startswith(secret[:4]) and shown["key"].endswith(secret[-4:])
    assert secret[4:-4] not in listing.get_data(as_text=True)
    assert secret[4:-4] not in one.get_data(as_text=True)


def test_the_database_never_holds_the_plain_key(app, root):
    key = add_token(root, name="hidden")["key"]
    secret = key[3:]
    token_id = root.get("/api/token/").json["data"][0]["id"]
    row = token_row(app, token_id)
    with app.app_context():
        columns = [c["name"] for c in inspect(db.engine).get_columns("tokens")]
    assert set(row) == set(columns)
    for column, value in row.items():
        assert secret not in str(value), column
        assert secret[:24] not in str(value) and secret[24:] not in str(value), column
    # the lookup hash is what the database keeps
    assert hashlib.sha256(secret.encode()).hexdigest() in row.values()
    assert secret not in everything_stored(app)


def test_the_created_key_works_on_v1(app, root):
    key = add_token(root)["key"]
    reply = v1_models(app.test_client(), key)
    assert reply.status_code == 200 and reply.json["object"] == "list"


# --- validation ---------------------------------------------------------------------------------

BAD_FIELDS = [
    ({"name": "x" * 31}, "name"),
    ({"name": 123}, "name"),
    ({"remain_quota": -1}, "remain_quota"),
    ({"remain_quota": "abc"}, "remain_quota"),
    ({"remain_quota": 1.5}, "remain_quota"),
    ({"remain_quota": True}, "remain_quota"),
    ({"unlimited_quota": "yes"}, "unlimited_quota"),
    ({"expired_time": "tomorrow"}, "expired_time"),
    ({"expired_time": -5}, "expired_time"),
    ({"models": ["gpt-4o"]}, "models"),
    ({"subnet": "10.0.0.0/33"}, "subnet"),
    ({"subnet": "not-a-cidr"}, "subnet"),
    ({"subnet": "10.0.0.0/8,300.1.2.3/24"}, "subnet"),
    ({"subnet": 10}, "subnet"),
]


@pytest.mark.parametrize("fields,name", BAD_FIELDS)
def test_create_refuses_bad_fields_and_names_the_field(app, root, fields, name):
    reply = root.post("/api/token/", json={"name": "ok", "remain_quota": 10, **fields})
    assert reply.json["success"] is False
    assert name in reply.json["message"]
    assert token_count(app) == 0


@pytest.mark.parametrize("fields,name", BAD_FIELDS)
def test_update_refuses_bad_fields_and_changes_nothing(app, root, fields, name):
    created = add_token(root, name="before", remain_quota=10, unlimited_quota=False)
    before = token_row(app, created["id"])
    reply = root.put("/api/token/", json={"id": created["id"], **fields})
    assert reply.json["success"] is False
    assert name in reply.json["message"]
    assert token_row(app, created["id"]) == before


def test_valid_edge_values_are_accepted(root):
    reply = root.post("/api/token/", json={"name": "x" * 30, "remain_quota": 0, "subnet": "10.0.0.0/8, ::1/128",
                                           "expired_time": int(time.time()) + 3600})
    assert reply.json["success"] is True, reply.json
    assert reply.json["data"]["name"] == "x" * 30


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"'])
def test_create_refuses_a_body_that_is_not_a_json_object(app, root, body):
    reply = root.post("/api/token/", data=body, content_type="application/json")
    assert reply.status_code == 400 and reply.json["success"] is False
    assert token_count(app) == 0


# --- owner scoping ------------------------------------------------------------------------------


def test_another_user_cannot_see_change_or_delete_my_token(app, root):
    mine = add_token(root, name="root-token", remain_quota=100, unlimited_quota=False)
    make_user(app, "mallory")
    mallory = login(app, "mallory")
    before = token_row(app, mine["id"])

    assert mallory.get("/api/token/").json["data"] == []
    got = mallory.get(f"/api/token/{mine['id']}")
    assert got.json["success"] is False and "not found" in got.json["message"].lower()
    assert "data" not in got.json

    changed = mallory.put("/api/token/", json={"id": mine["id"], "name": "pwned", "remain_quota": 10**12})
    assert changed.json["success"] is False and "not found" in changed.json["message"].lower()
    disabled = mallory.put("/api/token/?status_only=true", json={"id": mine["id"], "status": 2})
    assert disabled.json["success"] is False and "not found" in disabled.json["message"].lower()
    regenerated = mallory.post(f"/api/token/{mine['id']}/key", headers={"X-Requested-With": "XMLHttpRequest"})
    assert regenerated.json["success"] is False and "not found" in regenerated.json["message"].lower()
    assert "data" not in regenerated.json
    deleted = mallory.delete(f"/api/token/{mine['id']}")
    assert deleted.json["success"] is False and "not found" in deleted.json["message"].lower()

    assert token_row(app, mine["id"]) == before
    assert v1_models(app.test_client(), mine["key"]).status_code == 200


def test_unknown_token_id_is_not_found(root):
    for reply in (root.get("/api/token/999999"), root.put("/api/token/", json={"id": 999999, "name": "x"}),
                  root.delete("/api/token/999999"),
                  root.post("/api/token/999999/key", headers={"X-Requested-With": "XMLHttpRequest"})):
        assert reply.json["success"] is False and "not found" in reply.json["message"].lower()


def test_update_requires_an_id(root):
    reply = root.put("/api/token/", json={"name": "x"})
    assert reply.json["success"] is False and "id" in reply.json["message"]


# --- update and status -----------------------------------------------------------------------------


def test_update_changes_the_editable_fields(app, root):
    created = add_token(root, name="old", remain_quota=5, unlimited_quota=False)
    expiry = int(time.time()) + 86400
    reply = root.put("/api/token/", json={"id": created["id"], "name": "new", "remain_quota": 77, "models": "gpt-4o",
                                          "subnet": "127.0.0.1/32", "expired_time": expiry, "unlimited_quota": True,
                                          "used_quota": 999, "user_id": 12345, "key": "sk-" + "a" * 48})
    assert reply.json["success"] is True, reply.json
    data = root.get(f"/api/token/{created['id']}").json["data"]
    assert (data["name"], data["remain_quota"], data["models"], data["subnet"], data["expired_time"],
            data["unlimited_quota"]) == ("new", 77, "gpt-4o", "127.0.0.1/32", expiry, True)
    # fields that are not editable kept their values
    row = token_row(app, created["id"])
    assert row["used_quota"] == 0 and row["user_id"] == data["user_id"] != 12345
    assert "a" * 48 not in str(row)


def test_status_only_changes_only_the_status(app, root):
    created = add_token(root, name="keep", remain_quota=50, unlimited_quota=False)
    reply = root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 2, "name": "changed",
                                                            "remain_quota": 1})
    assert reply.json["success"] is True, reply.json
    row = token_row(app, created["id"])
    assert (row["status"], row["name"], row["remain_quota"]) == (2, "keep", 50)
    assert root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 1}).json["success"] is True
    assert token_row(app, created["id"])["status"] == 1


def test_invalid_status_is_refused(app, root):
    created = add_token(root)
    reply = root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 7})
    assert reply.json["success"] is False and "status" in reply.json["message"]
    assert token_row(app, created["id"])["status"] == 1


def test_enabling_an_expired_token_is_refused(app, root):
    created = add_token(root, name="old", expired_time=int(time.time()) - 60)
    assert root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 2}).json["success"] is True
    reply = root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 1})
    assert reply.json["success"] is False and "expire" in reply.json["message"]
    assert token_row(app, created["id"])["status"] == 2
    # with a new expiry in the future it may be enabled again
    later = int(time.time()) + 3600
    reply = root.put("/api/token/", json={"id": created["id"], "expired_time": later, "status": 1})
    assert reply.json["success"] is True, reply.json
    assert token_row(app, created["id"])["status"] == 1


def test_enabling_an_exhausted_token_is_refused(app, root):
    created = add_token(root, name="empty", remain_quota=0, unlimited_quota=False)
    assert root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 2}).json["success"] is True
    reply = root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 1})
    assert reply.json["success"] is False and "quota" in reply.json["message"]
    assert token_row(app, created["id"])["status"] == 2
    reply = root.put("/api/token/", json={"id": created["id"], "remain_quota": 10, "status": 1})
    assert reply.json["success"] is True, reply.json
    assert token_row(app, created["id"])["status"] == 1 and token_row(app, created["id"])["remain_quota"] == 10


def test_enabling_an_exhausted_unlimited_token_is_allowed(app, root):
    created = add_token(root, name="unl", remain_quota=0, unlimited_quota=True)
    assert root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 2}).json["success"] is True
    assert root.put("/api/token/?status_only=true", json={"id": created["id"], "status": 1}).json["success"] is True


# --- delete and regenerate -----------------------------------------------------------------------


def test_delete(app, root):
    created = add_token(root, name="doomed")
    user = app.test_client()
    assert v1_models(user, created["key"]).status_code == 200  # cached now
    reply = root.delete(f"/api/token/{created['id']}")
    assert reply.json["success"] is True
    assert token_row(app, created["id"]) is None
    assert root.get(f"/api/token/{created['id']}").json["success"] is False
    assert root.get("/api/token/").json["data"] == []
    refused = v1_models(user, created["key"])
    assert refused.status_code == 401 and "error" in refused.json


def test_regenerate_key(app, root, upstream):
    add_channel(root, upstream.url)
    created = add_token(root, name="rotating", remain_quota=1000, unlimited_quota=False)
    old = created["key"]
    user = app.test_client()
    assert chat(user, old).status_code == 200  # the old key is cached and has been used
    used_before = token_row(app, created["id"])["used_quota"]
    assert used_before == 3

    reply = root.post(f"/api/token/{created['id']}/key", headers={"X-Requested-With": "XMLHttpRequest"})
    assert reply.json["success"] is True, reply.json
    new = reply.json["data"]["key"]
    assert KEY_RE.fullmatch(new) and new != old
    assert reply.json["data"]["id"] == created["id"] and reply.json["data"]["name"] == "rotating"

    refused = chat(user, old)
    assert refused.status_code == 401 and set(refused.json["error"]) >= {"message", "type", "code"}
    assert v1_models(user, old).status_code == 401
    assert chat(user, new).status_code == 200

    row = token_row(app, created["id"])
    assert row["used_quota"] == 6 and row["remain_quota"] == 1000 - 6
    assert hashlib.sha256(new[3:].encode()).hexdigest() in row.values()
    assert new[3:] not in everything_stored(app) and old[3:] not in everything_stored(app)
    shown = root.get(f"/api/token/{created['id']}").json["data"]["key"]
    assert shown.startswith(new[3:7]) and new[3:] not in shown


# --- listing --------------------------------------------------------------------------------------


def test_order_parameter(app, root):
    a = add_token(root, name="a", remain_quota=100, unlimited_quota=False)["id"]
    b = add_token(root, name="b", remain_quota=0, unlimited_quota=True)["id"]
    c = add_token(root, name="c", remain_quota=500, unlimited_quota=False)["id"]
    with app.app_context():
        for token_id, used in ((a, 50), (b, 10), (c, 0)):
            db.session.execute(update(Token).where(Token.id == token_id).values(used_quota=used))
        db.session.commit()

    def ids(query=""):
        reply = root.get("/api/token/" + query)
        assert reply.json["success"] is True
        return [t["id"] for t in reply.json["data"]]

    assert ids() == [c, b, a]
    assert ids("?order=remain_quota") == [b, c, a]
    assert ids("?order=used_quota") == [a, b, c]
    assert ids("?order=nonsense") == [c, b, a]


def test_pages_of_ten(root):
    made = [add_token(root, name=f"t{i}")["id"] for i in range(12)]
    first = root.get("/api/token/?p=0").json["data"]
    second = root.get("/api/token/?p=1").json["data"]
    assert [t["id"] for t in first] == sorted(made, reverse=True)[:10]
    assert [t["id"] for t in second] == sorted(made, reverse=True)[10:]
    assert root.get("/api/token/?p=-3").json["data"] == first
    assert root.get("/api/token/?p=5").json["data"] == []
