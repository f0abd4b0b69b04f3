"""Upstream channels (spec §1.3 /api/channel), admin only. Keys go in and never come out."""

import json
import threading
import time
from urllib.parse import urlparse

from flask import current_app, jsonify, request
from sqlalchemy import delete, or_, select

from oneapi import background
from oneapi.auth.guards import caller, require_role
from oneapi.channels import bp
from oneapi.envelope import ApiError, field, found, json_object, keyword_id, ok, page, starts_with
from oneapi.extensions import db
from oneapi.models import Ability, Channel
from oneapi.models.channel import CHANNEL_AUTO_DISABLED, CHANNEL_ENABLED, CHANNEL_MANUALLY_DISABLED
from oneapi.models.user import ROLE_ADMIN
from oneapi.relay import channel_types, model_lists
from oneapi.services import cache, health, probes, routing

_TEXT_FIELDS = ("name", "base_url", "other", "models", "group", "model_mapping", "config", "system_prompt")
_INT_FIELDS = ("type", "priority", "weight", "status")


def _validate(values):
    """Check the fields present in `values` (a dict of already-typed values); raise ApiError naming the field."""
    if "type" in values and channel_types.get(values["type"]) is None:
        raise ApiError(f"type: unknown channel type {values['type']}")
    if "name" in values and len(values["name"]) > 191:
        raise ApiError("name must be at most 191 characters")
    if values.get("base_url"):
        parsed = urlparse(values["base_url"])
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ApiError("base_url must be an http:// or https:// URL")
        values["base_url"] = values["base_url"].rstrip("/")
    for name in ("model_mapping", "config"):
        if values.get(name):
            try:
                parsed = json.loads(values[name])
            except ValueError:
                raise ApiError(f"{name} must be a JSON object") from None
            if not isinstance(parsed, dict):
                raise ApiError(f"{name} must be a JSON object")
            if name == "config" and parsed.get("proxy"):
                proxy = urlparse(str(parsed["proxy"]))
                if proxy.scheme not in ("http", "https") or not proxy.netloc:
                    raise ApiError("config.proxy must be an http:// or https:// URL")
    if "group" in values and any(len(g.strip()) > 32 for g in values["group"].split(",")):
        raise ApiError("group: each group name must be at most 32 characters")
    if "weight" in values and not 0 <= values["weight"] <= 1_000_000:
        raise ApiError("weight must be from 0 to 1000000")
    if "status" in values and values["status"] not in (1, 2, 3):
        raise ApiError("status must be 1 (enabled), 2 (disabled) or 3 (disabled by the system)")


def _values(body):
    values = {}
    for name in _TEXT_FIELDS:
        value = field(body, name, str)
        if value is not None:
            values[name] = value
    for name in _INT_FIELDS:
        value = field(body, name, int)
        if value is not None:
            values[name] = value
    _validate(values)
    return values


def _rebuild_abilities(channel):
    db.session.execute(delete(Ability).where(Ability.channel_id == channel.id))
    db.session.add_all(channel.abilities())


@bp.get("/api/channel/")
@require_role(ROLE_ADMIN)
def list_channels():
    offset, limit = page()
    rows = db.session.scalars(select(Channel).order_by(Channel.id.desc()).offset(offset).limit(limit))
    return ok([c.to_dict() for c in rows])


@bp.get("/api/channel/<int:channel_id>")
@require_role(ROLE_ADMIN)
def get_channel(channel_id):
    channel = found(db.session.get(Channel, channel_id), "channel")
    return ok(channel.to_dict())


@bp.post("/api/channel/")
@require_role(ROLE_ADMIN)
def create_channels():
    """Several keys, one per line, make one channel each (the original's batch creation)."""
    body = json_object()
    values = _values(body)
    key_text = field(body, "key", str, default="")
    keys = [line.strip() for line in key_text.splitlines() if line.strip()]
    if not keys:
        raise ApiError("key is required")
    if "type" not in values:
        values["type"] = 1
    values.setdefault("group", "default")
    channels = []
    for key in keys:
        channel = Channel(**values, key=key)
        channel.status = values.get("status", CHANNEL_ENABLED)
        db.session.add(channel)
        channels.append(channel)
    db.session.flush()
    for channel in channels:
        db.session.add_all(channel.abilities())
    cache.publish("channels")
    db.session.commit()
    return ok([c.id for c in channels])


@bp.put("/api/channel/")
@require_role(ROLE_ADMIN)
def update_channel():
    body = json_object()
    channel = found(db.session.get(Channel, field(body, "id", int, required=True)), "channel")
    values = _values(body)
    key = field(body, "key", str)
    if key and key.strip():
        values["key"] = key.strip()
    if "status" in values and values["status"] != channel.status:
        who = caller().username
        values["status_reason"] = f"enabled by {who}" if values["status"] == CHANNEL_ENABLED else f"disabled by {who}"
        values["status_time"] = int(time.time())
    for name, value in values.items():
        setattr(channel, name, value)
    db.session.flush()
    _rebuild_abilities(channel)
    cache.publish("channels")
    db.session.commit()
    return ok(channel.to_dict())


