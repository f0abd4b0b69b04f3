"""The /v1 relay through Flask's test client against the real mock upstream: pass-through, streaming, model
mapping, system prompts, errors in OpenAI's shape, retries, scrubbing, request ids, pinning, /v1/models,
and billing to the exact quota unit."""

import json
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from oneapi.bootstrap import ROOT_QUOTA
from oneapi.extensions import db
from oneapi.models import Channel, Log, QuotaReservation, Token, User
from oneapi.models.user import ROLE_COMMON
from oneapi.services import ratios, tokenizer
from tests.conftest import add_channel, add_token
from tests.mock_upstream import Reply

CHANNEL_KEY = "sk-upstream-secret-key-123456"
COST = 3  # ceil((11 + 7 × 4) × 0.075) for gpt-4o-mini with the mock's usage
TOKEN_QUOTA = 1_000_000
MESSAGES = [{"role": "user", "content": "Hi"}]
USER_PASSWORD = "user-pass-123"


# --- helpers ------------------------------------------------------------------------------------


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def chat(client, key, *, stream=False, model="gpt-4o-mini", **extra):
    body = {"model": model, "messages": MESSAGES, **extra}
    if stream:
        body["stream"] = True
    return client.post("/v1/chat/completions", json=body, headers=auth(key))


def sse_events(response):
    """The data payloads of an SSE body: parsed JSON objects, or the string "[DONE]"."""
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        lines = [line for line in block.strip().splitlines() if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        payload = lines[0][len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def stream_text(events):
    return "".join(choice.get("delta", {}).get("content") or ""
                   for event in events if isinstance(event, dict) for choice in event.get("choices") or ())


def assert_openai_error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.json
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error


def read(app, model, ident):
    with app.app_context():
        table = model.__table__
        row = db.session.execute(table.select().where(table.c.id == ident)).mappings().first()
        return dict(row) if row else None


def consume_logs(app):
    with app.app_context():
        return [dict(row) for row in db.session.execute(
            Log.__table__.select().where(Log.type == 2).order_by(Log.id)).mappings()]


def reservations_left(app):
    with app.app_context():
        return len(db.session.scalars(select(QuotaReservation.request_id)).all())


def root_user(app):
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == "root"))
    return read(app, User, user_id)


def set_option(root, key, value):
    reply = root.put("/api/option/", json={"key": key, "value": value})
    assert reply.json["success"] is True, reply.json


def channel_id_of(upstream_seen, channels):
    """Which of `channels` (id → key) a request seen by the mock upstream was sent with."""
    key = upstream_seen.headers["Authorization"].removeprefix("Bearer ")
    return next(cid for cid, ckey in channels.items() if ckey == key)


def make_common_user(app, username, quota=10**9):
    with app.app_context():
        user = User(username=username, display_name=username, role=ROLE_COMMON, quota=quota)
        user.set_password(USER_PASSWORD)
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    assert client.post("/api/user/login", json={"username": username, "password": USER_PASSWORD}).json["success"]
    return client


def local_cost(app, prompt, completion, model="gpt-4o-mini"):
    with app.app_context():
        return ratios.charge(prompt, completion, ratios.model_ratio(model), ratios.group_ratio("default"),
                             ratios.completion_ratio(model))


def local_counts(app, completion_text, model="gpt-4o-mini"):
    with app.app_context():
        return tokenizer.count_messages(MESSAGES, model), tokenizer.count_text(completion_text, model)


@pytest.fixture
def relay(app, root, upstream):
    """A channel serving gpt-4o-mini, gpt-4o and text-embedding-3-small, and a limited token of root's."""
    channel_id = add_channel(root, upstream.url)[0]
    token = add_token(root, name="relay-token", remain_quota=TOKEN_QUOTA, unlimited_quota=False)
    return SimpleNamespace(app=app, root=root, upstream=upstream, channel_id=channel_id, key=token["key"],
                           token_id=token["id"], client=app.test_client())


def assert_nothing_charged(relay, token_quota=TOKEN_QUOTA):
    token = read(relay.app, Token, relay.token_id)
    assert (token["remain_quota"], token["used_quota"]) == (token_quota, 0)
    user = root_user(relay.app)
    assert (user["quota"], user["used_quota"], user["request_count"]) == (ROOT_QUOTA, 0, 0)
    assert read(relay.app, Channel, relay.channel_id)["used_quota"] == 0
    assert consume_logs(relay.app) == []
    assert reservations_left(relay.app) == 0


