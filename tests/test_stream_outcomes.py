"""How a stream's end counts, for the channel and for the ledger.

The channel: a stream the upstream cuts, or lets go silent, is a breaker failure of that channel (never a
disable: nothing says the key is bad); a finished stream is a success; a client that goes away says nothing
about the channel. The ledger: a settlement the database refuses does not break the client's stream, which
still ends with [DONE]; it is retried, and when every retry fails the reservation stays for the
stale-reservation refund. Both through the real relay path, against the mock upstream.
"""

import json
import logging
import time

import httpx
import openai
import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from oneapi.bootstrap import STALE_RESERVATION_SECONDS
from oneapi.extensions import db
from oneapi.models.token import QuotaReservation
from oneapi.relay import billing
from oneapi.services import health, quota
from tests.conftest import add_channel, add_token
from tests.mock_upstream import Reply
from tests.test_fault_matrix import KEY_A, KEY_B, assert_ledger, channel_status, money, set_options

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
CUT_CODES = ("upstream_cut", "upstream_error")  # closed cleanly (close-delimited), or broken chunked framing
COST = 3  # gpt-4o-mini with the mock's usage (11 + 7): ceil((11 + 7 × 4) × 0.075)


def stream(client, key):
    """(status, data payloads: parsed objects or "[DONE]", request id) of one streamed chat completion."""
    response = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
    payloads = []
    for line in response.get_data(as_text=True).splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            payloads.append("[DONE]" if payload == "[DONE]" else json.loads(payload))
    return response.status_code, payloads, response.headers.get("X-Oneapi-Request-Id")


def text_of(payloads):
    return "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads
                   if isinstance(p, dict) and p.get("choices"))


def keys_seen(upstream, since=0):
    return [seen.headers.get("Authorization", "").removeprefix("Bearer ") for seen in upstream.seen[since:]]


def breaker(app, channel_id):
    return app.extensions.get("oneapi_breakers") and app.extensions["oneapi_breakers"].state.get(channel_id)


def blocked(app):
    with app.app_context():
        return health.blocked_channels()


@pytest.fixture
def two_channels(app, root, upstream):
    """Channel a (preferred, priority 10) and b; a limited token. Returns (a, b, key)."""
    set_options(root, AutomaticDisableChannelEnabled="true", RetryTimes="1")
    (a,) = add_channel(root, upstream.url, name="a", key=KEY_A, priority=10)
    (b,) = add_channel(root, upstream.url, name="b", key=KEY_B, priority=0)
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    return a, b, key


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- the channel: breaker outcomes ---------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False])
def test_cut_streams_open_the_breaker_and_routing_skips_the_channel(app, root, upstream, two_channels, chunked):
    a, b, key = two_channels
    app.config.update(BREAKER_FAILURES=3, BREAKER_COOLDOWN_SECONDS=60)
    upstream.by_key[KEY_A] = Reply(cut_after=2, chunked=chunked, content="alpha beta gamma delta epsilon")
    before = money(app)
    for number in range(3):
        status, payloads, _ = stream(root, key)
        assert status == 200 and text_of(payloads) == "alpha beta "
        assert "[DONE]" not in payloads and payloads[-1]["error"]["code"] in CUT_CODES
        assert keys_seen(upstream) == [KEY_A] * (number + 1)  # never retried once bytes were sent
    assert a in blocked(app) and b not in blocked(app)
    assert channel_status(app, a) == 1  # a breaker failure, not a disable (the option is on)

    status, payloads, _ = stream(root, key)  # routing skips a while its breaker is open
    assert status == 200 and payloads[-1] == "[DONE]" and text_of(payloads) == "Hello from the mock upstream."
    assert keys_seen(upstream)[-1] == KEY_B and len(upstream.seen) == 4

    after = money(app)  # each cut stream billed once, on a, for what it delivered; the finished one on b
    consumes = after["consumes"]
    assert [(c, o) for c, _, o in consumes] == [(a, "upstream_error")] * 3 + [(b, "done")]
    assert all(q > 0 for _, q, _ in consumes) and consumes[3][1] == COST
    total = sum(q for _, q, _ in consumes)
    (user_id,) = [u for u in after["users"] if after["users"][u] != before["users"][u]]
    assert after["users"][user_id][0] == before["users"][user_id][0] - total
    assert after["users"][user_id][1] - before["users"][user_id][1] == total
    assert after["channels"][a] == total - COST and after["channels"][b] == COST
    assert after["reservations"] == 0
    assert_ledger(app)


