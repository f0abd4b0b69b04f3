"""No secret leaves the server through /api: a walker makes users, channels, API keys, access tokens,
redemption codes and secret options, then reads every GET operation of the OpenAPI document (and every
create/update answer) as root and as admin, and finds no password hash, access token, API key or channel key
anywhere except in the one answer that created it. Plus the input rules every route shares: LIKE wildcards
are literal, page_size is bounded, unknown JSON fields are never written, and validation errors name the field."""

import hashlib
import re

import pytest

from oneapi.extensions import db
from oneapi.models import Channel, Log, LogType, Redemption, Token, User
from oneapi.models.token import generate_key
from oneapi.models.user import ROLE_COMMON
from oneapi.openapi.document import build

CHANNEL_KEY = "sk-upstream-SECRET-key"
SECRET_OPTIONS = {"SMTPToken": "smtp-SECRET-option-1", "GitHubClientSecret": "github-SECRET-option-2",
                  "TurnstileSecretKey": "turnstile-SECRET-option-3", "WeChatServerToken": "wechat-SECRET-option-4"}
PASSWORD = "someone-pass-1"
KEY_RE = re.compile(r"sk-([0-9A-Za-z]{48})")


def sha256(value):
    return hashlib.sha256(value.encode()).hexdigest()


class Secrets:
    """Every secret made so far, and which answer made it."""

    def __init__(self):
        self.values = {}  # secret -> label of the answer allowed to show it

    def add(self, value, label):
        self.values[value] = label
        self.values[sha256(value)] = "never"  # the stored lookup hash is not shown either

    def leaks(self, text, label=None):
        found = []
        if "$2b$" in text or "$2a$" in text or "$2y$" in text:
            found.append("a bcrypt password hash")
        for value, allowed in self.values.items():
            if value in text and allowed != label:
                found.append(f"{value[:12]}... (made by {allowed})")
        return found


class Walker:
    def __init__(self, app):
        self.app = app
        self.secrets = Secrets()
        self.leaks = []

    def check(self, reply, label, allowed_label=None):
        text = reply.get_data(as_text=True)
        for leak in self.secrets.leaks(text, allowed_label):
            self.leaks.append(f"{label}: {leak}")
        return reply


def login(app, username, password):
    client = app.test_client()
    reply = client.post("/api/user/login", json={"username": username, "password": password})
    assert reply.json["success"], reply.json
    return client


def token_client(app, access_token):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = access_token
    return client


@pytest.fixture
def walk(app, root, upstream):
    """Make one of everything through the API, remembering each secret and the answer that showed it."""
    w = Walker(app)
    reply = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"})
    w.secrets.add(reply.json["data"], "root access token")
    w.check(reply, "POST /api/user/token (root)", "root access token")
    w.root = token_client(app, reply.json["data"])
    w.root_session = root

    for name in ("admin", "common"):
        reply = w.check(w.root.post("/api/user/", json={"username": name, "password": PASSWORD,
                                                          "display_name": name.title()}), f"POST /api/user/ {name}")
        assert reply.json["success"], reply.json
    assert w.root.post("/api/user/manage", json={"username": "admin", "action": "promote"}).json["success"]
    for name in ("admin", "common"):
        session = login(app, name, PASSWORD)
        reply = session.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"})
        label = f"{name} access token"
        w.secrets.add(reply.json["data"], label)
        w.check(reply, f"POST /api/user/token ({name})", label)
        setattr(w, name, token_client(app, reply.json["data"]))
        setattr(w, f"{name}_session", session)

    reply = w.check(w.root.post("/api/channel/", json={
        "name": "upstream", "type": 1, "key": CHANNEL_KEY, "base_url": upstream.url, "models": "gpt-4o-mini",
        "group": "default"}), "POST /api/channel/", "channel key")
    w.channel_id = reply.json["data"][0]
    w.secrets.add(CHANNEL_KEY, "channel key")
    batch = f"{CHANNEL_KEY}-batch-1\n{CHANNEL_KEY}-batch-2\n\n{CHANNEL_KEY}-batch-3"
    reply = w.check(w.admin.post("/api/channel/", json={"name": "batch", "key": batch, "base_url": upstream.url,
                                                        "models": "gpt-4o"}), "POST /api/channel/ batch",
                    "channel key")
    assert len(reply.json["data"]) == 3

    w.token_ids = {}
    for who in ("root", "admin", "common"):
        reply = getattr(w, who).post("/api/token/", json={"name": f"{who}-key", "unlimited_quota": True})
        key = KEY_RE.fullmatch(reply.json["data"]["key"]).group(1)
        w.secrets.add(key, f"{who} API key")
        w.check(reply, f"POST /api/token/ ({who})", f"{who} API key")
        w.token_ids[who] = reply.json["data"]["id"]
        if who == "root":
            w.root_key = key

    reply = w.check(w.admin.post("/api/redemption/", json={"name": "codes", "count": 3, "quota": 1000}),
                    "POST /api/redemption/")
    w.codes = reply.json["data"]
    assert w.common.post("/api/user/topup", json={"key": w.codes[0]}).json["success"]

    for key, value in SECRET_OPTIONS.items():
        w.secrets.add(value, f"option {key}")
        w.check(w.root.put("/api/option/", json={"key": key, "value": value}), f"PUT option {key}", f"option {key}")

    # a relayed request and a channel test, so logs exist and have had a chance to record secrets
    chat = app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer sk-{w.root_key}"},
                                  json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    assert chat.status_code == 200, chat.get_data(as_text=True)
    w.check(chat, "POST /v1/chat/completions")
    w.check(w.root.get(f"/api/channel/test/{w.channel_id}"), "GET /api/channel/test/:id")
    with app.app_context():
        w.user_ids = {u.username: u.id for u in db.session.query(User)}
        w.redemption_id = db.session.query(Redemption.id).order_by(Redemption.id.desc()).first()[0]
    return w