def assert_charged(relay, requests, cost=COST, channel_id=None):
    token = read(relay.app, Token, relay.token_id)
    assert (token["remain_quota"], token["used_quota"]) == (TOKEN_QUOTA - requests * cost, requests * cost)
    user = root_user(relay.app)
    assert (user["quota"], user["used_quota"], user["request_count"]) == (ROOT_QUOTA - requests * cost,
                                                                          requests * cost, requests)
    assert read(relay.app, Channel, channel_id or relay.channel_id)["used_quota"] == requests * cost
    assert reservations_left(relay.app) == 0


# --- the happy paths ------------------------------------------------------------------------------


def test_non_stream_chat(relay):
    reply = chat(relay.client, relay.key)
    assert reply.status_code == 200
    body = reply.json
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the mock upstream."}
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    seen = relay.upstream.seen
    assert len(seen) == 1
    assert seen[0].path == "/v1/chat/completions"
    assert seen[0].headers["Authorization"] == f"Bearer {CHANNEL_KEY}"
    assert seen[0].body == {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert_charged(relay, 1)


def test_stream_chat(relay):
    reply = chat(relay.client, relay.key, stream=True)
    assert reply.status_code == 200
    assert reply.mimetype == "text/event-stream"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert reply.headers["X-Accel-Buffering"] == "no"
    events = sse_events(reply)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    assert stream_text(events) == "Hello from the mock upstream."
    assert all("usage" not in e or e["usage"] is None for e in events if isinstance(e, dict))
    assert all(e.get("choices") for e in events if isinstance(e, dict))
    # usage was asked for on the client's behalf, then stripped
    assert relay.upstream.seen[0].body["stream_options"] == {"include_usage": True}
    assert_charged(relay, 1)


def test_stream_usage_kept_when_the_client_asked(relay):
    raw = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
                      "stream_options": {"include_usage": True}}, indent=1).encode()
    reply = relay.client.post("/v1/chat/completions", data=raw, content_type="application/json",
                              headers=auth(relay.key))
    assert reply.status_code == 200
    events = sse_events(reply)
    usage_chunks = [e for e in events if isinstance(e, dict) and e.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert usage_chunks[0]["choices"] == []
    assert events[-1] == "[DONE]"
    # nothing needed changing: the client's bytes went upstream as they were
    seen = relay.upstream.seen[0]
    assert int(seen.headers["Content-Length"]) == len(raw)
    assert seen.body == json.loads(raw)
    assert_charged(relay, 1)


def test_completions(relay):
    reply = relay.client.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "Say hi"},
                              headers=auth(relay.key))
    assert reply.status_code == 200
    assert reply.json["object"] == "text_completion"
    assert reply.json["choices"][0]["text"] == "Hello from the mock upstream."
    assert relay.upstream.seen[0].path == "/v1/completions"
    assert relay.upstream.seen[0].body == {"model": "gpt-4o-mini", "prompt": "Say hi"}
    assert_charged(relay, 1)


def test_embeddings(relay):
    reply = relay.client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hello"},
                              headers=auth(relay.key))
    assert reply.status_code == 200
    assert reply.json["data"][0]["embedding"] == [0.1, 0.2, 0.3]
    assert relay.upstream.seen[0].path == "/v1/embeddings"
    # 11 prompt tokens at ratio 0.01: ceil(0.11) = 1
    logs = consume_logs(relay.app)
    assert len(logs) == 1
    assert (logs[0]["model_name"], logs[0]["prompt_tokens"], logs[0]["completion_tokens"], logs[0]["quota"]) == (
        "text-embedding-3-small", 11, 0, 1)
    assert_charged(relay, 1, cost=1)


def test_client_bytes_pass_through_untouched(relay):
    raw = (b'{ "model" :  "gpt-4o-mini",\n  "messages": [ {"role": "user", "content": "Hi \\u00e9"} ],'
           b'  "temperature": 0.5, "x_unknown_field": {"nested": [1, 2, 3]}, "n": 1 }')
    reply = relay.client.post("/v1/chat/completions", data=raw, content_type="application/json",
                              headers=auth(relay.key))
    assert reply.status_code == 200
    seen = relay.upstream.seen[0]
    assert int(seen.headers["Content-Length"]) == len(raw)
    assert seen.body == json.loads(raw)
    assert seen.body["x_unknown_field"] == {"nested": [1, 2, 3]}


