"""The official openai SDK as a black-box client of the real server process: every /v1 route we relay,
the model list, the routes we do not implement, the old dashboard billing views and the request id.

The live-server helpers here (`ServerPool`, `Gateway`) are shared by the other tests/test_relay_*.py
files: a module starts its server processes once, on one database, and sets the gateway up through
HTTP exactly as an operator would (first login, new password, access token, channel, API token)."""

import asyncio
import os
import re
import sys

import openai
import pytest
import requests

from tests.conftest import TEST_PASSWORD, LiveServer, free_port
from tests.mock_upstream import Reply

MOCK_MODELS = ["gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-moderation-stable",
               "dall-e-3", "tts-1", "whisper-1"]
CHANNEL_KEY = "sk-upstream-relay-key-0123456789"
MESSAGES = [{"role": "user", "content": "Hi"}]
CHAT_COST = 3  # ceil((11 + 7 × 4) × 0.075): gpt-4o-mini with the mock's usage (spec §4)
REQUEST_ID = re.compile(r"^\d{31}$")  # yyyyMMddHHmmss + 9 digits of nanoseconds + 8 random digits


# --- live servers and gateway set-up, shared with the other test_relay_*.py files ------------------


class ServerPool:
    """Server processes (`python app.py` or gunicorn) started on demand, one per (kind, env), all on the
    same database, so one gateway set-up serves every process. Stopped together at the end."""

    def __init__(self, dsn, folder):
        self.dsn = dsn
        self.folder = folder
        self.servers = {}

    def server(self, kind="app", **extra_env):
        name = (kind, tuple(sorted(extra_env.items())))
        if name not in self.servers:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PORT"))}
            env.update({"SQL_DSN": self.dsn, "DATA_DIR": str(self.folder / "data"),
                        "SQLITE_PATH": str(self.folder / "live.db"), "CACHE_SYNC_INTERVAL": "0.2",
                        **{k: str(v) for k, v in extra_env.items()}})
            if kind == "gunicorn":
                env.update({"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "ACCESS_LOG": "",
                            "GRACEFUL_TIMEOUT": "3"})
                command = [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py",
                           "wsgi:app"]
            else:
                command = [sys.executable, "app.py", "--port", str(port), "--log-dir",
                           str(self.folder / f"logs-{len(self.servers)}")]
            self.servers[name] = LiveServer(command, port, env, self.folder / f"server-{len(self.servers)}.log")
        return self.servers[name]

    def close(self):
        for server in self.servers.values():
            server.stop()


def empty_database(dsn, folder):
    """MariaDB/PostgreSQL runs share one database: empty it once per module (SQLite gets a new file)."""
    if not dsn:
        return
    from oneapi import create_app
    from oneapi.extensions import db

    app = create_app({"SQL_DSN": dsn, "DATA_DIR": str(folder / "data")})
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture(scope="module")
def pool(database, tmp_path_factory):
    dsn, _ = database
    folder = tmp_path_factory.mktemp("relay-live")
    empty_database(dsn, folder)
    servers = ServerPool(dsn, folder)
    yield servers
    servers.close()


class Gateway:
    """Root's access token and one unlimited API token, made through HTTP on a fresh database."""

    def __init__(self, url, upstream_url, models=MOCK_MODELS, channel_type=1):
        web = requests.Session()
        reply = web.post(url + "/api/user/login", json={"username": "root", "password": "123456"}, timeout=30).json()
        assert reply["success"], reply
        reply = web.put(url + "/api/user/self", json={"password": TEST_PASSWORD}, timeout=30).json()
        assert reply["success"], reply
        reply = web.post(url + "/api/user/token", timeout=30, headers={"X-Requested-With": "XMLHttpRequest"}).json()
        assert reply["success"], reply
        self.admin = requests.Session()
        self.admin.headers["Authorization"] = reply["data"]
        self.url = url
        self.channel_id = self.add_channel(url, upstream_url, models, channel_type)
        self.key, self.token_id = self.add_token(url)

    def api(self, url, method, path, **kwargs):
        reply = self.admin.request(method, url + path, timeout=30, **kwargs)
        body = reply.json()
        assert reply.status_code == 200 and body["success"], (method, path, reply.status_code, body)
        return body.get("data")

    def add_channel(self, url, base_url, models, channel_type=1, **fields):
        self.api(url, "POST", "/api/channel/", json={
            "name": f"relay-{channel_type}", "type": channel_type, "key": CHANNEL_KEY, "base_url": base_url,
            "models": ",".join(models), "group": "default", "priority": 0, "weight": 0, **fields})
        return max(c["id"] for c in self.api(url, "GET", "/api/channel/"))

    def add_token(self, url, **fields):
        data = self.api(url, "POST", "/api/token/", json={
            "name": "relay", "remain_quota": 0, "unlimited_quota": True, "expired_time": -1, **fields})
        return data["key"], data["id"]

    def token(self, token_id):
        return self.api(self.url, "GET", f"/api/token/{token_id}")

    def set_option(self, key, value):
        self.api(self.url, "PUT", "/api/option/", json={"key": key, "value": value})


