"""The README's promise, end to end against the real server process: first login, forced password
change, an access token, a channel, an API token, and chat completions through the official SDK,
billed exactly."""

import openai
import pytest
import requests

from tests.conftest import TEST_PASSWORD


def api(session, method, path, **kwargs):
    reply = session.request(method, session.base + path, timeout=30, **kwargs)
    return reply.status_code, reply.json()


@pytest.mark.parametrize("kind", ["app", "gunicorn"])
def test_first_streamed_completion(live_server_factory, upstream, kind):
    server = live_server_factory(kind)
    web = requests.Session()
    web.base = server.url

    # Step 2: root/123456 logs in; everything but a few routes is locked until the password changes.
    status, body = api(web, "GET", "/api/status")
    assert status == 200 and body["success"] and body["data"]["system_name"] == "One API"
    status, body = api(web, "POST", "/api/user/login", json={"username": "root", "password": "123456"})
    assert status == 200 and body["success"], body
    status, body = api(web, "GET", "/api/channel/")
    assert status == 403 and not body["success"] and "change the default password" in body["message"]
    status, body = api(web, "POST", "/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"})
    assert status == 403
    page = web.get(server.url + "/", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].endswith("/user/password")
    status, body = api(web, "GET", "/api/user/self")
    assert status == 200 and body["data"]["username"] == "root" and body["data"]["password"] == ""
    status, body = api(web, "PUT", "/api/user/self", json={"password": "123456"})
    assert not body["success"]  # the default password is not a new password
    status, body = api(web, "PUT", "/api/user/self", json={"password": TEST_PASSWORD})
    assert status == 200 and body["success"], body

    # Step 3: a management access token, made by POST (GET changes nothing).
    assert web.get(server.url + "/api/user/token").status_code == 405
    status, body = api(web, "POST", "/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"})
    assert status == 200 and body["success"] and len(body["data"]) == 32
    script = requests.Session()
    script.base = server.url
    script.headers["Authorization"] = body["data"]

    # Step 4: a channel and an API token, through the access token only.
    status, body = api(script, "POST", "/api/channel/", json={
        "name": "mock", "type": 1, "key": "sk-upstream-key-never-shown", "base_url": upstream.url,
        "models": "gpt-4o-mini", "group": "default", "priority": 0, "weight": 0})
    assert status == 200 and body["success"], body
    status, body = api(script, "GET", "/api/channel/")
    assert body["success"] and body["data"][0]["key"] == "" and "never-shown" not in str(body)
    status, body = api(script, "POST", "/api/token/", json={
        "name": "sdk", "remain_quota": 1_000_000, "unlimited_quota": False, "expired_time": -1, "models": "",
        "subnet": ""})
    assert body["success"], body
    key, token_id = body["data"]["key"], body["data"]["id"]
    assert key.startswith("sk-") and len(key) == 51
    status, body = api(script, "GET", f"/api/token/{token_id}")
    assert key[3:] not in str(body) and body["data"]["key"].startswith(key[3:7])

    # Step 5: the official SDK, streamed and not.
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from the mock upstream."
    assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 7
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                            stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock upstream."
    assert all(c.usage is None for c in chunks)  # usage was asked for on the client's behalf, then removed
    assert upstream.seen[-1].body["stream_options"] == {"include_usage": True}
    assert upstream.seen[-1].headers["Authorization"] == "Bearer sk-upstream-key-never-shown"

    # Exactly the cost of spec §4, twice: gpt-4o-mini ratio 0.075, completion ratio 4, group ratio 1.
    cost = -(-(11 + 7 * 4) * 75 // 1000)  # ceil((11 + 7 × 4) × 0.075) = 3
    status, token = api(script, "GET", f"/api/token/{token_id}")
    assert token["data"]["remain_quota"] == 1_000_000 - 2 * cost
    assert token["data"]["used_quota"] == 2 * cost
    status, me = api(script, "GET", "/api/user/self")
    assert me["data"]["used_quota"] == 2 * cost and me["data"]["request_count"] == 2
    assert me["data"]["quota"] == 500_000_000_000_000 - 2 * cost
