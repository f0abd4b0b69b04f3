"""The fault matrix (issue: channel health): for every way an upstream can fail, what the client gets, what
happens to the channel, whether a retry moves to another channel, and that money and logs stay exact.

Each fault is played by the project's mock upstream (or, for bodies it cannot send, a scripted local server)
on 127.0.0.1. At the end, an independent mock from PyPI (llmock) sends provider-shaped errors end to end.

| fault                      | client (one channel)    | disables (option on) | next request (breaker)  |
|----------------------------|-------------------------|----------------------|-------------------------|
| 401 invalid_api_key        | 502, upstream_error     | yes                  | channel gone            |
| 429 insufficient_quota     | 429                     | yes                  | channel gone            |
| 404 model_not_found        | 404                     | no                   | tried again             |
| 429 rate_limit_exceeded    | 429                     | no                   | skipped (breaker open)  |
| 503 overloaded             | 503                     | no                   | skipped                 |
| 500 server error           | 500                     | no                   | skipped                 |
| slow first byte            | 504 upstream_timeout    | no                   | skipped                 |
| connection refused         | 502                     | no                   | skipped                 |
| 500 with a non-JSON body   | 500                     | no                   | skipped                 |
| 200 with a non-JSON body   | 502                     | no                   | skipped                 |
Every failure before the first byte refunds the reservation and writes no consume row; with RetryTimes 1
the request moves to the next channel and is billed once, there. A stream cut after its first bytes is
never retried: the client gets an error event and no [DONE], and what was delivered is billed once.
"""

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest
import requests
from sqlalchemy import func, select

from oneapi.extensions import db
from oneapi.models import Channel, Log, Token, User
from oneapi.models.log import LogType
from oneapi.models.token import QuotaReservation
from oneapi.services import notify, scheduler
from tests.conftest import add_channel, add_token, free_port
from tests.mock_upstream import Reply
from tests.test_egress import LocalServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
KEY_A = "sk-fault-a-0123456789abcdef0123456789abcdef"  # the faulty channel's key: must never reach a client
KEY_B = "sk-fault-b-healthy-key-0123456789abcdef"


@dataclass
class Fault:
    client_status: int
    disables: bool = False
    breaks: bool = True  # opens the circuit breaker
    reply: Reply | None = None  # played by the mock upstream for KEY_A
    scripted: tuple | None = None  # (status, headers, body) from a local server instead
    refused: bool = False  # the channel points at a closed port
    config: dict = field(default_factory=dict)
    code: str = ""  # the error code the client sees, when it is ours


def _error(status, message, error_type, code):
    return Reply(status=status, error={"error": {"message": message, "type": error_type, "param": None, "code": code}})


FAULTS = {
    "invalid_key": Fault(502, disables=True, breaks=False, reply=_error(
        401, f"Incorrect API key provided: {KEY_A}. See https://upstream.example/keys", "invalid_request_error",
        "invalid_api_key")),
    "no_credit": Fault(429, disables=True, breaks=False, reply=_error(
        429, "You exceeded your current quota, please check your plan and billing details.", "insufficient_quota",
        "insufficient_quota")),
    "model_not_found": Fault(404, breaks=False, reply=_error(
        404, "The model `gpt-4o-mini` does not exist or you do not have access to it.", "invalid_request_error",
        "model_not_found")),
    "rate_limited": Fault(429, reply=_error(
        429, "Rate limit reached for gpt-4o-mini on requests per min. Your credit balance is fine.", "requests",
        "rate_limit_exceeded")),
    "overloaded": Fault(503, reply=_error(503, "The engine is currently overloaded, please try again later",
                                          "server_error", None)),
    "server_error": Fault(500, reply=_error(500, "The server had an error while processing your request.",
                                            "server_error", None)),
    "slow_first_byte": Fault(504, reply=Reply(delay_first=1.5), config={"RELAY_IDLE_TIMEOUT": 0.4},
                             code="upstream_timeout"),
    "refused_connection": Fault(502, refused=True, code="upstream_unreachable"),
    "garbage_500": Fault(500, scripted=(500, {"Content-Type": "text/html"},
                                        f"<html><body>upstream proxy error for {KEY_A}</body></html>".encode())),
    "garbage_200": Fault(502, scripted=(200, {"Content-Type": "application/json"}, b"<html>not json at all")),
}
def fault_params():
    return list(FAULTS)