def updates(w):
    """Every create/update route, once more, each answer checked."""
    ids = w.user_ids
    return [
        w.root.put("/api/user/", json={"id": ids["common"], "display_name": "Changed", "quota": 12345,
                                       "password": "another-pass-1"}),
        w.admin.put("/api/user/", json={"id": ids["common"], "email": "c@example.com"}),
        w.root.post("/api/user/", json={"username": "third", "password": PASSWORD}),
        w.root.post("/api/user/manage", json={"username": "common", "action": "disable"}),
        w.root.post("/api/user/manage", json={"username": "common", "action": "enable"}),
        w.admin.put("/api/user/self", json={"display_name": "Admin!"}),
        w.root.put("/api/channel/", json={"id": w.channel_id, "name": "renamed", "priority": 3}),
        w.root.put("/api/channel/", json={"id": w.channel_id, "key": CHANNEL_KEY}),
        w.admin.put("/api/token/", json={"id": w.token_ids["admin"], "name": "renamed"}),
        w.admin.put("/api/token/?status_only=1", json={"id": w.token_ids["admin"], "status": 2}),
        w.root.put("/api/redemption/", json={"id": w.redemption_id, "name": "renamed", "quota": 7}),
        w.root.post("/api/topup", json={"user_id": ids["common"], "quota": 10}),
        w.root.put("/api/option/", json={"key": "Notice", "value": "hello"}),
    ]


def get_operations():
    return [path for path, item in build("test")["paths"].items() if "get" in item]


def expand(path, w):
    """Every concrete URL for a documented GET path, with each kind of id we made."""
    if "{user_id}" in path:
        return [path.replace("{user_id}", str(i)) for i in w.user_ids.values()]
    if "{token_id}" in path:
        return [path.replace("{token_id}", str(i)) for i in w.token_ids.values()]
    if "{channel_id}" in path:
        return [path.replace("{channel_id}", str(w.channel_id))]
    if "{redemption_id}" in path:
        return [path.replace("{redemption_id}", str(w.redemption_id))]
    return [path]


QUERIES = {"/api/user/search": {"keyword": "a"}, "/api/channel/search": {"keyword": "u"},
           "/api/token/search": {"keyword": ""}, "/api/redemption/search": {"keyword": "c"},
           "/api/log/search": {"keyword": ""}, "/api/log/self/search": {"keyword": ""},
           "/api/redemption/export": {"name": "codes"}}


def test_no_secret_in_any_read_or_write_answer(walk):
    w = walk
    for reply in updates(w):
        assert reply.status_code < 500
        w.check(reply, f"{reply.request.method} {reply.request.full_path}")
    readers = {"root (token)": w.root, "root (session)": w.root_session, "admin (token)": w.admin,
               "admin (session)": w.admin_session, "common (token)": w.common}
    seen = 0
    for path in get_operations():
        if path == "/api/user/logout":
            continue  # would end the sessions; it answers nothing anyway
        for url in expand(path, w):
            for who, client in readers.items():
                query = {"p": "0", "page_size": "100", **QUERIES.get(path, {})}
                reply = client.get(url, query_string=query)
                assert reply.status_code < 500, (url, who, reply.get_data(as_text=True)[:200])
                w.check(reply, f"GET {url} as {who}")
                seen += 1
    assert seen > 100
    assert not w.leaks, "\n".join(w.leaks)