def sdk(url, key, **kwargs):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30, **kwargs)


# --- this module's gateway --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(pool, upstream):
    server = pool.server("app")
    gw = Gateway(server.url, upstream.url)
    gw.client = sdk(server.url, gw.key)
    return gw


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    upstream.reset()
    yield


def headers_of(seen):
    return {k.lower(): v for k, v in seen.headers.items()}


# --- chat completions -------------------------------------------------------------------------------


def test_chat_sync(gateway, upstream):
    completion = gateway.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from the mock upstream."
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        11, 7, 18)
    assert len(upstream.seen) == 1
    seen = upstream.seen[0]
    assert seen.path == "/v1/chat/completions"
    assert headers_of(seen)["authorization"] == f"Bearer {CHANNEL_KEY}"
    assert seen.body["model"] == "gpt-4o-mini" and seen.body["messages"] == MESSAGES


def test_chat_sync_bills_exactly(gateway):
    key, token_id = gateway.add_token(gateway.url, remain_quota=100_000, unlimited_quota=False)
    client = sdk(gateway.url, key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    token = gateway.token(token_id)
    assert (token["remain_quota"], token["used_quota"]) == (100_000 - CHAT_COST, CHAT_COST)


def test_chat_async(gateway, upstream):
    upstream.queue(*(Reply(content=f"answer {n}") for n in range(3)))

    async def main():
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, timeout=30)
        async with client:
            return await asyncio.gather(*(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in range(3)))

    completions = asyncio.run(main())
    assert sorted(c.choices[0].message.content for c in completions) == ["answer 0", "answer 1", "answer 2"]
    assert all(c.usage.prompt_tokens == 11 for c in completions)
    assert len(upstream.seen) == 3


def test_chat_stream(gateway, upstream):
    stream = gateway.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock upstream."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks)  # asked for on the client's behalf, then removed
    assert upstream.seen[0].body["stream_options"] == {"include_usage": True}


def test_chat_stream_with_usage_asked_for(gateway):
    stream = gateway.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                    stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 7)


def test_chat_stream_async(gateway):
    async def main():
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, timeout=30)
        async with client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock upstream."


# --- completions, embeddings, moderations ---------------------------------------------------------


def test_completions(gateway, upstream):
    completion = gateway.client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert completion.choices[0].text == "Hello from the mock upstream."
    assert completion.usage.prompt_tokens == 11
    assert upstream.seen[0].path == "/v1/completions" and upstream.seen[0].body["prompt"] == "Say hello"


def test_completions_stream(gateway, upstream):
    stream = gateway.client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "Hello from the mock upstream."
    assert upstream.seen[0].body["stream"] is True


def test_embeddings(gateway, upstream):
    result = gateway.client.embeddings.create(model="text-embedding-3-small", input="hello",
                                              encoding_format="float")
    assert result.data[0].embedding == [0.1, 0.2, 0.3]
    assert result.model == "text-embedding-3-small"
    assert result.usage.prompt_tokens == 11
    assert upstream.seen[0].path == "/v1/embeddings" and upstream.seen[0].body["input"] == "hello"