@pytest.fixture
def scripted():
    servers = []

    def start(answer):
        server = LocalServer()
        server.answer = answer
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def faulty_channel(root, app, upstream, scripted, fault, **fields):
    """Channel a with `fault`; returns (channel id, its base URL, a function counting the requests it got)."""
    app.config.update(fault.config)
    if fault.refused:
        url, count = closed_port_url(), None
    elif fault.scripted is not None:
        server = scripted(fault.scripted)
        url, count = server.url, lambda: len(server.requests)
    else:
        url = upstream.url
        upstream.by_key[KEY_A] = fault.reply
        count = lambda: sum(s.headers.get("Authorization") == f"Bearer {KEY_A}" for s in upstream.seen)  # noqa: E731
    (channel_id,) = add_channel(root, url, name="a", key=KEY_A, **fields)
    return channel_id, url, count


def set_options(admin, **values):
    for key, value in values.items():
        assert admin.put("/api/option/", json={"key": key, "value": value}).json["success"]


def relay(client, key, **body):
    return client.post("/v1/chat/completions", json={**CHAT, **body}, headers={"Authorization": f"Bearer {key}"})


def money(app):
    """Every balance and counter a request can move, and the rows that record it."""
    with app.app_context():
        db.session.expire_all()
        users = {u.id: (u.quota, u.used_quota, u.request_count) for u in db.session.scalars(select(User))}
        tokens = {t.id: (t.remain_quota, t.used_quota) for t in db.session.scalars(select(Token))}
        channels = {c.id: c.used_quota for c in db.session.scalars(select(Channel))}
        consumes = db.session.scalars(select(Log).where(Log.type == LogType.CONSUME).order_by(Log.id)).all()
        reservations = db.session.scalar(select(func.count()).select_from(QuotaReservation))
        return {"users": users, "tokens": tokens, "channels": channels, "reservations": reservations,
                "consumes": [(row.channel_id, row.quota, row.outcome) for row in consumes]}


def assert_ledger(app):
    """used_quota of every user, token and channel equals the sum of its consume rows."""
    with app.app_context():
        db.session.expire_all()
        for model, column in ((User, Log.user_id), (Token, Log.token_id), (Channel, Log.channel_id)):
            for row in db.session.scalars(select(model)):
                logged = db.session.scalar(select(func.coalesce(func.sum(Log.quota), 0))
                                           .where(column == row.id, Log.type == LogType.CONSUME))
                assert row.used_quota == logged, (model.__name__, row.id)


def channel_status(app, channel_id):
    with app.app_context():
        return db.session.get(Channel, channel_id).status


def assert_openai_error(response, fault, secrets):
    assert response.status_code == fault.client_status, response.data
    body = response.get_json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if fault.code:
        assert body["error"]["code"] == fault.code
    text = response.get_data(as_text=True)
    for secret in secrets:
        assert secret not in text
    assert "sk-fault" not in text and "upstream.example" not in text


@pytest.mark.parametrize("auto_disable", ["true", "false"])
@pytest.mark.parametrize("name", fault_params())
def test_one_channel(app, root, upstream, scripted, name, auto_disable):
    fault = FAULTS[name]
    set_options(root, AutomaticDisableChannelEnabled=auto_disable, RetryTimes="0")
    channel_id, url, _ = faulty_channel(root, app, upstream, scripted, fault)
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    before = money(app)
    response = relay(root, key)
    assert_openai_error(response, fault, (KEY_A, url))
    disabled = fault.disables and auto_disable == "true"
    assert channel_status(app, channel_id) == (3 if disabled else 1)
    if disabled:
        with app.app_context():
            assert db.session.get(Channel, channel_id).status_reason.startswith("disabled automatically")
    after = money(app)
    assert after == before  # refunded in full: balances, counters, no consume row, no reservation left
    assert after["reservations"] == 0 and after["consumes"] == []