# --- model mapping and the forced system prompt ------------------------------------------------


def test_model_mapping(app, root, upstream):
    channel_id = add_channel(root, upstream.url, model_mapping='{"gpt-4o-mini":"gpt-4o"}')[0]
    token = add_token(root, name="mapped", remain_quota=TOKEN_QUOTA, unlimited_quota=False)
    relay = SimpleNamespace(app=app, token_id=token["id"], channel_id=channel_id)
    reply = chat(app.test_client(), token["key"])
    assert reply.status_code == 200
    assert upstream.seen[0].body["model"] == "gpt-4o"
    assert upstream.seen[0].body["messages"] == MESSAGES
    cost = local_cost(app, 11, 7, "gpt-4o")  # billed at gpt-4o's prices, not gpt-4o-mini's
    assert cost != COST
    logs = consume_logs(app)
    assert len(logs) == 1 and logs[0]["model_name"] == "gpt-4o" and logs[0]["quota"] == cost
    assert_charged(relay, 1, cost=cost)


def test_model_mapping_keeps_the_token_allow_list_on_the_requested_name(app, root, upstream):
    add_channel(root, upstream.url, model_mapping='{"gpt-4o-mini":"gpt-4o"}')
    allowed = add_token(root, name="mini-only", models="gpt-4o-mini")
    assert chat(app.test_client(), allowed["key"]).status_code == 200
    assert upstream.seen[-1].body["model"] == "gpt-4o"


def test_system_prompt_replaces_the_first_system_message(app, root, upstream):
    add_channel(root, upstream.url, system_prompt="You are a pirate.")
    key = add_token(root)["key"]
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}]
    reply = app.test_client().post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": messages},
                                   headers=auth(key))
    assert reply.status_code == 200
    assert upstream.seen[0].body["messages"] == [{"role": "system", "content": "You are a pirate."},
                                                 {"role": "user", "content": "Hi"}]
    logs = consume_logs(app)
    assert len(logs) == 1 and logs[0]["system_prompt_reset"] is True


def test_system_prompt_is_prepended(app, root, upstream):
    add_channel(root, upstream.url, system_prompt="You are a pirate.")
    key = add_token(root)["key"]
    assert chat(app.test_client(), key).status_code == 200
    assert upstream.seen[0].body["messages"] == [{"role": "system", "content": "You are a pirate."},
                                                 {"role": "user", "content": "Hi"}]
    assert consume_logs(app)[0]["system_prompt_reset"] is True


def test_no_system_prompt_means_no_reset(relay):
    assert chat(relay.client, relay.key).status_code == 200
    assert consume_logs(relay.app)[0]["system_prompt_reset"] is False


# --- errors in OpenAI's shape ---------------------------------------------------------------------


def test_missing_key_is_401(relay):
    reply = relay.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert_openai_error(reply, 401)
    assert relay.upstream.seen == []


@pytest.mark.parametrize("header", ["Bearer sk-" + "x" * 48, "Bearer nonsense", "Bearer sk-"])
def test_invalid_key_is_401(relay, header):
    reply = relay.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                              headers={"Authorization": header})
    assert_openai_error(reply, 401)
    assert relay.upstream.seen == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]"])
def test_malformed_body_is_400(relay, raw):
    reply = relay.client.post("/v1/chat/completions", data=raw, content_type="application/json",
                              headers=auth(relay.key))
    assert_openai_error(reply, 400)
    assert relay.upstream.seen == []
    assert_nothing_charged(relay)


@pytest.mark.parametrize("body", [{"messages": MESSAGES}, {"model": "", "messages": MESSAGES},
                                  {"model": 5, "messages": MESSAGES}])
def test_no_model_is_400(relay, body):
    reply = relay.client.post("/v1/chat/completions", json=body, headers=auth(relay.key))
    assert_openai_error(reply, 400)
    assert relay.upstream.seen == []
    assert_nothing_charged(relay)


def test_model_outside_the_token_allow_list_is_403(relay):
    key = add_token(relay.root, name="only-4o", models="gpt-4o")["key"]
    assert_openai_error(chat(relay.client, key), 403)
    assert relay.upstream.seen == []
    assert chat(relay.client, key, model="gpt-4o").status_code == 200