def test_an_upstream_silent_mid_stream_is_a_timeout_failure(app, root, upstream, two_channels):
    a, b, key = two_channels
    app.config.update(BREAKER_FAILURES=1, RELAY_IDLE_TIMEOUT=0.3)
    upstream.by_key[KEY_A] = Reply(pace=1.0, content="slow words")
    status, payloads, _ = stream(root, key)
    assert status == 200 and "[DONE]" not in payloads and payloads[-1]["error"]["code"] == "upstream_timeout"
    assert breaker(app, a)[0] == 1 and a in blocked(app)
    assert channel_status(app, a) == 1
    assert money(app)["consumes"] == [(a, money(app)["consumes"][0][1], "timeout")]
    assert_ledger(app)


def test_a_half_open_probe_whose_stream_is_cut_opens_the_breaker_again(app, root, upstream, two_channels):
    a, b, key = two_channels
    app.config.update(BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=30, BREAKER_MAX_COOLDOWN_SECONDS=300)
    breakers = app.extensions.setdefault("oneapi_breakers", health._Breakers())
    breakers.state[a] = (1, time.monotonic() - 0.1, 30)  # open, cool-down just over: the next request probes a
    upstream.by_key[KEY_A] = Reply(cut_after=1)
    status, payloads, _ = stream(root, key)
    assert keys_seen(upstream) == [KEY_A] and payloads[-1]["error"]["code"] in CUT_CODES
    failures, open_until, cooldown = breaker(app, a)
    assert failures == 2 and cooldown == 60 and open_until > time.monotonic() + 50  # twice as long
    assert a in blocked(app)


def test_a_finished_stream_closes_the_breaker(app, root, upstream, two_channels):
    a, b, key = two_channels
    app.config.update(BREAKER_FAILURES=3)
    with app.app_context():
        channel = type("C", (), {"id": a})
        health.failed(channel, health.SERVER_ERROR)
        health.failed(channel, health.SERVER_ERROR)
    assert breaker(app, a)[0] == 2
    status, payloads, _ = stream(root, key)
    assert payloads[-1] == "[DONE]" and keys_seen(upstream) == [KEY_A]
    assert breaker(app, a) is None


def test_a_client_that_goes_away_does_not_count_against_the_channel(app, root, upstream, two_channels):
    a, b, key = two_channels
    # one failure would open the breaker; the upstream, drained after the client left, cuts its stream
    app.config.update(BREAKER_FAILURES=1, STREAM_DRAIN_SECONDS=5)
    upstream.by_key[KEY_A] = Reply(pace=0.05, cut_after=4, content="one two three four five six seven")
    response = root.post("/v1/chat/completions", json=CHAT, buffered=False, headers={"Authorization": f"Bearer {key}"})
    assert b"data:" in next(iter(response.response))
    response.close()  # the client goes away after the first chunk
    wait_until(lambda: money(app)["consumes"])
    ((channel_id, charged, outcome),) = money(app)["consumes"]
    assert (channel_id, outcome) == (a, "client_gone") and charged > 0
    assert breaker(app, a) is None and a not in blocked(app)
    assert money(app)["reservations"] == 0
    assert_ledger(app)


# --- the ledger: a settlement the database refuses --------------------------------------------------


