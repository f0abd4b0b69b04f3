"""Channel health: failures classified from status and structured codes; only key and credit failures
disable a channel; 429/5xx open a circuit breaker; disabled-by-the-system channels are re-tested."""

import time

import pytest
from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Channel
from oneapi.services import health, scheduler
from tests.conftest import add_channel, add_token
from tests.mock_upstream import Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize("status, error_type, code, expected", [
    (401, "invalid_request_error", "invalid_api_key", health.INVALID_KEY),
    (403, "", "account_deactivated", health.INVALID_KEY),
    (429, "insufficient_quota", "insufficient_quota", health.NO_CREDIT),
    (402, "", "", health.NO_CREDIT),
    (429, "requests", "rate_limit_exceeded", health.RATE_LIMITED),
    (503, "", "", health.OVERLOADED),
    (529, "overloaded_error", "", health.OVERLOADED),
    (500, "server_error", "", health.SERVER_ERROR),
    (504, "", "", health.TIMEOUT),
    (404, "invalid_request_error", "model_not_found", health.MODEL_NOT_FOUND),
    (400, "invalid_request_error", "context_length_exceeded", health.CALLER),
    (400, "invalid_request_error", "content_filter", health.CALLER),
    # the caller's own quota message mentions "credit" and "balance": words decide nothing
    (403, "one_api_error", "insufficient_user_quota", health.CALLER),
])
def test_classification(status, error_type, code, expected):
    assert health.classify(status, error_type, code) == expected


def channel_row(app, channel_id):
    with app.app_context():
        return db.session.get(Channel, channel_id)


def relay(client, key):
    return client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("option", ["true", "false"])
def test_a_refused_key_disables_the_channel_only_when_allowed(app, root, upstream, option):
    assert root.put("/api/option/", json={"key": "AutomaticDisableChannelEnabled", "value": option}).json["success"]
    (channel_id,) = add_channel(root, upstream.url)
    key = add_token(root)["key"]
    upstream.queue(Reply(status=401, error={"error": {"message": "Incorrect API key provided: sk-up***",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}}))
    assert relay(root, key).status_code == 502
    row = channel_row(app, channel_id)
    if option == "true":
        assert row.status == 3 and "refused the key" in row.status_reason and row.status_time > 0
        listed = root.get(f"/api/channel/{channel_id}").json["data"]
        assert listed["status"] == 3 and "refused the key" in listed["status_reason"]
        assert relay(root, key).status_code == 503  # no channel left
    else:
        assert row.status == 1 and row.status_reason == ""


def test_credit_exhausted_disables_but_caller_errors_never_do(app, root, upstream):
    root.put("/api/option/", json={"key": "AutomaticDisableChannelEnabled", "value": "true"})
    (channel_id,) = add_channel(root, upstream.url)
    key = add_token(root)["key"]
    for status, error in ((400, {"error": {"message": "This model's maximum context length is 8192 tokens",
                                           "type": "invalid_request_error", "code": "context_length_exceeded"}}),
                          (400, {"error": {"message": "Your credit balance is too low? no: content filter",
                                           "type": "invalid_request_error", "code": "content_filter"}})):
        upstream.queue(Reply(status=status, error=error))
        assert relay(root, key).status_code == status
        assert channel_row(app, channel_id).status == 1
    upstream.queue(Reply(status=429, error={"error": {"message": "You exceeded your current quota",
                                                      "type": "insufficient_quota", "code": "insufficient_quota"}}))
    assert relay(root, key).status_code == 429
    row = channel_row(app, channel_id)
    assert row.status == 3 and "out of credit" in row.status_reason


