"""The life of one relay request (DESIGN.md): authenticate, read, route, reserve, send, forward, settle.

Failures before the first byte reaches the client may move to another channel (RetryTimes); after
it, never. The reservation is either handed to the streaming generator, which settles it in its
`finally`, or settled (or refunded) here.
"""

import json
import logging

import requests
from flask import Response, current_app, g, request

from oneapi.relay import adaptors, channel_types
from oneapi.relay.auth import Caller, authenticate
from oneapi.relay.billing import Bill, Usage
from oneapi.relay.errors import RelayError, scrub
from oneapi.relay.streaming import RelayStream, StreamMeter
from oneapi.relay.upstream import read_body, send
from oneapi.services import options, quota, ratios, routing, tokenizer

log = logging.getLogger(__name__)
_MB = 1024 * 1024


def read_json_body():
    config = current_app.config
    limit = int(config["RELAY_MAX_BODY_MB"] * _MB)
    if request.content_length is not None and request.content_length > limit:
        raise RelayError(413, f"the request body is larger than {config['RELAY_MAX_BODY_MB']:g} MB", "body_too_large")
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw)
    except ValueError:
        raise RelayError(400, "the request body is not valid JSON", "invalid_json", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise RelayError(400, "the request body must be a JSON object", "invalid_json", "invalid_request_error")
    return raw, body


def check_model(caller, model):
    if not isinstance(model, str) or not model:
        raise RelayError(400, "model is required", "invalid_text_request", "invalid_request_error", "model")
    if caller.token.models and model not in caller.token.models:
        raise RelayError(403, f"this token may not use the model {model}", "model_not_allowed")


def _max_tokens(body):
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


class Route:
    """Which channels to try, in order, for one request."""

    def __init__(self, caller: Caller, model):
        self.table = routing.table()
        self.caller = caller
        self.model = model
        self.tried = set()
        if caller.pinned_channel is not None:
            channel = self.table.channel(caller.pinned_channel)
            if channel is None:
                raise RelayError(400, f"there is no channel {caller.pinned_channel}", "invalid_channel_id")
            if channel.status != 1:
                raise RelayError(403, f"channel {channel.id} is disabled", "channel_disabled")
            self.pinned = channel
        else:
            self.pinned = None
            if not self.table.has_route(caller.user.group, model):
                raise RelayError(503, f"no channel is available for the model {model} in the group "
                                      f"{caller.user.group}", "model_not_available")

    def next(self):
        if self.pinned is not None:
            channel = None if self.tried else self.pinned
        else:
            channel = self.table.pick(self.caller.user.group, self.model, self.tried)
        if channel is not None:
            self.tried.add(channel.id)
        return channel


def _upstream_error(response, channel):
    """The upstream's error as (status, RelayError) with nothing secret left in it."""
    body = read_body(response, 1 * _MB) or b""
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
    # The upstream rejecting *our channel's* key is not the client's authentication failure.
    status = 502 if response.status_code == 401 else response.status_code
    return RelayError(status, scrub(message, (channel.key,)), code if isinstance(code, (str, int)) else "", error_type)


def _retryable(status):
    return status in (401, 408, 429) or status >= 500


def relay_json():
    """Chat completions, completions and embeddings: JSON in, JSON or SSE out."""
    caller = authenticate()
    raw, body = read_json_body()
    model = body.get("model")
    check_model(caller, model)
    route = Route(caller, model)
    stream = bool(body.get("stream"))
    prompt_tokens = tokenizer.count_prompt(body, model)
    group_r = ratios.group_ratio(caller.user.group)
    reserve_amount = ratios.estimate(prompt_tokens, _max_tokens(body), ratios.model_ratio(model),
                                     group_r, ratios.completion_ratio(model))
    try:
        reservation = quota.reserve(g.request_id, caller.user.id, caller.token.id, reserve_amount,
                                    not caller.token.unlimited_quota)
    except quota.QuotaExceeded as exceeded:
        if exceeded.who == "token":
            if quota.token_exhausted(caller.token.id):
                raise RelayError(401, f"the quota of token {caller.token.name} (#{caller.token.id}) is used up",
                                 "token_quota_exhausted") from None
            raise RelayError(403, f"the quota of token {caller.token.name} (#{caller.token.id}) is not enough for "
                                  "this request", "insufficient_token_quota") from None
        raise RelayError(403, "the user's quota is not enough for this request", "insufficient_user_quota") from None
    bill = Bill(reservation, group_r, prompt_tokens, stream, caller.token.name, caller.user.username)
    try:
        response, prepared, channel = _send_with_retries(route, raw, body)
    except BaseException:
        bill.close(None, "upstream_error")
        raise
    bill.attach(channel, prepared.model, prepared.system_prompt_reset)
    if stream and response.headers.get("Content-Type", "").startswith("text/event-stream"):
        return _stream_response(response, prepared, bill)  # the stream settles the bill from here on
    try:
        return _plain_response(response, bill, prompt_tokens)
    except BaseException:
        response.close()
        bill.close(None, "upstream_error")
        raise


def _send_with_retries(route, raw, body):
    config = current_app.config
    attempts = 1 + max(options.current().int("RetryTimes"), 0)
    last_error = None
    for _ in range(attempts):
        channel = route.next()
        if channel is None:
            break
        if channel.type not in channel_types.RELAYABLE:
            last_error = RelayError(501, f"channel {channel.id} has a type this gateway does not relay yet",
                                    "channel_type_not_supported")
            continue
        prepared = adaptors.for_channel(channel.type).prepare(
            channel, request.path, raw, body, request.headers,
            force_usage=True)
        try:
            response = send(prepared.url, prepared.headers, prepared.body,
                            connect_timeout=config["RELAY_CONNECT_TIMEOUT"], idle_timeout=config["RELAY_IDLE_TIMEOUT"],
                            proxy=config["RELAY_PROXY"])
        except requests.exceptions.Timeout:
            log.warning("channel %s timed out", channel.id)
            last_error = RelayError(504, "the upstream did not answer in time", "upstream_timeout")
            continue
        except requests.exceptions.RequestException as error:
            log.warning("channel %s unreachable: %s", channel.id, type(error).__name__)
            last_error = RelayError(502, "the upstream could not be reached", "upstream_unreachable")
            continue
        if 200 <= response.status_code < 300:
            return response, prepared, channel
        last_error = _upstream_error(response, channel)
        log.warning("channel %s answered %s", channel.id, response.status_code)
        if not _retryable(response.status_code):
            break
    raise last_error or RelayError(503, "no channel could serve this request", "model_not_available")


def _stream_response(response, prepared, bill):
    config = current_app.config
    meter = StreamMeter(prepared.model, prepared.strip_usage)
    total = config["RELAY_TIMEOUT"]
    body = RelayStream(current_app._get_current_object(), response, meter, bill,
                       max_line=int(config["STREAM_MAX_LINE_MB"] * _MB), keepalive=config["STREAM_KEEPALIVE_SECONDS"],
                       deadline=bill.started + total if total > 0 else None)
    return Response(body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _plain_response(response, bill, prompt_tokens):
    data = read_body(response, int(current_app.config["RELAY_MAX_RESPONSE_MB"] * _MB))
    response.close()
    if data is None:
        bill.close(Usage(prompt_tokens, 0, estimated=True), "upstream_error")
        raise RelayError(502, "the upstream's answer is larger than RELAY_MAX_RESPONSE_MB", "response_too_large")
    usage = None
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        usage = Usage.from_json(parsed.get("usage"))
        if usage is None:
            usage = Usage(prompt_tokens, _completion_tokens(parsed, bill.model), estimated=True)
    bill.close(usage or Usage(prompt_tokens, 0, estimated=True), "done")
    return Response(data, status=response.status_code,
                    content_type=response.headers.get("Content-Type", "application/json"))


def _completion_tokens(parsed, model):
    texts = []
    for choice in parsed.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            text = message.get("content") if isinstance(message.get("content"), str) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    return tokenizer.count_text("".join(texts), model)
