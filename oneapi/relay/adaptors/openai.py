"""OpenAI and every OpenAI-compatible channel type: same body, a type-specific URL (spec §5.10)."""

import json
from dataclasses import dataclass

from oneapi.relay import channel_types


@dataclass
class Prepared:
    url: str
    headers: dict
    body: bytes
    model: str  # the model name the upstream sees (after the channel's mapping): what gets billed
    strip_usage: bool  # we asked for stream usage the client did not ask for: remove it from the stream
    system_prompt_reset: bool


def upstream_url(channel, path):
    kind = channel_types.get(channel.type)
    base = (channel.base_url or kind.base_url).rstrip("/")
    return base + kind.prefix + path.removeprefix("/v1")


def headers_for(channel, client_headers, stream):
    headers = {
        "Authorization": f"Bearer {channel.key}",
        "Content-Type": client_headers.get("Content-Type") or "application/json",
        "Accept": client_headers.get("Accept") or ("text/event-stream" if stream else "application/json"),
        "Accept-Encoding": "identity",
    }
    if channel.type == 20:  # OpenRouter's attribution headers, as the original sends
        headers["HTTP-Referer"] = "https://github.com/songquanpeng/one-api"
        headers["X-Title"] = "One API"
    return headers


def _apply_system_prompt(body, prompt):
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        messages[0] = {**messages[0], "content": prompt}
    else:
        messages.insert(0, {"role": "system", "content": prompt})
    return True


def prepare(channel, path, raw_body, body, client_headers, *, force_usage=True):
    """Build the upstream request. The client's bytes pass through untouched unless something must change:
    the channel maps the model, forces a system prompt, or a stream lacks `stream_options.include_usage`."""
    changed = False
    model = body.get("model", "")
    mapped = channel.model_mapping.get(model)
    if mapped and mapped != model:
        body = {**body, "model": mapped}
        model, changed = mapped, True
    reset = False
    if channel.system_prompt and "messages" in body:
        body = {**body, "messages": list(body["messages"]) if isinstance(body["messages"], list) else body["messages"]}
        reset = changed = _apply_system_prompt(body, channel.system_prompt) or changed
    stream = bool(body.get("stream"))
    strip_usage = False
    if stream and force_usage:
        stream_options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        if not stream_options.get("include_usage"):
            body = {**body, "stream_options": {**stream_options, "include_usage": True}}
            strip_usage = changed = True
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if changed else raw_body
    return Prepared(upstream_url(channel, path), headers_for(channel, client_headers, stream), data, model,
                    strip_usage, reset)