def test_breaker_skips_a_failing_channel_then_probes_it(app, root, upstream):
    app.config.update(BREAKER_FAILURES=2, BREAKER_COOLDOWN_SECONDS=30)
    root.put("/api/option/", json={"key": "RetryTimes", "value": "1"})
    add_channel(root, upstream.url, name="a", key="key-a", weight=1)
    add_channel(root, upstream.url, name="b", key="key-b", weight=1)
    key = add_token(root)["key"]
    upstream.by_key["key-a"] = Reply(status=500)

    def keys_tried(before):
        return [seen.headers["Authorization"].removeprefix("Bearer ") for seen in upstream.seen[before:]]

    tried_a = 0
    for _ in range(40):  # until a has failed twice (each failure is retried on b, so clients see 200)
        before = len(upstream.seen)
        assert relay(root, key).status_code == 200
        tried_a += keys_tried(before).count("key-a")
        if tried_a >= 2:
            break
    assert tried_a == 2
    for _ in range(10):  # open: routing skips a
        before = len(upstream.seen)
        assert relay(root, key).status_code == 200
        assert keys_tried(before) == ["key-b"]
    upstream.by_key.clear()  # a recovers
    breakers = app.extensions["oneapi_breakers"]
    for channel_id, (failures, _, cooldown) in list(breakers.state.items()):  # the cool-down runs out
        breakers.state[channel_id] = (failures, time.monotonic() - 0.1, cooldown)
    used = []
    for _ in range(30):
        before = len(upstream.seen)
        assert relay(root, key).status_code == 200
        used += keys_tried(before)
    assert "key-a" in used and "key-b" in used


def test_scheduled_retest_reenables_only_what_the_system_disabled(app, root, upstream):
    root.put("/api/option/", json={"key": "AutomaticEnableChannelEnabled", "value": "true"})
    (auto,) = add_channel(root, upstream.url, name="auto")
    (manual,) = add_channel(root, upstream.url, name="manual")
    root.put("/api/channel/", json={"id": manual, "status": 2})
    with app.app_context():
        health.set_status(auto, 3, "disabled automatically: test")
        assert scheduler.retest_disabled() == 1
        statuses = dict(db.session.execute(select(Channel.id, Channel.status)).all())
        reason = db.session.get(Channel, auto).status_reason
    assert statuses == {auto: 1, manual: 2}
    assert reason.startswith("re-enabled automatically")
    assert root.get(f"/api/channel/{manual}").json["data"]["status_reason"] == "disabled by root"


def test_lease_lets_one_worker_run_each_round(app):
    with app.app_context():
        assert scheduler.claim(60) is True
        assert scheduler.claim(60) is False


def test_the_console_shows_why_a_channel_was_disabled(app, root, upstream):
    (channel_id,) = add_channel(root, upstream.url, name="flaky")
    with app.app_context():
        health.set_status(channel_id, 3, "disabled automatically: the upstream refused the key (status 401)")
    page = root.get("/channel").data.decode()
    assert "the upstream refused the key (status 401)" in page


def test_test_all_disables_a_channel_slower_than_the_threshold(app, root, upstream):
    root.put("/api/option/", json={"key": "AutomaticDisableChannelEnabled", "value": "true"})
    root.put("/api/option/", json={"key": "ChannelDisableThreshold", "value": "0.3"})
    (slow,) = add_channel(root, upstream.url, name="slow", key="key-slow")
    (fast,) = add_channel(root, upstream.url, name="fast", key="key-fast")
    upstream.by_key["key-slow"] = Reply(delay_first=0.6)
    assert root.get("/api/channel/test").json["success"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and channel_row(app, slow).status == 1:
        time.sleep(0.1)
    from oneapi.channels import routes as channel_routes

    while time.monotonic() < deadline and channel_routes._test_all_lock.locked():  # let the run finish
        time.sleep(0.1)
    row = channel_row(app, slow)
    assert row.status == 3 and "ChannelDisableThreshold" in row.status_reason
    assert channel_row(app, fast).status == 1
    with app.app_context():  # nothing happens with the option off, or with no threshold
        root.put("/api/option/", json={"key": "ChannelDisableThreshold", "value": "0"})
        assert health.too_slow(fast, 99) is False
