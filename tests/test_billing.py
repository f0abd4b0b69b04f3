"""Billing under the conditions where the peers lose money: disconnects, cut streams, retries, races."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from oneapi.extensions import db
from oneapi.models import Log, Token, User
from oneapi.models.log import LogType
from oneapi.services import tokenizer
from tests.conftest import TEST_PASSWORD, add_channel, add_token
from tests.mock_upstream import Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
COST = 3  # gpt-4o-mini, usage 11 + 7: ceil((11 + 7 × 4) × 0.075)


def consume_rows(app):
    with app.app_context():
        return db.session.scalars(select(Log).where(Log.type == LogType.CONSUME).order_by(Log.id)).all()


def assert_ledger(app):
    """used_quota of every user and token equals the sum of its consume rows; no balance is negative."""
    with app.app_context():
        db.session.expire_all()
        for user in db.session.scalars(select(User)):
            logged = db.session.scalar(select(func.coalesce(func.sum(Log.quota), 0))
                                       .where(Log.user_id == user.id, Log.type == LogType.CONSUME))
            assert user.used_quota == logged and user.quota >= 0
        for token in db.session.scalars(select(Token)):
            logged = db.session.scalar(select(func.coalesce(func.sum(Log.quota), 0))
                                       .where(Log.token_id == token.id, Log.type == LogType.CONSUME))
            assert token.used_quota == logged and token.remain_quota >= 0


def test_client_disconnect_bills_the_upstream_usage(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root)["key"]
    upstream.queue(Reply(pace=0.05, content="one two three four five six seven eight"))
    response = root.post("/v1/chat/completions", json={**CHAT, "stream": True}, buffered=False,
                         headers={"Authorization": f"Bearer {key}"})
    stream = iter(response.response)
    first = next(stream)
    assert b"data:" in first
    response.close()  # the client goes away after the first chunk
    deadline = time.monotonic() + 10
    while not consume_rows(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = consume_rows(app)
    assert len(rows) == 1
    row = rows[0]
    assert row.outcome == "client_gone" and not row.usage_estimated
    assert (row.prompt_tokens, row.completion_tokens, row.quota) == (11, 7, COST)
    assert_ledger(app)


def test_upstream_cut_bills_what_was_delivered(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root)["key"]
    upstream.queue(Reply(cut_after=3, content="alpha beta gamma delta epsilon"))
    response = root.post("/v1/chat/completions", json={**CHAT, "stream": True},
                         headers={"Authorization": f"Bearer {key}"})
    body = response.data.decode()
    assert "data: [DONE]" not in body and '"error"' in body
    (row,) = consume_rows(app)
    assert row.outcome == "upstream_error" and row.usage_estimated
    # "alpha ", "beta ", "gamma " reached the client; they are what gets counted
    assert row.completion_tokens == tokenizer.count_text("alpha beta gamma ", "gpt-4o-mini")
    assert row.quota > 0
    assert_ledger(app)


def test_retry_after_500_is_billed_once(app, root, upstream):
    assert root.put("/api/option/", json={"key": "RetryTimes", "value": "2"}).json["success"]
    add_channel(root, upstream.url, name="a")
    add_channel(root, upstream.url, name="b")
    key = add_token(root, unlimited_quota=False, remain_quota=1000)["key"]
    upstream.queue(Reply(status=500))
    response = root.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert len(upstream.seen) == 2
    (row,) = consume_rows(app)
    assert row.quota == COST
    with app.app_context():
        token = db.session.scalar(select(Token).where(Token.name == "t"))
        assert (token.remain_quota, token.used_quota) == (1000 - COST, COST)
    assert_ledger(app)


def test_failure_refunds_the_reservation(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root, unlimited_quota=False, remain_quota=1000)["key"]
    with app.app_context():
        before = db.session.scalar(select(User.quota).where(User.username == "root"))
    upstream.queue(Reply(status=400, error={"error": {"message": "bad request", "type": "invalid_request_error"}}))
    response = root.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(User.quota).where(User.username == "root")) == before
        assert db.session.scalar(select(Token.remain_quota).where(Token.name == "t")) == 1000
    assert consume_rows(app) == []


def test_concurrent_requests_never_overdraw(live_server_factory, upstream):
    """200 concurrent requests against a token sized for 50: none drives a balance negative, the ledger holds."""
    server = live_server_factory("gunicorn")
    web = requests.Session()
    web.post(server.url + "/api/user/login", json={"username": "root", "password": "123456"})
    web.put(server.url + "/api/user/self", json={"password": TEST_PASSWORD})
    web.post(server.url + "/api/channel/", json={"name": "mock", "type": 1, "key": "k", "base_url": upstream.url,
                                                 "models": "gpt-4o-mini"})
    body = {**CHAT, "max_tokens": 7}  # reservation = ceil((prompt + 7 × 4) × 0.075) = the real cost
    token = web.post(server.url + "/api/token/", json={"name": "race", "remain_quota": 50 * COST}).json()["data"]

    def call(_):
        return requests.post(server.url + "/v1/chat/completions", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {token['key']}"}).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(call, range(200)))
    succeeded = statuses.count(200)
    assert set(statuses) <= {200, 401, 403}, statuses
    assert 0 < succeeded <= 50
    after = web.get(server.url + f"/api/token/{token['id']}").json()["data"]
    assert after["remain_quota"] >= 0
    assert after["remain_quota"] + after["used_quota"] == 50 * COST
    assert after["used_quota"] == succeeded * COST
    server_app = server.app()
    assert_ledger(server_app)
    assert len([r for r in consume_rows(server_app) if r.token_id == token["id"]]) == succeeded


def wav(seconds):
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * seconds)
    return buffer.getvalue()


def test_transcriptions_are_billed_by_duration_with_the_model_ratio(app, root, upstream):
    import io

    add_channel(root, upstream.url, models="whisper-1")
    key = add_token(root)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    cases = [(wav(3), "json", 150),  # 3 s × 10/3 × ratio 15 = 150 quota = $0.0003 ($0.006 a minute)
             (wav(3), "verbose_json", 100),  # the upstream's own duration wins: 2.0 s in the mock's answer
             (b"not audio at all", "text", None)]  # unknown duration: the transcript's tokens at ratio 15
    for audio, response_format, expected in cases:
        reply = root.post("/v1/audio/transcriptions", headers=headers, content_type="multipart/form-data",
                          data={"model": "whisper-1", "response_format": response_format,
                                "file": (io.BytesIO(audio), "a.wav")})
        assert reply.status_code == 200, reply.data
        row = consume_rows(app)[-1]
        if expected is None:
            assert row.usage_estimated and row.quota == tokenizer.count_text("Hello from the mock upstream.",
                                                                             "whisper-1") * 15
        else:
            assert row.quota == expected and not row.usage_estimated and "second of audio" in row.content
    assert_ledger(app)