def test_the_database_keeps_no_plain_secret(walk):
    """The stored side of the same rule: hashes only, so a leaked database leaks no credential."""
    w = walk
    with w.app.app_context():
        dump = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                dump.extend(str(v) for v in row)
    text = "\n".join(dump)
    for value, label in w.secrets.values.items():
        if label.endswith(("access token", "API key")):
            assert value not in text, label


# ---- LIKE wildcards ------------------------------------------------------------------------------------


@pytest.fixture
def named_rows(app, walk):
    """Rows named a_b and axb / a%b and ayb everywhere a search looks."""
    names = ("a_b", "axb", "a%b", "ayb")
    with app.app_context():
        for name in names:
            user = User(username=name, display_name=name, role=ROLE_COMMON, password="x")
            db.session.add(user)
            db.session.add(Channel(name=name, key="k", type=1, models="m", group="default"))
            db.session.add(Redemption(name=name, key=sha256(name)[:32], quota=1, user_id=1))
            db.session.add(Log(type=LogType.SYSTEM, content=name, user_id=1, username="root"))
            token = Token(user_id=1, name=name)
            token.set_key(generate_key())
            db.session.add(token)
        db.session.commit()
    return walk


SEARCHES = [("/api/user/search", "username"), ("/api/channel/search", "name"), ("/api/token/search", "name"),
            ("/api/redemption/search", "name"), ("/api/log/search", "content"), ("/api/log/self/search", "content")]


@pytest.mark.parametrize(("path", "column"), SEARCHES, ids=[p for p, _ in SEARCHES])
def test_like_wildcards_match_only_themselves(named_rows, path, column):
    client = named_rows.root
    for keyword in ("%", "_", "%%", "_%", "\\"):
        reply = client.get(path, query_string={"keyword": keyword})
        assert reply.json["success"] is True and reply.json["data"] == [], (keyword, reply.json)
    for keyword, expected in (("a_", {"a_b"}), ("a%", {"a%b"}), ("a_b", {"a_b"}), ("ax", {"axb"})):
        reply = client.get(path, query_string={"keyword": keyword})
        found = {row[column] for row in reply.json["data"]}
        assert found == expected, (keyword, found)


# ---- page_size is bounded ------------------------------------------------------------------------------

LISTS = ["/api/user/", "/api/token/", "/api/channel/", "/api/redemption/", "/api/log/", "/api/log/self",
         "/api/log/self/"]


@pytest.fixture
def many_rows(app, walk):
    with app.app_context():
        for i in range(120):
            db.session.add(User(username=f"bulk{i}", display_name="b", role=ROLE_COMMON, password="x"))
            db.session.add(Channel(name=f"bulk{i}", key="k", type=1, models="m", group="default"))
            db.session.add(Redemption(name="bulk", key=sha256(f"bulk{i}")[:32], quota=1, user_id=1))
            db.session.add(Log(type=LogType.SYSTEM, content=f"bulk{i}", user_id=1, username="root"))
            token = Token(user_id=1, name=f"bulk{i}")
            token.set_key(generate_key())
            db.session.add(token)
        db.session.commit()
    return walk


@pytest.mark.parametrize("path", LISTS)
def test_page_size_is_bounded(many_rows, path):
    client = many_rows.root
    for size, expected in (("100000", 100), ("100", 100), ("101", 100), ("0", 1), ("-7", 1), ("25", 25)):
        reply = client.get(path, query_string={"page_size": size})
        assert reply.json["success"] is True, reply.json
        assert len(reply.json["data"]) == expected, (size, len(reply.json["data"]))
    assert len(client.get(path).json["data"]) == 10
    first, second = (client.get(path, query_string={"p": p, "page_size": 30}).json["data"] for p in ("0", "1"))
    assert len(second) == 30 and not {repr(r) for r in first} & {repr(r) for r in second}
    reply = client.get(path, query_string={"page_size": "lots"})
    assert reply.status_code == 400 and "page_size" in reply.json["message"]


# ---- unknown JSON fields are ignored -------------------------------------------------------------------


def row(app, model, row_id):
    with app.app_context():
        table = model.__table__
        return dict(db.session.execute(table.select().where(table.c.id == row_id)).mappings().one())


