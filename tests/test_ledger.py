"""Quota outside the relay: redemption codes, admin top-ups, and the log views that add it all up."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import TEST_PASSWORD, add_channel, add_token


def test_redemption_batch_redeem_once_and_export(root):
    reply = root.post("/api/redemption/", json={"name": "batch-1", "quota": 1000, "count": 3}).json
    assert reply["success"] and len(reply["data"]) == 3 and all(len(k) == 32 for k in reply["data"])
    key = reply["data"][0]
    before = root.get("/api/user/self").json["data"]["quota"]
    assert root.post("/api/user/topup", json={"key": key}).json == {"success": True, "message": "", "data": 1000}
    assert root.get("/api/user/self").json["data"]["quota"] == before + 1000
    again = root.post("/api/user/topup", json={"key": key}).json
    assert not again["success"] and "already been used" in again["message"]
    assert root.get("/api/user/self").json["data"]["quota"] == before + 1000
    logs = root.get("/api/log/self?type=1").json["data"]
    assert len(logs) == 1 and logs[0]["quota"] == 1000 and "id" not in logs[0]
    csv_text = root.get("/api/redemption/export?name=batch-1").data.decode()
    assert csv_text.count("\n") == 4 and all(k in csv_text for k in reply["data"])


def test_redemption_validation(root):
    for body, message in (({"name": "", "count": 1, "quota": 1}, "name"), ({"name": "x", "count": 101, "quota": 1}, "count"),
                          ({"name": "x", "count": 0, "quota": 1}, "count"), ({"name": "x", "count": 1, "quota": -5}, "quota"),
                          ({"name": "x", "count": "2", "quota": 1}, "count")):
        reply = root.post("/api/redemption/", json=body).json
        assert not reply["success"] and message in reply["message"], (body, reply)
    assert not root.post("/api/user/topup", json={"key": "nope"}).json["success"]


def test_admin_top_up_writes_a_log_row(root):
    me = root.get("/api/user/self").json["data"]
    assert root.post("/api/topup", json={"user_id": me["id"], "quota": 777, "remark": "invoice 42"}).json["success"]
    assert root.get("/api/user/self").json["data"]["quota"] == me["quota"] + 777
    (row,) = root.get("/api/log/?type=1").json["data"]
    assert row["quota"] == 777 and row["content"] == "invoice 42" and row["username"] == "root"
    assert not root.post("/api/topup", json={"user_id": me["id"], "quota": -1}).json["success"]
    assert root.post("/api/topup", json={"user_id": 99999, "quota": 1}).status_code == 404


def test_dashboard_and_stats_add_up(root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root)["key"]
    for _ in range(3):
        assert root.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
                         headers={"Authorization": f"Bearer {key}"}).status_code == 200
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert root.get("/api/user/dashboard").json["data"] == [
        {"Day": today, "ModelName": "gpt-4o-mini", "RequestCount": 3, "Quota": 9, "PromptTokens": 33,
         "CompletionTokens": 21}]
    assert root.get("/api/log/stat").json["data"] == {"quota": 9}
    assert root.get("/api/log/self/stat?model_name=gpt-4o-mini").json["data"] == {"quota": 9}
    assert root.get("/api/log/self/stat?model_name=other").json["data"] == {"quota": 0}
    assert len(root.get("/api/log/?type=2&model_name=gpt-4o-mini").json["data"]) == 3
    assert root.get("/api/log/?type=abc").status_code == 400
    assert root.delete(f"/api/log/?target_timestamp={int(time.time()) + 10}").json["data"] == 3


def test_fifty_concurrent_redemptions_of_one_code(live_server_factory):
    server = live_server_factory("gunicorn")
    web = requests.Session()
    web.post(server.url + "/api/user/login", json={"username": "root", "password": "123456"})
    web.put(server.url + "/api/user/self", json={"password": TEST_PASSWORD})
    key = web.post(server.url + "/api/redemption/", json={"name": "race", "quota": 5000, "count": 1}).json()["data"][0]
    before = web.get(server.url + "/api/user/self").json()["data"]["quota"]
    cookies = web.cookies.get_dict()

    def redeem(_):
        return requests.post(server.url + "/api/user/topup", json={"key": key}, cookies=cookies, timeout=30).json()["success"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(redeem, range(50)))
    assert results.count(True) == 1
    assert web.get(server.url + "/api/user/self").json()["data"]["quota"] == before + 5000
    assert len(web.get(server.url + "/api/log/self?type=1").json()["data"]) == 1
