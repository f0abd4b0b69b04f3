"""Who is calling /v1 (spec §3.3): `Authorization: Bearer sk-KEY[-CHANNELID]` → a cached token and user."""

import ipaddress
import time
from dataclasses import dataclass

from flask import request
from sqlalchemy import update

from oneapi import ratelimit
from oneapi.extensions import db
from oneapi.models import Token
from oneapi.models.token import TOKEN_DISABLED, TOKEN_ENABLED, TOKEN_EXHAUSTED, TOKEN_EXPIRED
from oneapi.models.user import ROLE_ADMIN, STATUS_ENABLED, hash_secret
from oneapi.relay.errors import RelayError
from oneapi.services import accounts, cache


@dataclass(frozen=True)
class Caller:
    token: accounts.TokenInfo
    user: accounts.UserInfo
    pinned_channel: int | None


def set_token_status(token_id, key_hash, status):
    db.session.execute(update(Token).where(Token.id == token_id, Token.status == TOKEN_ENABLED).values(status=status))
    cache.publish(accounts.token_topic(key_hash))
    db.session.commit()


def authenticate():
    header = request.headers.get("Authorization", "").strip()
    key = header.removeprefix("Bearer ").strip().removeprefix("sk-")
    if not key:
        raise RelayError(401, "no API key provided: send Authorization: Bearer sk-...", "invalid_api_key")
    key, _, pinned = key.partition("-")
    token = accounts.token_by_key(key)
    if token is None:
        raise RelayError(401, "invalid API key", "invalid_api_key")
    if token.status == TOKEN_EXHAUSTED:
        raise RelayError(401, f"the quota of token {token.name} (#{token.id}) is used up", "token_quota_exhausted")
    if token.status == TOKEN_EXPIRED:
        raise RelayError(401, "this token has expired", "token_expired")
    if token.status == TOKEN_DISABLED or token.status != TOKEN_ENABLED:
        raise RelayError(401, "this token is disabled", "token_disabled")
    if token.expired_time != -1 and token.expired_time < time.time():
        set_token_status(token.id, hash_secret(key), TOKEN_EXPIRED)
        raise RelayError(401, "this token has expired", "token_expired")
    if token.subnets:
        address = ipaddress.ip_address(request.remote_addr or "0.0.0.0")
        if not any(address in network for network in token.subnets):
            raise RelayError(403, f"this token may only be used from {', '.join(map(str, token.subnets))}; "
                                  f"this request came from {address}", "subnet_not_allowed")
    user = accounts.user(token.user_id)
    if user is None or user.status != STATUS_ENABLED:
        raise RelayError(403, "the user of this token is disabled", "user_disabled")
    channel_id = None
    if pinned:
        if user.role < ROLE_ADMIN:
            raise RelayError(403, "only administrators may pin a channel (sk-KEY-CHANNELID)", "channel_pinning_forbidden")
        if not pinned.isdigit():
            raise RelayError(400, "the channel id after the key must be a number", "invalid_channel_id")
        channel_id = int(pinned)
    if token.rpm_limit and not ratelimit.token_allowed(token.key_hash, token.rpm_limit):
        wait = ratelimit.token_retry_after(token.key_hash, token.rpm_limit)
        raise RelayError(429, f"rate limit reached for token {token.name}: {token.rpm_limit} requests per minute; "
                              f"try again in {wait} s", "rate_limit_exceeded", type="requests",
                         headers={"Retry-After": str(wait)})
    return Caller(token, user, channel_id)
