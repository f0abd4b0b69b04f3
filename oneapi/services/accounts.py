"""Cached, plain-value views of tokens and users for the relay and for per-request checks."""

import ipaddress
from dataclasses import dataclass

from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Token, User
from oneapi.models.channel import split_list
from oneapi.models.user import ROLE_ROOT, hash_secret
from oneapi.services import cache


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user_id: int
    name: str
    status: int
    expired_time: int
    unlimited_quota: bool
    models: tuple  # empty: every model
    subnets: tuple  # empty: any address
    limited_uses: bool = False  # remain_times counts down (it is not -1)
    rpm_limit: int = 0  # requests per minute; 0 = none
    key_hash: str = ""


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: int
    status: int
    group: str
    must_change_password: bool


def parse_subnets(value):
    """Comma-separated CIDRs → networks; ValueError names the bad entry."""
    networks = []
    for item in split_list(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"subnet: {item!r} is not a valid CIDR") from None
    return tuple(networks)


def _token_info(row):
    try:
        subnets = parse_subnets(row.subnet)
    except ValueError:
        subnets = (ipaddress.ip_network("0.0.0.0/32"),)  # a corrupt allow-list admits nobody
    return TokenInfo(row.id, row.user_id, row.name, row.status, row.expired_time, row.unlimited_quota,
                     tuple(split_list(row.models)), subnets, row.remain_times != -1, row.rpm_limit or 0, row.key_hash)


def token_topic(key_hash):
    return f"token:{key_hash}"


def token_by_key(key):
    key_hash = hash_secret(key)

    def load():
        row = db.session.scalar(select(Token).where(Token.key_hash == key_hash))
        return _token_info(row) if row else None

    return cache.get(token_topic(key_hash), load)


def user_topic(user_id):
    return f"user:{user_id}"


def user(user_id):
    def load():
        row = db.session.get(User, user_id)
        if row is None:
            return None
        return UserInfo(row.id, row.username, row.role, row.status, row.group, row.must_change_password)

    return cache.get(user_topic(user_id), load)


def root_id():
    return cache.get("root", lambda: db.session.scalar(select(User.id).where(User.role == ROLE_ROOT).order_by(User.id)))


def root_must_change_password():
    """True while root still has the original's well-known password: /api and pages stay locked."""
    rid = root_id()
    info = user(rid) if rid else None
    return bool(info and info.must_change_password)
