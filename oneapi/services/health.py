"""Channel health: what an upstream failure means, and what to do about it (issue: channel health).

Failures are classified from the status code and the structured error type/code, never from words in
the message (the original disables a channel whenever a message mentions "credit" or "balance", even a
caller's own quota error). Only a refused key or an account out of credit disables a channel, and only
when AutomaticDisableChannelEnabled is on. Rate limits, overload, server errors, timeouts and refused
connections open a short circuit breaker instead: routing skips the channel for a cool-down, then lets
one request through (half-open); a success closes it, a failure opens it again for twice as long.
Errors caused by the caller (bad request, content filters, context length) change nothing. A stream counts
when it ends, not at its first byte: one the upstream cuts or lets go silent is a breaker failure.
"""

import logging
import threading
import time

from flask import current_app
from sqlalchemy import update

from oneapi.extensions import db
from oneapi.models import Channel
from oneapi.models.channel import CHANNEL_AUTO_DISABLED, CHANNEL_ENABLED
from oneapi.services import cache, notify, options

log = logging.getLogger(__name__)

INVALID_KEY, NO_CREDIT, MODEL_NOT_FOUND, RATE_LIMITED, OVERLOADED, SERVER_ERROR, TIMEOUT, UNREACHABLE, CALLER = (
    "invalid_key", "no_credit", "model_not_found", "rate_limited", "overloaded", "server_error", "timeout",
    "unreachable", "caller")
CUT = "stream_cut"  # the upstream closed or broke a stream before it finished
DISABLING = {INVALID_KEY: "the upstream refused the key", NO_CREDIT: "the upstream account is out of credit"}
BREAKING = {RATE_LIMITED, OVERLOADED, SERVER_ERROR, TIMEOUT, UNREACHABLE, CUT}

_KEY_CODES = {"invalid_api_key", "account_deactivated", "invalid_key", "key_revoked", "api_key_invalid",
              "authentication_error", "permission_denied", "access_terminated"}
_KEY_TYPES = {"authentication_error", "invalid_api_key"}
_CREDIT_CODES = {"insufficient_quota", "billing_hard_limit_reached", "insufficient_balance", "credit_exhausted",
                 "billing_not_active"}
_CREDIT_TYPES = {"insufficient_quota", "billing_error"}


def classify(status, error_type="", code=""):
    """The class of an upstream failure from its HTTP status and structured error fields."""
    error_type, code = str(error_type or "").lower(), str(code or "").lower()
    if code in _CREDIT_CODES or error_type in _CREDIT_TYPES or status == 402:
        return NO_CREDIT
    if status == 401 or code in _KEY_CODES or error_type in _KEY_TYPES:
        return INVALID_KEY
    if status == 404 and (code == "model_not_found" or error_type == "model_not_found"):
        return MODEL_NOT_FOUND
    if status == 429:
        return RATE_LIMITED
    if status in (503, 529) or error_type == "overloaded_error":
        return OVERLOADED
    if status == 408 or status == 504:
        return TIMEOUT
    if status >= 500:
        return SERVER_ERROR
    return CALLER


class _Breakers:
    """Per-process breaker state: channel id → (consecutive failures, open until, cool-down)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = {}

    def failure(self, channel_id, threshold, cooldown, longest):
        with self.lock:
            failures, open_until, current = self.state.get(channel_id, (0, 0.0, cooldown))
            failures += 1
            if failures >= threshold:
                half_open_probe_failed = open_until and time.monotonic() >= open_until
                current = min(current * 2, longest) if half_open_probe_failed else cooldown
                open_until = time.monotonic() + current
                log.warning("channel %s: circuit open for %.0f s after %d failures", channel_id, current, failures)
            self.state[channel_id] = (failures, open_until, current)

    def success(self, channel_id):
        with self.lock:
            self.state.pop(channel_id, None)

    def blocked(self):
        """Channels whose breaker is open now. One past its cool-down is let through (half-open)."""
        now = time.monotonic()
        return {cid for cid, (_, open_until, _) in self.state.items() if open_until > now}


def _breakers():
    breakers = current_app.extensions.get("oneapi_breakers")
    if breakers is None:
        breakers = current_app.extensions["oneapi_breakers"] = _Breakers()
    return breakers


def blocked_channels():
    return _breakers().blocked()


def succeeded(channel_id):
    breakers = _breakers()
    if channel_id in breakers.state:
        breakers.success(channel_id)


def _trip(channel_id):
    config = current_app.config
    _breakers().failure(channel_id, config["BREAKER_FAILURES"], config["BREAKER_COOLDOWN_SECONDS"],
                        config["BREAKER_MAX_COOLDOWN_SECONDS"])


def stream_ended(channel_id, outcome, failure=None):
    """A stream's verdict on its channel, given when it ends: its first byte proves little, the upstream may
    still cut it. `failure` (a class in BREAKING) counts against the breaker, never towards a disable (a cut
    says nothing about the key); a finished stream (outcome "done") is a success. Anything else (the client
    went away, RELAY_TIMEOUT or STREAM_MAX_LINE_MB ended it) says nothing about the channel."""
    if failure in BREAKING:
        _trip(channel_id)
    elif outcome == "done":
        succeeded(channel_id)


def failed(channel, failure, detail=""):
    """Act on one failed attempt on `channel`."""
    if failure in BREAKING:
        _trip(channel.id)
    elif failure in DISABLING and options.current().bool("AutomaticDisableChannelEnabled"):
        set_status(channel.id, CHANNEL_AUTO_DISABLED, f"disabled automatically: {DISABLING[failure]}"
                   + (f" ({detail})" if detail else ""), only_if=CHANNEL_ENABLED)


def too_slow(channel_id, seconds):
    """After a test of all channels: an enabled channel slower than ChannelDisableThreshold seconds (0 = no
    limit) is disabled when AutomaticDisableChannelEnabled is on, as the original does. Returns whether."""
    o = options.current()
    threshold = o.float("ChannelDisableThreshold")
    if threshold <= 0 or seconds <= threshold or not o.bool("AutomaticDisableChannelEnabled"):
        return False
    return set_status(channel_id, CHANNEL_AUTO_DISABLED, f"disabled automatically: a test took {seconds:.1f} s, "
                      f"over ChannelDisableThreshold ({threshold:g} s)", only_if=CHANNEL_ENABLED)


def set_status(channel_id, status, reason, only_if=None):
    """Change a channel's status with its reason and time, and tell every node. Returns whether it changed."""
    query = update(Channel).where(Channel.id == channel_id)
    if only_if is not None:
        query = query.where(Channel.status == only_if)
    changed = db.session.execute(query.values(status=status, status_reason=reason[:255],
                                              status_time=int(time.time()))).rowcount
    if changed:
        from oneapi.models import Ability

        db.session.execute(update(Ability).where(Ability.channel_id == channel_id)
                           .values(enabled=status == CHANNEL_ENABLED))
        cache.publish("channels")
        log.warning("channel %s: %s", channel_id, reason)
    db.session.commit()
    if changed:
        notify.channel_status_changed(channel_id, status, reason)
    return bool(changed)
