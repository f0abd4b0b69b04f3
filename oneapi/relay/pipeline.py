"""The life of one relay request (DESIGN.md): authenticate, read, route, reserve, send, answer, settle.

Failures before the first byte reaches the client may move to another channel (RetryTimes); after it,
never. The reservation is either handed to the response body (streams, speech), which settles it
however it ends, or settled or refunded here.
"""

import json
import logging

from flask import current_app, g, request

from oneapi.extensions import db
from oneapi.relay import adaptors, channel_types, costs
from oneapi.relay import incoming as incoming_request
from oneapi.relay.auth import Caller, authenticate
from oneapi.relay.billing import Bill
from oneapi.relay.body_reader import BrokenBody, read_body
from oneapi.relay.errors import RelayError
from oneapi.relay.responses import binary_response, error_from_upstream, plain_response, stream_response
from oneapi.relay.upstream import UpstreamTimeout, UpstreamUnreachable, send
from oneapi.services import health, options, quota, ratios, routing, tokenizer

log = logging.getLogger(__name__)


def check_model(caller, model):
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
        self.pinned = None
        if caller.pinned_channel is not None:
            channel = self.table.channel(caller.pinned_channel)
            if channel is None:
                raise RelayError(400, f"there is no channel {caller.pinned_channel}", "invalid_channel_id")
            if channel.status != 1:
                raise RelayError(403, f"channel {channel.id} is disabled", "channel_disabled")
            self.pinned = channel
        elif not self.table.has_route(caller.user.group, model):
            raise RelayError(503, f"no channel is available for the model {model} in the group {caller.user.group}",
                             "model_not_available")

    def next(self):
        if self.pinned is not None:
            channel = None if self.tried else self.pinned
        else:
            group = self.caller.user.group
            cooling = health.blocked_channels()
            channel = self.table.pick(group, self.model, self.tried | cooling) if cooling else None
            # a channel whose breaker is open is still better than no channel at all
            channel = channel or self.table.pick(group, self.model, self.tried)
        if channel is not None:
            self.tried.add(channel.id)
        return channel


def _price(mode, incoming, group_r):
    """(amount to reserve, fixed price or None) for this request, before any channel answers. Text requests
    reserve on a cheap estimate of the prompt; the exact count is made only if the upstream reports no usage."""
    model = incoming.model
    model_r = ratios.model_ratio(model)
    if mode.billing == "image":
        fixed = costs.image(model, incoming.body, model_r, group_r)
        return fixed, fixed
    if mode.billing == "speech":
        fixed = costs.speech(incoming.body, model_r, group_r)
        return fixed, fixed
    if mode.billing == "audio_text":
        return costs.transcript_estimate(model_r, group_r), None
    prompt = tokenizer.estimate_prompt(incoming.body)
    return ratios.estimate(prompt, _max_tokens(incoming.body), model_r, group_r, ratios.completion_ratio(model)), None


def _reserve(caller, amount):
    try:
        return quota.reserve(g.request_id, caller.user.id, caller.token.id, amount, not caller.token.unlimited_quota,
                             caller.token.limited_uses)
    except quota.QuotaExceeded as exceeded:
        token = f"token {caller.token.name} (#{caller.token.id})"
        if exceeded.who == "user":
            raise RelayError(403, "the user's quota is not enough for this request", "insufficient_user_quota") from None
        if exceeded.who == "uses":
            quota.token_exhausted(caller.token.id)
            raise RelayError(401, f"the uses of {token} have run out", "token_uses_exhausted") from None
        if quota.token_exhausted(caller.token.id):
            raise RelayError(401, f"the quota of {token} is used up", "token_quota_exhausted") from None
        raise RelayError(403, f"the quota of {token} is not enough for this request", "insufficient_token_quota") from None


