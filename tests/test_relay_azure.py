"""Azure OpenAI channels (type 3, spec §5.10 and §6.3): the deployment URL with the model's dots removed,
the api-version from the channel (config, then the legacy `other` field), else the client's, else a
default; the `api-key` header instead of Authorization; multipart audio on the deployment's path; and
Azure's empty-choices prompt-filter chunks removed from streams."""

import io
import json
import re

import pytest

from oneapi.relay.adaptors.openai import AZURE_DEFAULT_API_VERSION
from tests.conftest import add_channel, add_token
from tests.test_relay_streaming import ScriptedUpstream, sse_head

AZURE_KEY = "azure-key-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Hi"}]


def azure_channel(root, base_url, models="gpt-3.5-turbo,text-embedding-3-small,whisper-1", **fields):
    return add_channel(root, base_url, type=3, key=AZURE_KEY, models=models, **fields)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def only_request(upstream):
    assert len(upstream.seen) == 1
    seen = upstream.seen[0]
    return seen, {k.lower(): v for k, v in seen.headers.items()}


def test_chat_goes_to_the_deployment_with_the_channel_api_version(root, upstream):
    azure_channel(root, upstream.url, config=json.dumps({"api_version": "2024-02-15-preview"}))
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions?api-version=2099-01-01", headers=auth(key),
                      json={"model": "gpt-3.5-turbo", "messages": MESSAGES})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.json["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    seen, headers = only_request(upstream)
    assert seen.path == "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-02-15-preview"
    assert headers["api-key"] == AZURE_KEY
    assert "authorization" not in headers
    assert seen.body == {"model": "gpt-3.5-turbo", "messages": MESSAGES}


def test_legacy_other_field_gives_the_api_version(root, upstream):
    azure_channel(root, upstream.url, other="2023-03-15-preview")
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions", headers=auth(key), json={"model": "gpt-3.5-turbo", "messages": MESSAGES})
    assert reply.status_code == 200
    assert only_request(upstream)[0].path == (
        "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2023-03-15-preview")


def test_client_api_version_is_used_when_the_channel_has_none(root, upstream):
    azure_channel(root, upstream.url)
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions?api-version=2023-05-15", headers=auth(key),
                      json={"model": "gpt-3.5-turbo", "messages": MESSAGES})
    assert reply.status_code == 200
    assert only_request(upstream)[0].path == "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2023-05-15"


def test_default_api_version_without_channel_or_client_version(root, upstream):
    azure_channel(root, upstream.url)
    key = add_token(root)["key"]
    reply = root.post("/v1/embeddings", headers=auth(key), json={"model": "text-embedding-3-small", "input": "hi"})
    assert reply.status_code == 200
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", AZURE_DEFAULT_API_VERSION)
    seen, headers = only_request(upstream)
    assert seen.path == f"/openai/deployments/text-embedding-3-small/embeddings?api-version={AZURE_DEFAULT_API_VERSION}"
    assert headers["api-key"] == AZURE_KEY and "authorization" not in headers


def test_model_mapping_names_the_deployment(root, upstream):
    azure_channel(root, upstream.url, models="gpt-4o-mini", model_mapping=json.dumps({"gpt-4o-mini": "gpt-4.1-mini"}),
                  config=json.dumps({"api_version": "2024-06-01"}))
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions", headers=auth(key), json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert reply.status_code == 200
    seen, _ = only_request(upstream)
    assert seen.path == "/openai/deployments/gpt-41-mini/chat/completions?api-version=2024-06-01"
    assert seen.body["model"] == "gpt-4.1-mini"


def test_stream_through_azure(root, upstream):
    azure_channel(root, upstream.url, config=json.dumps({"api_version": "2024-06-01"}))
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions", headers=auth(key),
                      json={"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": True})
    assert reply.status_code == 200
    body = reply.get_data(as_text=True)
    chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == (
        "Hello from the mock upstream.")
    assert body.rstrip().endswith("data: [DONE]")
    seen, headers = only_request(upstream)
    assert seen.path == "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-06-01"
    assert headers["api-key"] == AZURE_KEY


def test_transcription_goes_to_the_whisper_deployment(root, upstream):
    azure_channel(root, upstream.url, config=json.dumps({"api_version": "2024-06-01"}))
    key = add_token(root)["key"]
    reply = root.post("/v1/audio/transcriptions", headers=auth(key), content_type="multipart/form-data",
                      data={"model": "whisper-1", "response_format": "text",
                            "file": (io.BytesIO(b"fake-wav-bytes"), "speech.wav", "audio/wav")})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_data(as_text=True) == "Hello from the mock upstream."
    seen, headers = only_request(upstream)
    assert seen.path == "/openai/deployments/whisper-1/audio/transcriptions?api-version=2024-06-01"
    assert headers["api-key"] == AZURE_KEY and "authorization" not in headers
    assert seen.files == {"file": ("speech.wav", b"fake-wav-bytes")}
    assert seen.body == {"model": "whisper-1", "response_format": "text"}


# --- Azure's prompt-filter chunks ------------------------------------------------------------------


PROMPT_FILTER = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [
    {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}


def azure_stream(conn, body):
    events = [PROMPT_FILTER]
    for piece in ("Hello", " there"):
        events.append({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-35-turbo",
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None,
                                    "content_filter_results": {}}]})
    events.append({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-35-turbo",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-35-turbo",
                   "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    conn.sendall(sse_head(chunked=False) + data)


@pytest.fixture
def azure_upstream():
    server = ScriptedUpstream()
    server.script = azure_stream
    yield server
    server.close()


def test_prompt_filter_chunks_are_removed_from_streams(root, azure_upstream):
    azure_channel(root, azure_upstream.url, config=json.dumps({"api_version": "2024-06-01"}))
    key = add_token(root)["key"]
    reply = root.post("/v1/chat/completions", headers=auth(key),
                      json={"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": True})
    assert reply.status_code == 200
    body = reply.get_data(as_text=True)
    chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello there"
    assert all(c["choices"] for c in chunks), [c for c in chunks if not c["choices"]]  # spec §6.3
    assert body.rstrip().endswith("data: [DONE]")