def test_engine_embeddings_takes_the_model_from_the_path(gateway, upstream):
    reply = requests.post(gateway.url + "/v1/engines/text-embedding-3-small/embeddings", json={"input": "hello"},
                          headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"][0]["embedding"] == [0.1, 0.2, 0.3]
    assert upstream.seen[0].path == "/v1/embeddings"
    assert upstream.seen[0].body == {"input": "hello", "model": "text-embedding-3-small"}


def test_moderations_default_model(gateway, upstream):
    result = gateway.client.moderations.create(input="something harmless")
    assert result.results[0].flagged is False
    assert result.model == "text-moderation-stable"
    assert upstream.seen[0].path == "/v1/moderations"
    assert upstream.seen[0].body == {"input": "something harmless", "model": "text-moderation-stable"}


# --- images and audio -------------------------------------------------------------------------------


def test_image_generation_is_billed_per_image(gateway, upstream):
    key, token_id = gateway.add_token(gateway.url, remain_quota=100_000, unlimited_quota=False)
    result = sdk(gateway.url, key).images.generate(model="dall-e-3", prompt="a cat", size="1024x1024", n=1)
    assert [image.url for image in result.data] == ["https://images.example/0.png"]
    assert upstream.seen[0].path == "/v1/images/generations"
    token = gateway.token(token_id)
    assert (token["used_quota"], token["remain_quota"]) == (20_000, 80_000)  # ratio 20 × 1000 × 1 image


def test_speech_bytes_pass_through(gateway, upstream):
    key, token_id = gateway.add_token(gateway.url, remain_quota=100_000, unlimited_quota=False)
    client = sdk(gateway.url, key)
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello")
    assert audio.content == b"ID3-audio-part-0;ID3-audio-part-1;ID3-audio-part-2;"
    assert audio.response.headers["content-type"] == "audio/mpeg"
    assert upstream.seen[0].path == "/v1/audio/speech" and upstream.seen[0].body["input"] == "Hello"
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hello") as reply:
        assert b"".join(reply.iter_bytes()) == b"ID3-audio-part-0;ID3-audio-part-1;ID3-audio-part-2;"
    assert gateway.token(token_id)["used_quota"] == 2 * 38  # ceil(5 characters × tts-1 ratio 7.5), twice


TRANSCRIPT = "the quick brown fox"


@pytest.mark.parametrize("response_format, expected", [
    ("text", TRANSCRIPT),
    ("srt", f"1\n00:00:00,000 --> 00:00:02,000\n{TRANSCRIPT}\n"),
    ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{TRANSCRIPT}\n"),
])
def test_transcription_text_formats(gateway, upstream, response_format, expected):
    upstream.default = Reply(content=TRANSCRIPT)
    result = gateway.client.audio.transcriptions.create(
        model="whisper-1", file=("speech.mp3", b"fake-mp3-bytes", "audio/mpeg"), response_format=response_format)
    assert result == expected
    seen = upstream.seen[0]
    assert seen.path == "/v1/audio/transcriptions"
    assert seen.body == {"model": "whisper-1", "response_format": response_format}
    assert seen.files == {"file": ("speech.mp3", b"fake-mp3-bytes")}


def test_transcription_json_formats(gateway, upstream):
    upstream.default = Reply(content=TRANSCRIPT)
    result = gateway.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF", "audio/wav"))
    assert result.text == TRANSCRIPT
    verbose = gateway.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF", "audio/wav"),
                                                         response_format="verbose_json")
    assert (verbose.text, verbose.language, verbose.duration, verbose.segments) == (TRANSCRIPT, "english", 2.0, [])
    assert [s.body.get("response_format") for s in upstream.seen] == [None, "verbose_json"]


# --- models and unimplemented routes ---------------------------------------------------------------


def test_models_list_and_retrieve(gateway):
    models = gateway.client.models.list()
    assert sorted(m.id for m in models.data) == sorted(MOCK_MODELS)
    model = gateway.client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o-mini", "model", "one-api")


def test_models_list_respects_the_token_allow_list(gateway):
    key, _ = gateway.add_token(gateway.url, models="gpt-4o-mini,dall-e-3")
    assert sorted(m.id for m in sdk(gateway.url, key).models.list().data) == ["dall-e-3", "gpt-4o-mini"]
    with pytest.raises(openai.NotFoundError):
        sdk(gateway.url, key).models.retrieve("tts-1")


def test_unknown_model_is_not_found(gateway):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client.models.retrieve("gpt-9-imaginary")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert "gpt-9-imaginary" in caught.value.message