def relay(mode, path_model=None):
    caller = authenticate()
    incoming = incoming_request.read(mode, path_model)
    check_model(caller, incoming.model)
    route = Route(caller, incoming.model)
    group_r = ratios.group_ratio(caller.user.group)
    amount, fixed = _price(mode, incoming, group_r)
    # Hold no session connection from here on: the quota service takes its own, briefly, and the upstream
    # may think for minutes. Holding one per request would make connections = concurrency, and a full pool
    # would wait on itself. In the steady state (everything cached) no session was opened: none is made.
    if db.session.registry.has():
        db.session.close()
    counts_prompt = mode.billing == "tokens"
    bill = Bill(_reserve(caller, amount), group_r, incoming.stream, caller.token.name, caller.user.username,
                unit={"image": "image", "speech": "character"}.get(mode.billing, "token"),
                prompt_counter=(lambda: tokenizer.count_prompt(incoming.body, incoming.model)) if counts_prompt else None)
    try:
        response, prepared, channel, data = _send_with_retries(route, mode, incoming)
    except BaseException:
        bill.close(None, "upstream_error")
        raise
    bill.attach(channel, prepared.model, prepared.system_prompt_reset)
    if data is None and mode.billing == "speech":
        return binary_response(response, bill, fixed)
    if data is None:
        return stream_response(response, prepared, bill)
    try:
        return plain_response(response, data, bill, mode, incoming, fixed)
    except BaseException:
        bill.close(None, "upstream_error")
        raise


def _streams_back(mode, incoming, response):
    """Answers passed through as they arrive (events, audio); everything else is read whole first."""
    return mode.billing == "speech" or (
        incoming.stream and response.headers.get("Content-Type", "").startswith("text/event-stream"))


def _is_json(data):
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _failed(channel, failure, why, error, detail=""):
    """One failed attempt on `channel`: logged and counted by its health. Returns `error`, what the client
    gets when no other channel answers."""
    log.warning("channel %s %s", channel.id, why)
    health.failed(channel, failure, detail)
    return error


def _send_with_retries(route, mode, incoming):
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
        prepared = adaptors.for_channel(channel.type).prepare(channel, mode.path, incoming, request.headers, request.args)
        proxy = channel.config.get("proxy") or config["RELAY_PROXY"]
        try:
            response = send(prepared.url, prepared.headers, prepared.body, connect_timeout=config["RELAY_CONNECT_TIMEOUT"],
                            idle_timeout=config["RELAY_IDLE_TIMEOUT"], proxy=proxy)
        except UpstreamTimeout:
            last_error = _failed(channel, health.TIMEOUT, "timed out",
                                 RelayError(504, "the upstream did not answer in time", "upstream_timeout"))
            continue
        except UpstreamUnreachable as error:
            last_error = _failed(channel, health.UNREACHABLE, f"unreachable: {error}",
                                 RelayError(502, "the upstream could not be reached", "upstream_unreachable"))
            continue
        status = response.status_code
        if 200 <= status < 300 and _streams_back(mode, incoming, response):
            if mode.billing == "speech":  # an event stream is judged when it ends (RelayStream), not here
                health.succeeded(channel.id)
            return response, prepared, channel, None
        if 200 <= status < 300:
            try:
                data = read_body(response, int(config["RELAY_MAX_RESPONSE_MB"] * 1024 * 1024))
            except UpstreamTimeout:  # nothing reached the client yet: another channel may answer
                last_error = _failed(channel, health.TIMEOUT, "went silent in the middle of its answer",
                                     RelayError(504, "the upstream did not finish its answer in time", "upstream_timeout"))
                continue
            except BrokenBody as error:
                last_error = _failed(channel, health.UNREACHABLE, f"broke off its answer: {error}",
                                     RelayError(502, "the upstream broke off its answer", "bad_upstream_response"),
                                     str(error))
                continue
            finally:
                response.close()
            if data is None:
                raise RelayError(502, "the upstream's answer is larger than RELAY_MAX_RESPONSE_MB", "response_too_large")
            if mode.billing != "audio_text" and not _is_json(data):  # a "success" nobody can use: try elsewhere
                last_error = _failed(channel, health.SERVER_ERROR, "answered 200 with a body that is not JSON",
                                     RelayError(502, "the upstream answered with something that is not JSON",
                                                "bad_upstream_response"), "status 200 with a body that is not JSON")
                continue
            health.succeeded(channel.id)
            return response, prepared, channel, data
        last_error = error_from_upstream(response, channel)
        failure = health.classify(status, last_error.type, last_error.code)
        log.warning("channel %s answered %s (%s)", channel.id, status, failure)
        health.failed(channel, failure, f"status {status}")
        if failure == health.CALLER:  # the caller's own error: another channel would refuse it too
            break
    raise last_error or RelayError(503, "no channel could serve this request", "model_not_available")