@bp.delete("/api/channel/<int:channel_id>")
@require_role(ROLE_ADMIN)
def delete_channel(channel_id):
    channel = found(db.session.get(Channel, channel_id), "channel")
    db.session.execute(delete(Ability).where(Ability.channel_id == channel.id))
    db.session.delete(channel)
    cache.publish("channels")
    db.session.commit()
    return ok()


@bp.get("/api/channel/search")
@require_role(ROLE_ADMIN)
def search_channels():
    keyword = request.args.get("keyword", "").strip()
    clauses = [starts_with(Channel.name, keyword)]
    if keyword_id(keyword) is not None:
        clauses.append(Channel.id == keyword_id(keyword))
    rows = db.session.scalars(select(Channel).where(or_(*clauses)).order_by(Channel.id.desc()).limit(100))
    return ok([c.to_dict() for c in rows])


@bp.delete("/api/channel/disabled")
@require_role(ROLE_ADMIN)
def delete_disabled_channels():
    """Every channel disabled by hand or by the system, with its abilities (the original leaves those behind)."""
    ids = list(db.session.scalars(select(Channel.id).where(
        Channel.status.in_((CHANNEL_MANUALLY_DISABLED, CHANNEL_AUTO_DISABLED)))))
    if ids:
        db.session.execute(delete(Ability).where(Ability.channel_id.in_(ids)))
        db.session.execute(delete(Channel).where(Channel.id.in_(ids)))
        cache.publish("channels")
    db.session.commit()
    return ok(len(ids))


def _channel_info(channel_id):
    info = routing.table().channel(channel_id)
    if info is None:
        raise ApiError("channel not found", 404)
    return info


@bp.get("/api/channel/test/<int:channel_id>")
@require_role(ROLE_ADMIN)
def test_channel(channel_id):
    """The original's non-standard answer: {success, message, time, modelName}."""
    info = _channel_info(channel_id)
    if info.type not in channel_types.RELAYABLE:
        return jsonify({"success": False, "message": "this channel type cannot be tested", "time": 0,
                        "modelName": ""})
    success, message, seconds, model = probes.test_channel(info, request.args.get("model", ""))
    cache.publish("channels")
    db.session.commit()
    return jsonify({"success": success, "message": message, "time": round(seconds, 3), "modelName": model})


_test_all_lock = threading.Lock()


def _test_all(app, scope):
    try:
        with app.app_context():
            table = routing.table()
            wanted = (CHANNEL_MANUALLY_DISABLED, CHANNEL_AUTO_DISABLED) if scope == "disabled" else None
            for info in list(table.channels.values()):
                if info.type not in channel_types.RELAYABLE or (wanted and info.status not in wanted):
                    continue
                ok, _, seconds, _ = probes.test_channel(info)
                if ok and info.status == CHANNEL_ENABLED:
                    health.too_slow(info.id, seconds)
                time.sleep(app.config["POLLING_INTERVAL"])
            cache.publish("channels")
            db.session.commit()
    finally:
        _test_all_lock.release()


@bp.get("/api/channel/test")
@require_role(ROLE_ADMIN)
def test_all_channels():
    """Test every channel (scope=all) or the disabled ones (scope=disabled) in the background, one run at a time."""
    scope = request.args.get("scope", "all")
    if scope not in ("all", "disabled"):
        raise ApiError("scope must be all or disabled", 400)
    if not _test_all_lock.acquire(blocking=False):
        raise ApiError("a test of all channels is already running")
    background.start(_test_all, current_app._get_current_object(), scope, name="oneapi-test-all")
    return ok()


@bp.get("/api/channel/update_balance/<int:channel_id>")
@require_role(ROLE_ADMIN)
def update_balance(channel_id):
    """The original's non-standard answer: {success, message, balance}."""
    try:
        balance = probes.query_balance(_channel_info(channel_id))
    except probes.BalanceError as error:
        return jsonify({"success": False, "message": str(error), "balance": 0})
    return jsonify({"success": True, "message": "", "balance": balance})


@bp.get("/api/channel/update_balance")
@require_role(ROLE_ADMIN)
def update_all_balances():
    """Every enabled channel whose type has a balance API; `data` maps channel id to balance or error."""
    results = {}
    for info in routing.table().channels.values():
        if info.status != CHANNEL_ENABLED:
            continue
        try:
            results[str(info.id)] = probes.query_balance(info)
        except probes.BalanceError as error:
            results[str(info.id)] = str(error)
    return ok(results)


@bp.get("/api/models")
@require_role(1)
def models_by_type():
    return ok(model_lists.all_types())


@bp.get("/api/channel/models")
@require_role(ROLE_ADMIN)
def every_model():
    """The original's non-standard list: {"object": "list", "data": [OpenAI model objects]}."""
    return jsonify({"object": "list", "data": [{"id": m, "object": "model", "created": 1626777600, "owned_by": "one-api"}
                                               for m in model_lists.every_model()]})
