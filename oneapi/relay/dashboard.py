"""OpenAI's old billing endpoints, which clients such as ChatGPT-Next-Web read to show a balance (spec §1.5)."""

from decimal import Decimal

from flask import jsonify

from oneapi.extensions import db
from oneapi.models import Token, User
from oneapi.relay import bp
from oneapi.relay.auth import authenticate
from oneapi.services import options

UNLIMITED = 100000000


def _amount(quota):
    o = options.current()
    if o.bool("DisplayInCurrencyEnabled"):
        return float(Decimal(quota) / Decimal(max(o.int("QuotaPerUnit"), 1)))
    return quota


def _figures(caller):
    """(remaining, used, expiry) from the token, or from the user when DisplayTokenStatEnabled is off."""
    if options.current().bool("DisplayTokenStatEnabled"):
        token = db.session.get(Token, caller.token.id)
        if token.unlimited_quota:
            return None, token.used_quota, token.expired_time
        return token.remain_quota, token.used_quota, token.expired_time
    user = db.session.get(User, caller.user.id)
    return user.quota, user.used_quota, 0


@bp.get("/dashboard/billing/subscription")
@bp.get("/v1/dashboard/billing/subscription")
def billing_subscription():
    remain, used, expires = _figures(authenticate())
    amount = UNLIMITED if remain is None else _amount(remain + used)
    return jsonify({"object": "billing_subscription", "has_payment_method": True, "soft_limit_usd": amount,
                    "hard_limit_usd": amount, "system_hard_limit_usd": amount,
                    "access_until": expires if expires > 0 else 0})


@bp.get("/dashboard/billing/usage")
@bp.get("/v1/dashboard/billing/usage")
def billing_usage():
    _, used, _ = _figures(authenticate())
    return jsonify({"object": "list", "total_usage": _amount(used) * 100})