def test_model_without_a_channel_is_503(relay):
    reply = chat(relay.client, relay.key, model="gpt-nothing-serves-this")
    assert_openai_error(reply, 503)
    assert relay.upstream.seen == []
    assert_nothing_charged(relay)


def test_token_quota_too_small_is_403_and_charges_nothing(relay):
    small = add_token(relay.root, name="tiny", remain_quota=1, unlimited_quota=False)
    reply = chat(relay.client, small["key"])
    assert_openai_error(reply, 403)
    assert relay.upstream.seen == []
    assert read(relay.app, Token, small["id"])["remain_quota"] == 1
    assert read(relay.app, Token, small["id"])["used_quota"] == 0
    assert_nothing_charged(relay)


def test_exhausted_limited_token_is_refused_with_401(relay):
    """Spec §3.3: a limited token with remain_quota <= 0 is refused by the token check itself (401)."""
    empty = add_token(relay.root, name="empty", remain_quota=0, unlimited_quota=False)
    reply = chat(relay.client, empty["key"])
    assert_openai_error(reply, 401)
    assert relay.upstream.seen == []
    assert read(relay.app, Token, empty["id"])["status"] == 4  # marked exhausted, as the original does
    assert_openai_error(chat(relay.client, empty["key"]), 401)


def test_upstream_500_without_retries_refunds(relay):
    relay.upstream.queue(Reply(status=500))
    reply = chat(relay.client, relay.key)
    assert_openai_error(reply, 500)
    assert len(relay.upstream.seen) == 1
    assert_nothing_charged(relay)


def test_upstream_500_in_a_stream_request_refunds(relay):
    relay.upstream.queue(Reply(status=500))
    reply = chat(relay.client, relay.key, stream=True)
    assert_openai_error(reply, 500)
    assert_nothing_charged(relay)


