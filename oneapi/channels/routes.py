"""Upstream channels (spec §1.3 /api/channel), admin only. Keys go in and never come out."""

import json
from urllib.parse import urlparse

from sqlalchemy import delete, select

from oneapi.auth.guards import require_role
from oneapi.channels import bp
from oneapi.envelope import ApiError, field, json_object, ok, page
from oneapi.extensions import db
from oneapi.models import Ability, Channel
from oneapi.models.channel import CHANNEL_ENABLED
from oneapi.models.user import ROLE_ADMIN
from oneapi.relay import channel_types
from oneapi.services import cache

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
    if "group" in values and any(len(g.strip()) > 32 for g in values["group"].split(",")):
        raise ApiError("group: each group name must be at most 32 characters")
    if "weight" in values and values["weight"] < 0:
        raise ApiError("weight must not be negative")
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
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        raise ApiError("channel not found", 404)
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
    channel = db.session.get(Channel, field(body, "id", int, required=True))
    if channel is None:
        raise ApiError("channel not found", 404)
    values = _values(body)
    key = field(body, "key", str)
    if key and key.strip():
        values["key"] = key.strip()
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
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        raise ApiError("channel not found", 404)
    db.session.execute(delete(Ability).where(Ability.channel_id == channel.id))
    db.session.delete(channel)
    cache.publish("channels")
    db.session.commit()
    return ok()
