"""Turning an upstream's answer into the client's: errors without secrets, plain JSON with usage read
on the way, server-sent events and binary audio streamed as they arrive."""

import json
import math

from flask import Response, current_app, request

from oneapi.relay import client_writer, costs
from oneapi.relay.billing import Usage
from oneapi.relay.body_reader import BodyReader, BrokenBody, read_body
from oneapi.relay.errors import RelayError, scrub
from oneapi.relay.streaming import RelayStream, StreamMeter
from oneapi.relay.upstream import UpstreamTimeout
from oneapi.services import ratios, tokenizer

_MB = 1024 * 1024


def error_from_upstream(response, channel):
    """The upstream's error as a RelayError with its status, type and code, and nothing secret in the text."""
    try:
        body = read_body(response, _MB) or b""
    except (BrokenBody, UpstreamTimeout):  # the status is known; the text is a courtesy
        body = b""
    response.close()
    message, error_type, code = f"the upstream answered with status {response.status_code}", "upstream_error", ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            message = error.get("message") or message
            error_type = error.get("type") or error_type
            code = error.get("code") or ""
        elif isinstance(error, str):
            message = error
        else:
            message = next((parsed[k] for k in ("message", "msg", "err", "error_msg") if isinstance(parsed.get(k), str)),
                           message)
    # The upstream refusing our channel's key is not the client's authentication failure.
    status = 502 if response.status_code == 401 else response.status_code
    code = scrub(code, (channel.key,))[:64] if isinstance(code, (str, int)) and not isinstance(code, bool) else ""
    error_type = scrub(error_type, (channel.key,))[:64] if isinstance(error_type, str) else "upstream_error"
    return RelayError(status, scrub(message, (channel.key,)), code, error_type)


def stream_response(response, prepared, bill):
    config = current_app.config
    total = config["RELAY_TIMEOUT"]
    body = RelayStream(current_app._get_current_object(), response, StreamMeter(prepared.model, prepared.strip_usage),
                       bill, max_line=int(config["STREAM_MAX_LINE_MB"] * _MB),
                       keepalive=config["STREAM_KEEPALIVE_SECONDS"],
                       deadline=bill.started + total if total > 0 else None,
                       idle_timeout=config["RELAY_IDLE_TIMEOUT"],
                       drain_seconds=config["STREAM_DRAIN_SECONDS"], drain_bytes=int(config["STREAM_DRAIN_MB"] * _MB),
                       write=client_writer.writer_for(request.environ))
    return Response(body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def plain_response(response, data, bill, mode, incoming, fixed):
    """A whole answer, already read (and checked) by the pipeline: bill it and pass it on. The answer is the
    client's whatever the database does: a refused settlement is retried in the background."""
    _settle_plain(response, data, bill, mode, incoming, fixed)
    return Response(data, status=response.status_code,
                    content_type=response.headers.get("Content-Type", "application/json"))


def _settle_plain(response, data, bill, mode, incoming, fixed):
    app = current_app._get_current_object()

    def close(usage, outcome, amount=None):
        if not bill.try_close(usage, outcome, amount):
            bill.close_later(app, usage, outcome, amount)

    if mode.billing == "audio_text":
        response_format = incoming.body.get("response_format")
        seconds = costs.audio_seconds(incoming.files, data, response_format)
        if seconds is None:  # unknown duration: bill the transcript's tokens at the model's ratio
            close(Usage(costs.transcript_tokens(data, response_format, bill.model), 0, estimated=True), "done")
        else:
            amount = costs.audio_price(seconds, ratios.model_ratio(bill.model, bill.channel_type), bill.group_ratio)
            bill.unit = f"second of audio ({seconds:.1f} s)"
            close(Usage(math.ceil(seconds * costs.AUDIO_TOKENS_PER_SECOND), 0), "done", amount)
    elif fixed is not None:
        close(Usage(0, 0), "done", fixed)
    else:
        close(_usage_of(data, bill), "done")


def _usage_of(data, bill):
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return Usage(bill.local_prompt_tokens(), 0, estimated=True)
    usage = Usage.from_json(parsed.get("usage"))
    if usage is not None:
        return usage
    texts = []
    for choice in parsed.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            text = message.get("content") if isinstance(message.get("content"), str) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    return Usage(bill.local_prompt_tokens(), tokenizer.count_text("".join(texts), bill.model), estimated=True)


class _BinaryStream:
    """Audio bytes passed through as they arrive; the price was known before the call. Settled when the
    bytes end, or when the server closes the body (the client went away)."""

    def __init__(self, app, response, bill, amount):
        self._app, self._response, self._bill, self._amount = app, response, bill, amount

    def __iter__(self):
        outcome = "client_gone"
        body = BodyReader(self._response)
        try:
            while True:
                chunk = body.read()
                if not chunk:
                    outcome = "done"
                    return
                yield chunk
        except Exception:  # BrokenBody, UpstreamTimeout, socket errors: the upstream broke off
            outcome = "upstream_error"
        finally:
            body.close()
            self._settle(outcome)

    def _settle(self, outcome):
        self._response.close()
        if not self._bill.closed:
            with self._app.app_context():
                self._bill.close(Usage(0, 0), outcome, self._amount)

    def close(self):
        self._settle("client_gone")


def binary_response(response, bill, amount):
    body = _BinaryStream(current_app._get_current_object(), response, bill, amount)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(body, status=response.status_code,
                    content_type=response.headers.get("Content-Type", "application/octet-stream"), headers=headers)


