"""API tokens (spec §1.3 /api/token), each scoped to its owner. The full key appears once: in the
response that creates it (or regenerates it). The database keeps its SHA-256."""

import time

from flask import request
from sqlalchemy import select

from oneapi.auth.guards import caller, require_role
from oneapi.envelope import MAX_BALANCE, ApiError, field, json_object, ok, page, starts_with
from oneapi.extensions import db
from oneapi.models import Token
from oneapi.models.token import TOKEN_ENABLED, generate_key
from oneapi.models.user import ROLE_COMMON
from oneapi.services import accounts, cache
from oneapi.tokens import bp

NAME_MAX = 30
RPM_MAX = 1_000_000
VALID_STATUSES = (1, 2, 3, 4)


def _own_token(token_id):
    token = db.session.get(Token, token_id)
    if token is None or token.user_id != caller().id:
        raise ApiError("token not found", 404)
    return token


def _apply_fields(token, body):
    """Validate and set the editable fields present in `body`; unknown fields are ignored."""
    name = field(body, "name", str)
    if name is not None:
        if len(name) > NAME_MAX:
            raise ApiError(f"name must be at most {NAME_MAX} characters")
        token.name = name
    expired_time = field(body, "expired_time", int)
    if expired_time is not None:
        if expired_time != -1 and expired_time <= 0:
            raise ApiError("expired_time must be -1 (never) or a unix time in seconds")
        token.expired_time = expired_time
    remain_quota = field(body, "remain_quota", int)
    if remain_quota is not None:
        if not 0 <= remain_quota <= MAX_BALANCE:
            raise ApiError(f"remain_quota must be from 0 to {MAX_BALANCE}")
        token.remain_quota = remain_quota
    remain_times = field(body, "remain_times", int)
    if remain_times is not None:
        if remain_times < -1:
            raise ApiError("remain_times must be -1 (unlimited) or a number of uses from 0")
        token.remain_times = remain_times
    rpm_limit = field(body, "rpm_limit", int)
    if rpm_limit is not None:
        if not 0 <= rpm_limit <= RPM_MAX:
            raise ApiError(f"rpm_limit must be 0 (no limit) to {RPM_MAX} requests per minute")
        token.rpm_limit = rpm_limit
    unlimited = field(body, "unlimited_quota", bool)
    if unlimited is not None:
        token.unlimited_quota = unlimited
    models = field(body, "models", str)
    if models is not None:
        token.models = models
    subnet = field(body, "subnet", str)
    if subnet is not None:
        try:
            accounts.parse_subnets(subnet)
        except ValueError as error:
            raise ApiError(str(error)) from None
        token.subnet = subnet


def _changed(token):
    cache.publish(accounts.token_topic(token.key_hash))


@bp.get("/api/token/")
@require_role(ROLE_COMMON)
def list_tokens():
    offset, limit = page()
    query = select(Token).where(Token.user_id == caller().id)
    order = request_order()
    query = query.order_by(*order).offset(offset).limit(limit)
    return ok([t.to_dict() for t in db.session.scalars(query)])


def request_order():
    order = request.args.get("order", "")
    if order == "remain_quota":
        return (Token.unlimited_quota.desc(), Token.remain_quota.desc(), Token.id.desc())
    if order == "used_quota":
        return (Token.used_quota.desc(), Token.id.desc())
    return (Token.id.desc(),)


@bp.get("/api/token/search")
@require_role(ROLE_COMMON)
def search_tokens():
    keyword = request.args.get("keyword", "").strip()
    rows = db.session.scalars(select(Token).where(Token.user_id == caller().id, starts_with(Token.name, keyword))
                              .order_by(Token.id.desc()).limit(100))
    return ok([t.to_dict() for t in rows])


@bp.get("/api/token/<int:token_id>")
@require_role(ROLE_COMMON)
def get_token(token_id):
    return ok(_own_token(token_id).to_dict())


@bp.post("/api/token/")
@require_role(ROLE_COMMON)
def create_token():
    body = json_object()
    token = Token(user_id=caller().id, name="", expired_time=-1, remain_quota=0, unlimited_quota=False, subnet="",
                  remain_times=-1)
    _apply_fields(token, body)
    key = generate_key()
    token.set_key(key)
    db.session.add(token)
    db.session.commit()
    return ok(token.to_dict(key="sk-" + key))


@bp.put("/api/token/")
@require_role(ROLE_COMMON)
def update_token():
    body = json_object()
    token = _own_token(field(body, "id", int, required=True))
    status = field(body, "status", int)
    if not request.args.get("status_only"):
        _apply_fields(token, body)
    if status is not None:
        if status not in VALID_STATUSES:
            raise ApiError("status must be 1 (enabled), 2 (disabled), 3 (expired) or 4 (exhausted)")
        if status == TOKEN_ENABLED:
            if token.expired_time != -1 and token.expired_time <= int(time.time()):
                raise ApiError("the token has expired: change its expiry before enabling it")
            if not token.unlimited_quota and token.remain_quota <= 0:
                raise ApiError("the token's quota is used up: raise remain_quota or make it unlimited before enabling it")
            if token.remain_times == 0:
                raise ApiError("the token's uses have run out: raise remain_times or set it to -1 before enabling it")
        token.status = status
    _changed(token)
    db.session.commit()
    return ok(token.to_dict())


@bp.delete("/api/token/<int:token_id>")
@require_role(ROLE_COMMON)
def delete_token(token_id):
    token = _own_token(token_id)
    _changed(token)
    db.session.delete(token)
    db.session.commit()
    return ok()


@bp.post("/api/token/<int:token_id>/key")
@require_role(ROLE_COMMON)
def regenerate_key(token_id):
    """A new key for the same token (limits, usage and logs kept); the old key stops working at once."""
    token = _own_token(token_id)
    _changed(token)
    key = generate_key()
    token.set_key(key)
    db.session.commit()
    return ok(token.to_dict(key="sk-" + key))