def test_unimplemented_route_is_501(gateway, upstream):
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client.files.list()
    assert caught.value.status_code == 501
    assert caught.value.code == "api_not_implemented"
    assert upstream.seen == []


def test_deleting_a_model_is_501(gateway, upstream):
    reply = requests.delete(gateway.url + "/v1/models/gpt-4o-mini", timeout=30,
                            headers={"Authorization": f"Bearer {gateway.key}"})
    assert reply.status_code == 501 and reply.json()["error"]["code"] == "api_not_implemented"
    assert upstream.seen == []


def test_unimplemented_route_still_needs_a_key(gateway):
    reply = requests.get(gateway.url + "/v1/files", timeout=30)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"


# --- the OpenAI dashboard billing views (spec §1.5) -------------------------------------------------


def test_billing_views_of_a_limited_token(gateway):
    key, _ = gateway.add_token(gateway.url, remain_quota=1_000_000, unlimited_quota=False)
    sdk(gateway.url, key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    auth = {"Authorization": f"Bearer {key}"}
    for prefix in ("", "/v1"):
        reply = requests.get(f"{gateway.url}{prefix}/dashboard/billing/subscription", headers=auth, timeout=30)
        assert reply.status_code == 200
        # total = remain + used = 1 000 000 quota = $2 at QuotaPerUnit 500 000
        assert reply.json() == {"object": "billing_subscription", "has_payment_method": True, "soft_limit_usd": 2.0,
                                "hard_limit_usd": 2.0, "system_hard_limit_usd": 2.0, "access_until": 0}
        reply = requests.get(f"{gateway.url}{prefix}/dashboard/billing/usage?start_date=2024-01-01&end_date=2024-02-01",
                             headers=auth, timeout=30)
        assert reply.status_code == 200
        usage = reply.json()
        assert set(usage) == {"object", "total_usage"} and usage["object"] == "list"
        assert usage["total_usage"] == pytest.approx(CHAT_COST / 500_000 * 100, rel=1e-12)  # cents: 0.0006


def test_billing_views_of_an_unlimited_token(gateway):
    key, _ = gateway.add_token(gateway.url, expired_time=4_102_444_800)
    auth = {"Authorization": f"Bearer {key}"}
    body = requests.get(gateway.url + "/v1/dashboard/billing/subscription", headers=auth, timeout=30).json()
    assert body["hard_limit_usd"] == body["soft_limit_usd"] == body["system_hard_limit_usd"] == 100_000_000
    assert body["access_until"] == 4_102_444_800
    assert requests.get(gateway.url + "/v1/dashboard/billing/usage", headers=auth, timeout=30).json() == {
        "object": "list", "total_usage": 0}


def test_billing_views_need_a_key(gateway):
    reply = requests.get(gateway.url + "/dashboard/billing/subscription", timeout=30)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"


# --- request ids ------------------------------------------------------------------------------------


def test_request_id_header(gateway):
    auth = {"Authorization": f"Bearer {gateway.key}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    ok = requests.post(gateway.url + "/v1/chat/completions", json=body, headers=auth, timeout=30)
    streamed = requests.post(gateway.url + "/v1/chat/completions", json={**body, "stream": True}, headers=auth,
                             timeout=30)
    refused = requests.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)
    listed = requests.get(gateway.url + "/v1/models", headers=auth, timeout=30)
    ids = [r.headers.get("X-Oneapi-Request-Id", "") for r in (ok, streamed, refused, listed)]
    assert [r.status_code for r in (ok, streamed, refused, listed)] == [200, 200, 401, 200]
    assert all(REQUEST_ID.match(i) for i in ids), ids
    assert len(set(ids)) == 4
    assert refused.json()["error"]["message"].endswith(f"(request id: {ids[2]})")
    assert streamed.text.rstrip().endswith("data: [DONE]")


def test_sdk_errors_carry_the_request_id(gateway):
    bad = sdk(gateway.url, "sk-" + "x" * 48)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    request_id = caught.value.response.headers["X-Oneapi-Request-Id"]
    assert REQUEST_ID.match(request_id)
    assert caught.value.message.endswith(f"(request id: {request_id})")
    assert caught.value.code == "invalid_api_key"
