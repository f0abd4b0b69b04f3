"""OpenAI, Azure OpenAI and every OpenAI-compatible channel type: the same body, a type-specific URL and
credential header (spec §5.10, §6.3)."""

import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from urllib3 import encode_multipart_formdata

from oneapi.relay import channel_types

AZURE_DEFAULT_API_VERSION = "2024-10-21"


@dataclass
class Prepared:
    url: str
    headers: dict
    body: bytes
    model: str  # the model name the upstream sees (after the channel's mapping): what gets billed
    strip_usage: bool  # we asked for stream usage the client did not ask for: remove it from the stream
    system_prompt_reset: bool


def upstream_url(channel, path, model, client_args):
    kind = channel_types.get(channel.type)
    base = (channel.base_url or kind.base_url).rstrip("/")
    if kind.azure:
        version = (channel.config.get("api_version") or channel.other or client_args.get("api-version")
                   or AZURE_DEFAULT_API_VERSION)
        deployment = quote(model.replace(".", ""), safe="")
        return f"{base}/openai/deployments/{deployment}/{path.removeprefix('/v1/')}?{urlencode({'api-version': version})}"
    return base + kind.prefix + path.removeprefix("/v1")


def headers_for(channel, client_headers, accept):
    headers = {"Accept": client_headers.get("Accept") or accept, "Accept-Encoding": "identity"}
    if channel_types.get(channel.type).azure:
        headers["api-key"] = channel.key
    else:
        headers["Authorization"] = f"Bearer {channel.key}"
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


def prepare(channel, path, incoming, client_headers, client_args):
    """The upstream request. The client's bytes pass through untouched unless something must change: the
    channel maps the model, forces a system prompt, or a stream lacks `stream_options.include_usage`."""
    model = channel.model_mapping.get(incoming.model) or incoming.model
    if incoming.files:
        return _prepare_multipart(channel, path, incoming, model, client_headers, client_args)
    body, changed, reset = incoming.body, False, False
    if model != body.get("model"):
        body, changed = {**body, "model": model}, True
    if channel.system_prompt and isinstance(body.get("messages"), list):
        body = {**body, "messages": list(body["messages"])}
        reset = changed = _apply_system_prompt(body, channel.system_prompt)
    strip_usage = False
    if incoming.stream:
        stream_options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        if not stream_options.get("include_usage"):
            body = {**body, "stream_options": {**stream_options, "include_usage": True}}
            strip_usage = changed = True
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if changed else incoming.raw
    headers = headers_for(channel, client_headers, "text/event-stream" if incoming.stream else "application/json")
    headers["Content-Type"] = "application/json"
    return Prepared(upstream_url(channel, path, model, client_args), headers, data, model, strip_usage, reset)


def _prepare_multipart(channel, path, incoming, model, client_headers, client_args):
    fields = [(k, v) for k, v in incoming.form if k != "model"] + [("model", model)]
    fields += [(name, (filename, data, content_type)) for name, filename, content_type, data in incoming.files]
    data, content_type = encode_multipart_formdata(fields)
    headers = headers_for(channel, client_headers, "application/json")
    headers["Content-Type"] = content_type
    return Prepared(upstream_url(channel, path, model, client_args), headers, data, model, False, False)