def test_put_user_never_writes_fields_it_does_not_own(walk):
    w = walk
    user_id = w.user_ids["common"]
    before = row(w.app, User, user_id)
    reply = w.root.put("/api/user/", json={
        "id": user_id, "display_name": "Renamed", "access_token": "planted-token", "used_quota": 999,
        "request_count": 77, "aff_code": "PLNT", "inviter_id": 1, "must_change_password": True,
        "created_time": 1, "github_id": "planted", "verification_code": "x", "password_hash": "$2b$planted"})
    assert reply.json["success"] is True, reply.json
    after = row(w.app, User, user_id)
    assert after["display_name"] == "Renamed"
    assert {k: v for k, v in after.items() if k != "display_name"} == \
        {k: v for k, v in before.items() if k != "display_name"}
    assert token_client(w.app, "planted-token").get("/api/user/self").json["success"] is False


def test_put_self_cannot_raise_role_quota_or_status(walk):
    w = walk
    user_id = w.user_ids["common"]
    before = row(w.app, User, user_id)
    reply = w.common.put("/api/user/self", json={"display_name": "Me", "role": 100, "quota": 10**12, "status": 1,
                                                 "group": "vip", "used_quota": 0, "access_token": "planted",
                                                 "id": 1, "email": "me@example.com"})
    assert reply.json["success"] is True, reply.json
    after = row(w.app, User, user_id)
    assert after["display_name"] == "Me"
    assert {k: v for k, v in after.items() if k != "display_name"} == \
        {k: v for k, v in before.items() if k != "display_name"}
    assert row(w.app, User, 1)["display_name"] == "Root User"


def test_put_token_never_writes_owner_usage_or_key(walk):
    w = walk
    token_id = w.token_ids["common"]
    before = row(w.app, Token, token_id)
    reply = w.common.put("/api/token/", json={
        "id": token_id, "name": "renamed", "user_id": w.user_ids["root"], "used_quota": 5, "key": "sk-planted",
        "key_hash": sha256("planted"), "key_hint": "xxxx", "created_time": 1, "accessed_time": 1})
    assert reply.json["success"] is True, reply.json
    after = row(w.app, Token, token_id)
    assert after["name"] == "renamed"
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}
    assert w.common.get(f"/api/token/{token_id}").json["success"] is True


def test_create_token_belongs_to_the_caller_whatever_the_body_says(walk):
    w = walk
    reply = w.common.post("/api/token/", json={"name": "mine", "user_id": w.user_ids["root"], "used_quota": 9,
                                               "status": 2, "key": "sk-planted"})
    data = reply.json["data"]
    assert data["user_id"] == w.user_ids["common"] and data["used_quota"] == 0 and data["key"] != "sk-planted"


def test_put_channel_and_redemption_never_write_counters(walk):
    w = walk
    before = row(w.app, Channel, w.channel_id)
    reply = w.root.put("/api/channel/", json={"id": w.channel_id, "name": "renamed", "used_quota": 5,
                                              "balance": 99.5, "created_time": 1, "test_time": 1,
                                              "response_time": 1, "balance_updated_time": 1})
    assert reply.json["success"] is True, reply.json
    after = row(w.app, Channel, w.channel_id)
    assert after["name"] == "renamed"
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}
    before = row(w.app, Redemption, w.redemption_id)
    reply = w.root.put("/api/redemption/", json={"id": w.redemption_id, "name": "renamed", "key": "planted",
                                                 "user_id": 99, "redeemed_by": 99, "redeemed_time": 1,
                                                 "created_time": 1})
    assert reply.json["success"] is True, reply.json
    after = row(w.app, Redemption, w.redemption_id)
    assert after["name"] == "renamed"
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}


def test_create_user_makes_a_common_user_whatever_the_body_says(walk):
    reply = walk.root.post("/api/user/", json={"username": "plain", "password": PASSWORD, "quota": 10**9,
                                               "status": 2, "group": "vip", "access_token": "planted"})
    data = reply.json["data"]
    assert data["role"] == ROLE_COMMON and data["status"] == 1 and data["group"] == "default"
    assert token_client(walk.app, "planted").get("/api/user/self").json["success"] is False


# ---- validation errors name the field ------------------------------------------------------------------