def refused_settle(times):
    """quota.settle that raises OperationalError the first `times` calls, then settles."""
    real, calls = quota.settle, []

    def settle(*args, **kwargs):
        calls.append(args[0].request_id)
        if len(calls) <= times:
            raise OperationalError("UPDATE users SET quota = ...", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    settle.calls = calls
    return settle


def test_a_refused_settlement_still_ends_the_stream_and_is_retried(app, root, upstream, two_channels, monkeypatch,
                                                                   caplog):
    a, b, key = two_channels
    monkeypatch.setattr(billing, "SETTLE_RETRY_PAUSES", (0.05, 0.05))
    settle = refused_settle(1)
    monkeypatch.setattr(quota, "settle", settle)
    before = money(app)
    with caplog.at_level(logging.WARNING, logger="oneapi.relay"):
        status, payloads, request_id = stream(root, key)
        assert status == 200 and payloads[-1] == "[DONE]"  # well-formed to the end
        assert text_of(payloads) == "Hello from the mock upstream."
        assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
        wait_until(lambda: money(app)["reservations"] == 0)
    assert settle.calls == [request_id, request_id]
    assert any(request_id in record.getMessage() and "OperationalError" in record.getMessage()
               for record in caplog.records)
    after = money(app)
    assert after["consumes"] == [(a, COST, "done")]  # billed once, at the real price
    (user_id,) = [u for u in after["users"] if after["users"][u] != before["users"][u]]
    assert after["users"][user_id][0] == before["users"][user_id][0] - COST
    assert after["users"][user_id][1:] == (before["users"][user_id][1] + COST, before["users"][user_id][2] + 1)
    assert_ledger(app)
    assert breaker(app, a) is None  # the stream itself finished: a success for the channel


def test_a_refused_settlement_of_a_plain_answer_still_answers_and_is_retried(app, root, upstream, two_channels,
                                                                              monkeypatch):
    """Not streamed: the upstream answered, so the client gets the answer (not a 500) and the settlement is
    retried in the background, billing once."""
    a, b, key = two_channels
    monkeypatch.setattr(billing, "SETTLE_RETRY_PAUSES", (0.05, 0.05))
    settle = refused_settle(1)
    monkeypatch.setattr(quota, "settle", settle)
    reply = root.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200 and reply.json["choices"][0]["message"]["content"]
    wait_until(lambda: money(app)["reservations"] == 0)
    assert len(settle.calls) == 2 and settle.calls[0] == settle.calls[1]
    assert [row[0] for row in money(app)["consumes"]] == [a]  # billed once
    assert_ledger(app)


def test_the_openai_sdk_reads_the_whole_stream_when_settlement_fails(app, root, upstream, two_channels, monkeypatch):
    a, b, key = two_channels
    monkeypatch.setattr(billing, "SETTLE_RETRY_PAUSES", (0.05,))
    monkeypatch.setattr(quota, "settle", refused_settle(1))
    sdk = openai.OpenAI(api_key=key, base_url="http://gateway.test/v1", max_retries=0,
                        http_client=httpx.Client(transport=httpx.WSGITransport(app=app)))
    chunks = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock upstream."
    assert chunks[-1].choices[0].finish_reason == "stop"
    wait_until(lambda: money(app)["reservations"] == 0)
    assert money(app)["consumes"] == [(a, COST, "done")]
    assert_ledger(app)


def test_a_settlement_that_keeps_failing_leaves_the_reservation_to_the_stale_refund(
        app, root, upstream, two_channels, monkeypatch, caplog):
    a, b, key = two_channels
    monkeypatch.setattr(billing, "SETTLE_RETRY_PAUSES", (0.05, 0.05))
    settle = refused_settle(10**6)
    monkeypatch.setattr(quota, "settle", settle)
    before = money(app)
    with caplog.at_level(logging.WARNING, logger="oneapi.relay"):
        status, payloads, request_id = stream(root, key)
        assert status == 200 and payloads[-1] == "[DONE]"
        assert text_of(payloads) == "Hello from the mock upstream."
        wait_until(lambda: any(r.levelno == logging.ERROR and request_id in r.getMessage() for r in caplog.records))
    assert len(settle.calls) == 3  # the first attempt and two retries
    held = money(app)
    assert held["reservations"] == 1 and held["consumes"] == []  # still reserved: nothing lost, nothing billed
    (user_id,) = [u for u in held["users"] if held["users"][u] != before["users"][u]]
    assert held["users"][user_id][0] < before["users"][user_id][0]

    monkeypatch.undo()  # the database is back; the next start refunds reservations older than 6 hours
    with app.app_context():
        assert quota.refund_stale(STALE_RESERVATION_SECONDS) == 0  # too recent
        db.session.execute(update(QuotaReservation).values(created_at=QuotaReservation.created_at - 7 * 3600))
        db.session.commit()
        assert quota.refund_stale(STALE_RESERVATION_SECONDS) == 1
    after = money(app)
    assert after == before  # refunded whole: the request goes unbilled, and the ledger is consistent
    assert_ledger(app)