@pytest.mark.parametrize("name", fault_params())
def test_retry_moves_to_the_next_channel_and_bills_once(app, root, upstream, scripted, name):
    fault = FAULTS[name]
    app.config.update(BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=60)
    set_options(root, AutomaticDisableChannelEnabled="true", RetryTimes="1")
    a, url, requests_to_a = faulty_channel(root, app, upstream, scripted, fault, priority=10)
    (b,) = add_channel(root, upstream.url, name="b", key=KEY_B, priority=0)
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]

    def keys_seen(since):
        return [seen.headers.get("Authorization", "").removeprefix("Bearer ") for seen in upstream.seen[since:]]

    before = money(app)
    answer = relay(root, key)
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    assert keys_seen(0) == ([KEY_A] if fault.reply is not None else []) + [KEY_B]
    assert channel_status(app, a) == (3 if fault.disables else 1) and channel_status(app, b) == 1
    after = money(app)
    assert after["consumes"] == [(b, after["consumes"][0][1], "done")] and after["consumes"][0][1] > 0
    charged = after["consumes"][0][1]
    (user_id,) = [u for u in after["users"] if after["users"][u] != before["users"][u]]
    assert after["users"][user_id][1] - before["users"][user_id][1] == charged
    assert after["channels"][b] == charged and after["channels"][a] == 0 and after["reservations"] == 0
    assert_ledger(app)

    # The next request: a disabled channel is gone, an open breaker skips the channel, anything else is
    # tried again.
    if requests_to_a is not None:
        assert requests_to_a() == 1
    assert relay(root, key).status_code == 200
    if requests_to_a is not None:
        assert requests_to_a() == (1 if fault.disables or fault.breaks else 2)


@pytest.mark.parametrize("chunked", [True, False])
def test_a_cut_stream_is_not_retried_and_bills_what_was_delivered(app, root, upstream, chunked):
    set_options(root, AutomaticDisableChannelEnabled="true", RetryTimes="1")
    (a,) = add_channel(root, upstream.url, name="a", key=KEY_A, priority=10)
    (b,) = add_channel(root, upstream.url, name="b", key=KEY_B, priority=0)
    upstream.by_key[KEY_A] = Reply(cut_after=2, chunked=chunked, content="alpha beta gamma delta epsilon")
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    before = money(app)
    response = relay(root, key, stream=True)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "alpha" in body and "data: [DONE]" not in body
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert "error" in events[-1] and set(events[-1]["error"]) >= {"message", "type"}
    assert KEY_A not in body and upstream.url not in body
    assert [s.headers["Authorization"] for s in upstream.seen] == [f"Bearer {KEY_A}"]  # never retried
    assert channel_status(app, a) == 1 and channel_status(app, b) == 1
    after = money(app)
    ((channel_id, charged, outcome),) = after["consumes"]
    assert (channel_id, outcome) == (a, "upstream_error") and charged > 0
    (user_id,) = [u for u in after["users"] if after["users"][u] != before["users"][u]]
    assert after["users"][user_id][1] - before["users"][user_id][1] == charged
    assert after["reservations"] == 0
    assert_ledger(app)


def test_a_caller_error_is_not_retried_and_disables_nothing(app, root, upstream):
    set_options(root, AutomaticDisableChannelEnabled="true", RetryTimes="1")
    (a,) = add_channel(root, upstream.url, name="a", key=KEY_A, priority=10)
    (b,) = add_channel(root, upstream.url, name="b", key=KEY_B, priority=0)
    upstream.by_key[KEY_A] = _error(400, "This model's maximum context length is 128000 tokens.",
                                    "invalid_request_error", "context_length_exceeded")
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    before = money(app)
    response = relay(root, key)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "context_length_exceeded"
    assert len(upstream.seen) == 1  # another channel would refuse it too
    assert channel_status(app, a) == channel_status(app, b) == 1
    assert money(app) == before


