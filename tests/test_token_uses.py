"""Tokens limited by a number of uses (remain_times), alone and with quota and expiry."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Token
from tests.conftest import TEST_PASSWORD, add_channel, add_token
from tests.mock_upstream import Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def call(client, key):
    return client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


def test_api_round_trips_remain_times(root):
    token = add_token(root, remain_times=5)
    assert token["remain_times"] == 5
    assert root.get(f"/api/token/{token['id']}").json["data"]["remain_times"] == 5
    assert add_token(root)["remain_times"] == -1  # the default: unlimited
    updated = root.put("/api/token/", json={"id": token["id"], "remain_times": 2}).json
    assert updated["success"] and updated["data"]["remain_times"] == 2
    for bad in (-2, "3", 1.5, True):
        reply = root.put("/api/token/", json={"id": token["id"], "remain_times": bad}).json
        assert not reply["success"] and "remain_times" in reply["message"], bad
    assert root.get("/api/token/").json["data"][0]["remain_times"] in (-1, 2)


def test_uses_run_out_and_reenabling_needs_more(app, root, upstream):
    add_channel(root, upstream.url)
    token = add_token(root, remain_times=2)
    key = token["key"]
    assert call(root, key).status_code == 200
    assert call(root, key).status_code == 200
    refused = call(root, key)
    assert refused.status_code == 401
    assert "uses" in refused.json["error"]["message"] and refused.json["error"]["code"] == "token_uses_exhausted"
    assert root.get(f"/api/token/{token['id']}").json["data"]["status"] == 4
    reply = root.put("/api/token/?status_only=1", json={"id": token["id"], "status": 1}).json
    assert not reply["success"] and "remain_times" in reply["message"]
    assert root.put("/api/token/", json={"id": token["id"], "remain_times": 1, "status": 1}).json["success"]
    assert call(root, key).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Token.remain_times).where(Token.id == token["id"])) == 0


def test_a_failed_request_gives_its_use_back(app, root, upstream):
    add_channel(root, upstream.url)
    token = add_token(root, remain_times=1)
    upstream.queue(Reply(status=500))
    assert call(root, token["key"]).status_code == 500
    with app.app_context():
        assert db.session.scalar(select(Token.remain_times).where(Token.id == token["id"])) == 1
    assert call(root, token["key"]).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Token.remain_times).where(Token.id == token["id"])) == 0


def test_three_limits_combined(root, upstream):
    add_channel(root, upstream.url)
    # uses left but quota gone: the quota message
    quota_bound = add_token(root, remain_times=10, unlimited_quota=False, remain_quota=40)  # one reservation of ~38
    assert call(root, quota_bound["key"]).status_code == 200
    refused = call(root, quota_bound["key"])
    assert refused.status_code in (401, 403) and "quota" in refused.json["error"]["message"]
    # quota left but uses gone: the uses message
    use_bound = add_token(root, remain_times=1, unlimited_quota=False, remain_quota=1000)
    assert call(root, use_bound["key"]).status_code == 200
    refused = call(root, use_bound["key"])
    assert refused.status_code == 401 and "uses" in refused.json["error"]["message"]
    # both left, but expired
    expired = add_token(root, remain_times=5, unlimited_quota=False, remain_quota=1000,
                        expired_time=int(time.time()) + 1)
    time.sleep(1.1)
    refused = call(root, expired["key"])
    assert refused.status_code == 401 and "expired" in refused.json["error"]["message"]


def test_fifty_racing_requests_on_three_uses(live_server_factory, upstream):
    server = live_server_factory("gunicorn")
    web = requests.Session()
    web.post(server.url + "/api/user/login", json={"username": "root", "password": "123456"})
    web.put(server.url + "/api/user/self", json={"password": TEST_PASSWORD})
    web.post(server.url + "/api/channel/", json={"name": "m", "type": 1, "key": "k", "base_url": upstream.url,
                                                 "models": "gpt-4o-mini"})
    token = web.post(server.url + "/api/token/", json={"name": "uses", "unlimited_quota": True,
                                                         "remain_times": 3}).json()["data"]

    def one(_):
        return requests.post(server.url + "/v1/chat/completions", json=CHAT, timeout=60,
                             headers={"Authorization": f"Bearer {token['key']}"}).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses.count(200) == 3, statuses
    assert set(statuses) == {200, 401}
    after = web.get(server.url + f"/api/token/{token['id']}").json()["data"]
    assert after["remain_times"] == 0 and after["status"] == 4