def test_retry_moves_to_the_other_channel_and_bills_once(relay):
    second = add_channel(relay.root, relay.upstream.url, key="sk-second-channel-key-0000")[0]
    channels = {relay.channel_id: CHANNEL_KEY, second: "sk-second-channel-key-0000"}
    set_option(relay.root, "RetryTimes", "1")
    relay.upstream.queue(Reply(status=500))
    reply = chat(relay.client, relay.key)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.json["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    seen = relay.upstream.seen
    assert len(seen) == 2
    failed, served = channel_id_of(seen[0], channels), channel_id_of(seen[1], channels)
    assert failed != served
    logs = consume_logs(relay.app)
    assert len(logs) == 1 and logs[0]["channel_id"] == served and logs[0]["quota"] == COST
    assert read(relay.app, Channel, served)["used_quota"] == COST
    assert read(relay.app, Channel, failed)["used_quota"] == 0
    token = read(relay.app, Token, relay.token_id)
    assert (token["remain_quota"], token["used_quota"]) == (TOKEN_QUOTA - COST, COST)
    user = root_user(relay.app)
    assert (user["quota"], user["used_quota"], user["request_count"]) == (ROOT_QUOTA - COST, COST, 1)
    assert reservations_left(relay.app) == 0


def test_retry_in_a_stream_request(relay):
    add_channel(relay.root, relay.upstream.url, key="sk-second-channel-key-0000")
    set_option(relay.root, "RetryTimes", "1")
    relay.upstream.queue(Reply(status=502))
    reply = chat(relay.client, relay.key, stream=True)
    assert reply.status_code == 200
    events = sse_events(reply)
    assert stream_text(events) == "Hello from the mock upstream." and events[-1] == "[DONE]"
    assert len(relay.upstream.seen) == 2
    assert len(consume_logs(relay.app)) == 1


def test_upstream_400_is_not_retried(relay):
    add_channel(relay.root, relay.upstream.url, key="sk-second-channel-key-0000")
    set_option(relay.root, "RetryTimes", "1")
    relay.upstream.queue(Reply(status=400, error={"error": {"message": "bad request from upstream",
                                                            "type": "invalid_request_error", "code": "bad_thing"}}))
    reply = chat(relay.client, relay.key)
    error = assert_openai_error(reply, 400)
    assert "bad request from upstream" in error["message"]
    assert len(relay.upstream.seen) == 1
    assert consume_logs(relay.app) == []
    token = read(relay.app, Token, relay.token_id)
    assert (token["remain_quota"], token["used_quota"]) == (TOKEN_QUOTA, 0)
    assert reservations_left(relay.app) == 0


def test_upstream_error_message_is_scrubbed(relay):
    message = (f"Incorrect API key provided: {CHANNEL_KEY}. You can find your API key at "
               f"https://platform.openai.com/account/api-keys, or ask {relay.upstream.url}/v1/help.")
    relay.upstream.queue(Reply(status=400, error={"error": {"message": message, "type": "invalid_request_error",
                                                            "code": "invalid_api_key"}}))
    reply = chat(relay.client, relay.key)
    assert reply.status_code == 400
    text = reply.get_data(as_text=True)
    assert CHANNEL_KEY not in text
    assert "upstream-secret-key" not in text
    assert "http://" not in text and "https://" not in text
    assert "platform.openai.com" not in text
    assert relay.upstream.url.removeprefix("http://") not in text
    assert "Incorrect API key provided" in reply.json["error"]["message"]


@pytest.mark.parametrize("where", ["type", "code", "param"])
def test_channel_key_never_reaches_the_client_from_any_error_field(relay, where):
    error = {"message": "something failed", "type": "invalid_request_error", "code": "oops", "param": ""}
    error[where] = f"{CHANNEL_KEY} at {relay.upstream.url}"
    relay.upstream.queue(Reply(status=400, error={"error": error}))
    reply = chat(relay.client, relay.key)
    assert reply.status_code == 400
    text = reply.get_data(as_text=True)
    assert CHANNEL_KEY not in text and relay.upstream.url not in text


def test_non_json_upstream_error_does_not_leak(relay):
    relay.upstream.queue(Reply(status=503, error={"detail": f"proxy at {relay.upstream.url} with key {CHANNEL_KEY}"}))
    reply = chat(relay.client, relay.key)
    assert_openai_error(reply, 503)
    text = reply.get_data(as_text=True)
    assert CHANNEL_KEY not in text and relay.upstream.url not in text


# --- request ids --------------------------------------------------------------------------------


def test_every_response_has_a_request_id_and_the_log_matches(relay):
    ok = chat(relay.client, relay.key)
    streamed = chat(relay.client, relay.key, stream=True)
    streamed.get_data()
    ids = []
    for reply in (ok, streamed):
        ids.append(reply.headers["X-Oneapi-Request-Id"])
        assert re.fullmatch(r"\d{20,}", ids[-1])
    assert ids[0] != ids[1]
    assert [log["request_id"] for log in consume_logs(relay.app)] == ids

    for reply in (relay.client.post("/v1/chat/completions", json={}),
                  chat(relay.client, relay.key, model="gpt-nothing"),
                  relay.client.get("/v1/models", headers=auth(relay.key)),
                  relay.client.get("/v1/nowhere", headers=auth(relay.key))):
        request_id = reply.headers.get("X-Oneapi-Request-Id", "")
        assert re.fullmatch(r"\d{20,}", request_id)
        if reply.status_code >= 400:
            assert reply.json["error"]["message"].endswith(f"(request id: {request_id})")


# --- pinned channels and token status -------------------------------------------------------------


def test_pinned_channel_for_root(relay):
    second = add_channel(relay.root, relay.upstream.url, key="sk-second-channel-key-0000")[0]
    for _ in range(4):
        assert chat(relay.client, f"{relay.key}-{second}").status_code == 200
    assert {seen.headers["Authorization"] for seen in relay.upstream.seen} == {"Bearer sk-second-channel-key-0000"}
    logs = consume_logs(relay.app)
    assert len(logs) == 4 and {log["channel_id"] for log in logs} == {second}
    assert read(relay.app, Channel, second)["used_quota"] == 4 * COST


def test_pinning_an_unknown_channel_is_400(relay):
    assert_openai_error(chat(relay.client, f"{relay.key}-999999"), 400)
    assert relay.upstream.seen == []
    assert_nothing_charged(relay)


def test_pinning_a_disabled_channel_is_403(relay):
    second = add_channel(relay.root, relay.upstream.url, key="sk-second-channel-key-0000", status=2)[0]
    assert_openai_error(chat(relay.client, f"{relay.key}-{second}"), 403)
    assert relay.upstream.seen == []


def test_pinned_channel_is_403_for_a_common_user(relay):
    alice = make_common_user(relay.app, "alice")
    key = add_token(alice, name="alice")["key"]
    assert chat(relay.client, key).status_code == 200
    reply = chat(relay.client, f"{key}-{relay.channel_id}")
    assert_openai_error(reply, 403)
    assert len(relay.upstream.seen) == 1


def test_disabled_token_is_refused_at_once(relay):
    assert chat(relay.client, relay.key).status_code == 200  # the token is in the cache now
    reply = relay.root.put("/api/token/", json={"id": relay.token_id, "status": 2})
    assert reply.json["success"] is True
    assert_openai_error(chat(relay.client, relay.key), 401)
    assert len(relay.upstream.seen) == 1
    assert relay.root.put("/api/token/?status_only=1", json={"id": relay.token_id, "status": 1}).json["success"]
    assert chat(relay.client, relay.key).status_code == 200


def test_expired_token_is_refused_and_marked_expired(app, root, upstream):
    add_channel(root, upstream.url)
    token = add_token(root, name="soon", expired_time=1_000_000_000)
    assert_openai_error(chat(app.test_client(), token["key"]), 401)
    assert read(app, Token, token["id"])["status"] == 3
    assert upstream.seen == []


def test_disabled_user_is_refused_at_once(relay):
    alice = make_common_user(relay.app, "alice")
    key = add_token(alice, name="alice")["key"]
    assert chat(relay.client, key).status_code == 200
    with relay.app.app_context():
        from oneapi.services import accounts, cache

        user_id = db.session.scalar(select(User.id).where(User.username == "alice"))
        db.session.execute(update(User).where(User.id == user_id).values(status=2))
        cache.publish(accounts.user_topic(user_id))
        db.session.commit()
    assert_openai_error(chat(relay.client, key), 403)
    assert len(relay.upstream.seen) == 1


# --- /v1/models ---------------------------------------------------------------------------------


def test_models_lists_the_group_models(relay):
    reply = relay.client.get("/v1/models", headers=auth(relay.key))
    assert reply.status_code == 200
    assert reply.json["object"] == "list"
    assert sorted(m["id"] for m in reply.json["data"]) == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    assert all(m["object"] == "model" for m in reply.json["data"])


def test_models_and_routing_are_scoped_to_the_users_group(relay):
    add_channel(relay.root, relay.upstream.url, key="sk-vip-channel-key-0000", models="vip-only-model,gpt-4o",
                group="vip")
    reply = relay.client.get("/v1/models", headers=auth(relay.key))
    assert sorted(m["id"] for m in reply.json["data"]) == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    assert_openai_error(relay.client.get("/v1/models/vip-only-model", headers=auth(relay.key)), 404)
    assert_openai_error(chat(relay.client, relay.key, model="vip-only-model"), 503)
    for _ in range(5):
        assert chat(relay.client, relay.key, model="gpt-4o").status_code == 200
    assert {seen.headers["Authorization"] for seen in relay.upstream.seen} == {f"Bearer {CHANNEL_KEY}"}


def test_models_respects_the_token_allow_list(relay):
    key = add_token(relay.root, name="some", models="gpt-4o,text-embedding-3-small,not-served-anywhere")["key"]
    reply = relay.client.get("/v1/models", headers=auth(key))
    assert sorted(m["id"] for m in reply.json["data"]) == ["gpt-4o", "text-embedding-3-small"]
    one = relay.client.get("/v1/models/gpt-4o", headers=auth(key))
    assert one.status_code == 200 and one.json["id"] == "gpt-4o" and one.json["object"] == "model"
    assert_openai_error(relay.client.get("/v1/models/gpt-4o-mini", headers=auth(key)), 404)


def test_models_hides_disabled_channels(relay):
    relay.root.put("/api/channel/", json={"id": relay.channel_id, "status": 2})
    reply = relay.client.get("/v1/models", headers=auth(relay.key))
    assert reply.status_code == 200 and reply.json["data"] == []


def test_unknown_model_is_404(relay):
    assert_openai_error(relay.client.get("/v1/models/no-such-model", headers=auth(relay.key)), 404)
    assert relay.client.get("/v1/models/gpt-4o-mini", headers=auth(relay.key)).json["id"] == "gpt-4o-mini"


def test_models_needs_a_key(relay):
    assert_openai_error(relay.client.get("/v1/models"), 401)


# --- billing ----------------------------------------------------------------------------------------


def test_billing_is_exact(relay):
    assert chat(relay.client, relay.key).status_code == 200
    streamed = chat(relay.client, relay.key, stream=True)
    assert sse_events(streamed)[-1] == "[DONE]"
    assert chat(relay.client, relay.key).status_code == 200
    assert_charged(relay, 3)
    logs = consume_logs(relay.app)
    assert len(logs) == 3
    for log, is_stream in zip(logs, (False, True, False), strict=True):
        assert log["type"] == 2
        assert (log["prompt_tokens"], log["completion_tokens"], log["quota"]) == (11, 7, COST)
        assert log["model_name"] == "gpt-4o-mini"
        assert log["token_name"] == "relay-token" and log["token_id"] == relay.token_id
        assert log["username"] == "root" and log["user_id"] == root_user(relay.app)["id"]
        assert log["channel_id"] == relay.channel_id
        assert log["is_stream"] is is_stream
        assert log["outcome"] == "done"
        assert log["usage_estimated"] is False
        assert log["elapsed_time"] >= 0


def test_unlimited_token_bills_the_user(app, root, upstream):
    channel_id = add_channel(root, upstream.url)[0]
    token = add_token(root, name="unl", remain_quota=0, unlimited_quota=True)
    assert chat(app.test_client(), token["key"]).status_code == 200
    row = read(app, Token, token["id"])
    assert (row["remain_quota"], row["used_quota"]) == (0, COST)
    user = root_user(app)
    assert (user["quota"], user["used_quota"], user["request_count"]) == (ROOT_QUOTA - COST, COST, 1)
    assert read(app, Channel, channel_id)["used_quota"] == COST


def test_stream_cut_by_the_upstream(relay):
    relay.upstream.queue(Reply(cut_after=2))
    reply = chat(relay.client, relay.key, stream=True)
    assert reply.status_code == 200
    events = sse_events(reply)
    assert "[DONE]" not in events
    assert "data: [DONE]" not in reply.get_data(as_text=True)
    assert stream_text(events) == "Hello from "
    last = events[-1]
    assert isinstance(last, dict) and set(last) == {"error"} and last["error"]["message"]
    assert last["error"]["message"].endswith(f"(request id: {reply.headers['X-Oneapi-Request-Id']})")
    logs = consume_logs(relay.app)
    assert len(logs) == 1
    log = logs[0]
    assert log["outcome"] == "upstream_error" and log["usage_estimated"] is True and log["is_stream"] is True
    prompt, completion = local_counts(relay.app, "Hello from ")
    cost = local_cost(relay.app, prompt, completion)
    assert (log["prompt_tokens"], log["completion_tokens"], log["quota"]) == (prompt, completion, cost)
    token = read(relay.app, Token, relay.token_id)
    assert (token["remain_quota"], token["used_quota"]) == (TOKEN_QUOTA - cost, cost)
    assert reservations_left(relay.app) == 0


def test_no_upstream_usage_is_counted_locally(relay):
    relay.upstream.queue(Reply(usage=None))
    reply = chat(relay.client, relay.key)
    assert reply.status_code == 200 and "usage" not in reply.json
    prompt, completion = local_counts(relay.app, "Hello from the mock upstream.")
    cost = local_cost(relay.app, prompt, completion)
    log = consume_logs(relay.app)[0]
    assert log["usage_estimated"] is True and log["outcome"] == "done"
    assert (log["prompt_tokens"], log["completion_tokens"], log["quota"]) == (prompt, completion, cost)
    assert prompt == 8  # 3 to prime the reply + 3 per message + "Hi" + "user"
    assert_charged(relay, 1, cost=cost)


def test_no_upstream_usage_in_a_stream_is_counted_locally(relay):
    relay.upstream.queue(Reply(usage=None))
    reply = chat(relay.client, relay.key, stream=True)
    events = sse_events(reply)
    assert events[-1] == "[DONE]"
    prompt, completion = local_counts(relay.app, "Hello from the mock upstream.")
    cost = local_cost(relay.app, prompt, completion)
    log = consume_logs(relay.app)[0]
    assert log["usage_estimated"] is True and log["outcome"] == "done" and log["is_stream"] is True
    assert (log["prompt_tokens"], log["completion_tokens"], log["quota"]) == (prompt, completion, cost)
    assert_charged(relay, 1, cost=cost)