# ------------------------------------------------------------------------------ an independent mock: llmock


@pytest.fixture(scope="module")
def llmock_url():
    """llmock 0.2.2 (PyPI), run with its own CLI on a loopback port."""
    executable = os.path.join(os.path.dirname(sys.executable), "llmock")
    if not os.path.exists(executable):
        pytest.skip("llmock is not installed (pip install -r requirements-dev.txt)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOCK_")}
    process = subprocess.Popen([executable, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level",
                                "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "/_llmock/scenario", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("llmock did not start")
        time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def llmock_fail(url, status, code=None, message=None):
    behavior = {"type": "fail", "status": status}
    if code:
        behavior["code"] = code
    if message:
        behavior["message"] = message
    reply = requests.post(url + "/_llmock/scenario", json={"behaviors": [behavior]}, timeout=5)
    assert reply.status_code == 201, reply.text


def test_provider_shaped_errors_from_llmock_end_to_end(app, root, llmock_url, scripted):
    requests.post(llmock_url + "/_llmock/reset", timeout=5)
    alerts = scripted((200, {}, b"ok"))
    set_options(root, AutomaticDisableChannelEnabled="true", AutomaticEnableChannelEnabled="true", RetryTimes="0",
                ChannelNotifyWebhook=alerts.url + "/alerts")
    # this test is about disabling: keep the breaker out of the way; every change is alerted (no window)
    app.config.update(BREAKER_FAILURES=100, EGRESS_ALLOW_PRIVATE=True, NOTIFY_WINDOW_SECONDS=0)
    (channel_id,) = add_channel(root, llmock_url, name="llmock", key="sk-llmock-channel-key-0123456789")
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    start = money(app)

    def reason():
        with app.app_context():
            return db.session.get(Channel, channel_id).status_reason

    def reenable():
        with app.app_context():
            scheduler.retest_disabled()
        assert channel_status(app, channel_id) == 1 and reason().startswith("re-enabled automatically")

    # a healthy answer first: billed once
    assert relay(root, key).status_code == 200
    billed = money(app)
    assert len(billed["consumes"]) == 1 and billed["reservations"] == 0

    # 429 with OpenAI's insufficient_quota body: the account is out of credit → disabled
    llmock_fail(llmock_url, 429, code="insufficient_quota", message="You exceeded your current quota")
    response = relay(root, key)
    assert response.status_code == 429 and response.get_json()["error"]["code"] == "insufficient_quota"
    assert channel_status(app, channel_id) == 3 and "out of credit" in reason()
    reenable()  # llmock answers the scheduled test: re-enabled

    # 401 (authentication_error / invalid_api_key) → disabled, and not the client's 401
    llmock_fail(llmock_url, 401)
    response = relay(root, key)
    assert response.status_code == 502 and "sk-llmock" not in response.get_data(as_text=True)
    assert channel_status(app, channel_id) == 3 and "refused the key" in reason()
    reenable()

    # a plain 429 rate limit, a 503 and a 500: never disabled
    for status, expected in ((429, 429), (503, 503), (500, 500)):
        llmock_fail(llmock_url, status)
        assert relay(root, key).status_code == expected
        assert channel_status(app, channel_id) == 1

    end = money(app)
    assert end["consumes"] == billed["consumes"] and end["reservations"] == 0  # failures billed nothing
    assert end["users"] == billed["users"] and end["tokens"] == billed["tokens"]
    assert start["consumes"] == []
    assert_ledger(app)
    notify.wait(app)
    sent = [json.loads(request["body"]) for request in alerts.requests]
    # each change is sent by its own background thread: compare without relying on arrival order
    assert sorted((alert["channel_id"], alert["status"]) for alert in sent) == [(channel_id, 1)] * 2 + [(channel_id, 3)] * 2
    reasons = " ".join(alert["reason"] for alert in sent)
    assert "out of credit" in reasons and "refused the key" in reasons and reasons.count("re-enabled") == 2