LONG = "x" * 300
VALIDATION = [
    # (method, path, body or query, the names any one of which the message must contain)
    ("PUT", "/api/user/self", {"username": "x" * 13}, ("username",)),
    ("PUT", "/api/user/self", {"username": ""}, ("username",)),
    ("PUT", "/api/user/self", {"display_name": "x" * 21}, ("display_name",)),
    ("PUT", "/api/user/self", {"password": "short"}, ("password",)),
    ("PUT", "/api/user/self", {"password": 12345678}, ("password",)),
    ("PUT", "/api/user/self", {"display_name": 5}, ("display_name",)),
    ("POST", "/api/user/", {"password": PASSWORD}, ("username",)),
    ("POST", "/api/user/", {"username": "fine"}, ("password",)),
    ("POST", "/api/user/", {"username": "fine", "password": "short"}, ("password",)),
    ("POST", "/api/user/", {"username": "x" * 13, "password": PASSWORD}, ("username",)),
    ("POST", "/api/user/", {"username": "fine", "password": PASSWORD, "display_name": "x" * 21}, ("display_name",)),
    ("POST", "/api/user/", {"username": "fine", "password": PASSWORD, "role": "admin"}, ("role",)),
    ("PUT", "/api/user/", {"display_name": "x"}, ("id",)),
    ("PUT", "/api/user/", {"id": "two"}, ("id",)),
    ("PUT", "/api/user/", {"id": "{common}", "email": LONG}, ("email",)),
    ("PUT", "/api/user/", {"id": "{common}", "group": ""}, ("group",)),
    ("PUT", "/api/user/", {"id": "{common}", "group": LONG}, ("group",)),
    ("PUT", "/api/user/", {"id": "{common}", "role": 5}, ("role",)),
    ("PUT", "/api/user/", {"id": "{common}", "status": 9}, ("status",)),
    ("PUT", "/api/user/", {"id": "{common}", "quota": -1}, ("quota",)),
    ("PUT", "/api/user/", {"id": "{common}", "quota": "lots"}, ("quota",)),
    ("PUT", "/api/user/", {"id": "{common}", "quota": True}, ("quota",)),
    ("PUT", "/api/user/", {"id": "{common}", "username": "x" * 13}, ("username",)),
    ("PUT", "/api/user/", {"id": "{common}", "password": "short"}, ("password",)),
    ("POST", "/api/user/manage", {"username": "common", "action": "explode"}, ("action",)),
    ("POST", "/api/user/manage", {"action": "disable"}, ("username",)),
    ("POST", "/api/user/manage", {"username": "common"}, ("action",)),
    ("POST", "/api/token/", {"name": "x" * 31}, ("name",)),
    ("POST", "/api/token/", {"expired_time": -5}, ("expired_time",)),
    ("POST", "/api/token/", {"remain_quota": -1}, ("remain_quota",)),
    ("POST", "/api/token/", {"remain_times": -2}, ("remain_times",)),
    ("POST", "/api/token/", {"unlimited_quota": "yes"}, ("unlimited_quota",)),
    ("POST", "/api/token/", {"subnet": "nope"}, ("subnet",)),
    ("POST", "/api/token/", {"models": 5}, ("models",)),
    ("PUT", "/api/token/", {"name": "x"}, ("id",)),
    ("PUT", "/api/token/", {"id": "{token}", "status": 9}, ("status",)),
    ("PUT", "/api/token/", {"id": "{token}", "remain_quota": "x"}, ("remain_quota",)),
    ("POST", "/api/channel/", {"name": "c"}, ("key",)),
    ("POST", "/api/channel/", {"key": "k", "type": 99999}, ("type",)),
    ("POST", "/api/channel/", {"key": "k", "base_url": "ftp://host"}, ("base_url",)),
    ("POST", "/api/channel/", {"key": "k", "model_mapping": "[1]"}, ("model_mapping",)),
    ("POST", "/api/channel/", {"key": "k", "config": "nope"}, ("config",)),
    ("POST", "/api/channel/", {"key": "k", "weight": -1}, ("weight",)),
    ("POST", "/api/channel/", {"key": "k", "status": 7}, ("status",)),
    ("POST", "/api/channel/", {"key": "k", "name": LONG}, ("name",)),
    ("POST", "/api/channel/", {"key": "k", "group": "g," + "x" * 40}, ("group",)),
    ("POST", "/api/channel/", {"key": "k", "priority": "high"}, ("priority",)),
    ("POST", "/api/channel/", {"key": 5}, ("key",)),
    ("PUT", "/api/channel/", {"name": "c"}, ("id",)),
    ("PUT", "/api/channel/", {"id": "{channel}", "models": ["a"]}, ("models",)),
    ("POST", "/api/redemption/", {"name": "", "count": 1, "quota": 1}, ("name",)),
    ("POST", "/api/redemption/", {"name": "x" * 21}, ("name",)),
    ("POST", "/api/redemption/", {"name": "n", "count": 0}, ("count",)),
    ("POST", "/api/redemption/", {"name": "n", "count": 101}, ("count",)),
    ("POST", "/api/redemption/", {"name": "n", "quota": 0}, ("quota",)),
    ("POST", "/api/redemption/", {"name": "n", "quota": "x"}, ("quota",)),
    ("PUT", "/api/redemption/", {"name": "n"}, ("id",)),
    ("PUT", "/api/redemption/", {"id": "{redemption}", "status": 3}, ("status",)),
    ("PUT", "/api/redemption/", {"id": "{redemption}", "name": ""}, ("name",)),
    ("PUT", "/api/redemption/", {"id": "{redemption}", "quota": 0}, ("quota",)),
    ("PUT", "/api/option/", {"value": "x"}, ("key",)),
    ("PUT", "/api/option/", {"key": "Notice", "value": [1]}, ("value",)),
    ("PUT", "/api/option/", {"key": "ModelRatio", "value": "not json"}, ("value", "ModelRatio")),
    ("PUT", "/api/option/", {"key": "RegisterEnabled", "value": "maybe"}, ("value", "RegisterEnabled")),
    ("POST", "/api/topup", {"quota": 1}, ("user_id",)),
    ("POST", "/api/topup", {"user_id": "{common}"}, ("quota",)),
    ("POST", "/api/topup", {"user_id": "{common}", "quota": 0}, ("quota",)),
    ("POST", "/api/topup", {"user_id": "{common}", "quota": "x"}, ("quota",)),
    ("POST", "/api/user/topup", {}, ("key",)),
    ("POST", "/api/user/topup", {"key": 5}, ("key",)),
    ("POST", "/api/user/login", {"username": "root"}, ("password",)),
    ("GET", "/api/user/", {"p": "first"}, ("p",)),
    ("GET", "/api/log/", {"type": "consume"}, ("type",)),
    ("GET", "/api/log/", {"start_timestamp": "yesterday"}, ("start_timestamp",)),
    ("GET", "/api/log/self", {"end_timestamp": "soon"}, ("end_timestamp",)),
    ("GET", "/api/log/stat", {"channel": "one"}, ("channel",)),
    ("DELETE", "/api/log/", {}, ("target_timestamp",)),
    ("DELETE", "/api/log/", {"target_timestamp": "now"}, ("target_timestamp",)),
    ("GET", "/api/channel/test", {"scope": "some"}, ("scope",)),
]


