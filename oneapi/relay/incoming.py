"""Reading a client's request once: size cap, JSON or multipart, the model, and the original's
validation (spec §5.7), each failure a 4xx in OpenAI's shape."""

import json
from dataclasses import dataclass, field

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from oneapi.relay.errors import RelayError

_MB = 1024 * 1024
MAX_TOKENS_LIMIT = 1 << 30


@dataclass
class Incoming:
    raw: bytes  # the client's exact body (JSON modes): forwarded untouched when nothing changes
    body: dict  # parsed JSON, or the multipart form fields
    files: list = field(default_factory=list)  # multipart files: (field name, filename, content type, bytes)
    form: list = field(default_factory=list)  # multipart fields in order, repeated names kept
    model: str = ""

    @property
    def stream(self):
        return self.body.get("stream") is True


def _too_large():
    cap = current_app.config["RELAY_MAX_BODY_MB"]
    return RelayError(413, f"the request body is larger than RELAY_MAX_BODY_MB ({cap:g} MB)", "body_too_large",
                      "invalid_request_error")


def _bad(message, param=""):
    return RelayError(400, message, "invalid_request", "invalid_request_error", param)


def read(mode, path_model=None):
    limit = int(current_app.config["RELAY_MAX_BODY_MB"] * _MB)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large()
    try:
        incoming = _read_multipart() if mode.body == "multipart" else _read_json()
    except RequestEntityTooLarge:
        raise _too_large() from None
    body = incoming.body
    model = body.get("model") or path_model or mode.default_model
    if not isinstance(model, str) or not model:
        raise _bad("model is required", "model")
    incoming.model = model
    if mode.required and body.get(mode.required) in (None, "", []):
        raise _bad(f"{mode.required} is required", mode.required)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_TOKENS_LIMIT):
            raise _bad(f"{name} must be an integer from 0 to {MAX_TOKENS_LIMIT}", name)
    if "stream" in body and mode.body == "json" and not isinstance(body["stream"], bool):
        raise _bad("stream must be true or false", "stream")
    if incoming.stream and not mode.streams:
        raise _bad(f"this endpoint does not stream ({request.path})", "stream")
    return incoming


def _read_json():
    limit = int(current_app.config["RELAY_MAX_BODY_MB"] * _MB)
    # A chunked body has no Content-Length to check up front; with one, ask for no more than it (werkzeug's
    # stream allocates the size asked for, 64 MB by default, before it reads a byte).
    length = request.content_length
    raw = request.stream.read(limit + 1 if length is None else min(length, limit) + 1)
    if len(raw) > limit:
        raise _too_large()
    if not raw:
        raise _bad("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except ValueError:
        raise RelayError(400, "the request body is not valid JSON", "invalid_json", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise RelayError(400, "the request body must be a JSON object", "invalid_json", "invalid_request_error")
    return Incoming(raw, body)


def _read_multipart():
    if not request.mimetype.startswith("multipart/form-data"):
        raise _bad("this endpoint takes multipart/form-data")
    form = list(request.form.items(multi=True))
    files = [(name, f.filename or name, f.mimetype or "application/octet-stream", f.read())
             for name, f in request.files.items(multi=True)]
    if not files:
        raise _bad("a file is required", "file")
    return Incoming(b"", dict(reversed(form)), files, form)