@pytest.fixture
def basic(app, root):
    """Less than `walk`: root's access token, a common user, a token, a channel and a redemption code."""
    w = Walker(app)
    w.root = token_client(app, root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"])
    assert w.root.post("/api/user/", json={"username": "common", "password": PASSWORD}).json["success"]
    w.channel_id = w.root.post("/api/channel/", json={"name": "c", "key": CHANNEL_KEY}).json["data"][0]
    w.token_ids = {"root": w.root.post("/api/token/", json={"name": "t"}).json["data"]["id"]}
    assert w.root.post("/api/redemption/", json={"name": "r", "count": 1, "quota": 1}).json["success"]
    with app.app_context():
        w.user_ids = {u.username: u.id for u in db.session.query(User)}
        w.redemption_id = db.session.query(Redemption.id).first()[0]
    return w


@pytest.mark.parametrize(("method", "path", "payload", "names"), VALIDATION,
                         ids=[f"{i:02d} {m} {p} {sorted(b)}" for i, (m, p, b, _) in enumerate(VALIDATION)])
def test_validation_errors_name_the_field(basic, method, path, payload, names):
    w = basic
    ids = {"{common}": w.user_ids["common"], "{token}": w.token_ids["root"], "{channel}": w.channel_id,
           "{redemption}": w.redemption_id}
    payload = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in payload.items()}
    client = w.root if path != "/api/user/login" else w.app.test_client()
    if method in ("GET", "DELETE"):
        reply = client.open(path, method=method, query_string=payload)
    else:
        reply = client.open(path, method=method, json=payload)
    assert reply.status_code in (200, 400), (reply.status_code, reply.get_data(as_text=True))
    assert reply.json["success"] is False, reply.json
    assert any(name in reply.json["message"] for name in names), (names, reply.json["message"])
