"""Talking to a channel outside of client traffic: test calls (spec §5.11) and balance queries (§5.12)."""

import json
import logging
import time
from datetime import date, timedelta

import requests
from flask import current_app
from sqlalchemy import update

from oneapi.extensions import db
from oneapi.models import Channel, Log, LogType
from oneapi.relay import adaptors, channel_types
from oneapi.relay.body_reader import BrokenBody, read_body
from oneapi.relay.errors import scrub
from oneapi.relay.incoming import Incoming
from oneapi.relay.modes import CHAT
from oneapi.relay.upstream import UpstreamTimeout, UpstreamUnreachable, send, session

log = logging.getLogger(__name__)


def pick_test_model(channel, wanted):
    """The asked-for model if the channel serves it (exactly), else the channel's first model."""
    if wanted and wanted in channel.models:
        return wanted
    return channel.models[0] if channel.models else (wanted or "gpt-3.5-turbo")


def test_channel(channel, wanted_model=""):
    """One small chat completion through the channel. Returns (ok, message, seconds, model) and records the
    response time and a test log row."""
    config = current_app.config
    model = pick_test_model(channel, wanted_model)
    body = {"model": model, "messages": [{"role": "user", "content": config["TEST_PROMPT"]}], "max_tokens": 64}
    raw = json.dumps(body).encode()
    prepared = adaptors.for_channel(channel.type).prepare(channel, CHAT.path, Incoming(raw, body, model=model), {}, {})
    started = time.monotonic()
    ok, message = False, ""
    try:
        response = send(prepared.url, prepared.headers, prepared.body, connect_timeout=config["RELAY_CONNECT_TIMEOUT"],
                        idle_timeout=min(config["RELAY_IDLE_TIMEOUT"] or 60, 60),
                        proxy=channel.config.get("proxy") or config["RELAY_PROXY"])
        data = read_body(response, 4 * 1024 * 1024) or b""
        response.close()
        parsed = json.loads(data) if data else None
        if response.status_code == 200 and isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict):
            content = ((parsed.get("choices") or [{}])[0].get("message") or {}).get("content")
            ok, message = isinstance(content, str), content if isinstance(content, str) else "no message in the answer"
        else:
            error = parsed.get("error") if isinstance(parsed, dict) else None
            detail = error.get("message") if isinstance(error, dict) else f"status {response.status_code}"
            message = f"status {response.status_code}: {detail}"
    except (UpstreamTimeout, UpstreamUnreachable, BrokenBody) as error:
        message = f"request failed: {type(error).__name__}: {error}"
    except ValueError:
        message = "the answer is not JSON"
    seconds = time.monotonic() - started
    message = scrub(message, (channel.key,))
    now = int(time.time())
    db.session.execute(update(Channel).where(Channel.id == channel.id).values(
        test_time=now, response_time=int(seconds * 1000) if ok else 0))
    db.session.add(Log(type=LogType.TEST, channel_id=channel.id, model_name=model, created_at=now,
                       elapsed_time=int(seconds * 1000),
                       content=f"channel {channel.name} test {'succeeded' if ok else 'failed'}: {message[:500]}"))
    db.session.commit()
    return ok, message, seconds, model


class BalanceError(Exception):
    pass


def _get(url, headers, timeout=15):
    response = session().get(url, headers=headers, timeout=timeout, allow_redirects=False)
    if response.status_code != 200:
        raise BalanceError(f"the balance query answered status {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise BalanceError("the balance answer is not JSON") from None


def _openai_balance(base, key):
    headers = {"Authorization": f"Bearer {key}"}
    subscription = _get(f"{base}/v1/dashboard/billing/subscription", headers)
    today = date.today()
    start = today.replace(day=1) if subscription.get("has_payment_method") else today - timedelta(days=100)
    usage = _get(f"{base}/v1/dashboard/billing/usage?start_date={start}&end_date={today}", headers)
    return float(subscription.get("hard_limit_usd", 0)) - float(usage.get("total_usage", 0)) / 100


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BalanceError(f"the balance answer has no {what}") from None


def _credit_grants(field_name):
    def read(base, key):
        return _number(_get(f"{base}/dashboard/billing/credit_grants", {"Authorization": f"Bearer {key}"})
                       .get(field_name), field_name)

    return read


def _aiproxy(base, key):
    return _number((_get(f"{base}/api/report/getUserOverview", {"Api-Key": key}).get("data") or {}).get("totalPoints"),
                   "totalPoints")


def _openrouter(base, key):
    data = _get(f"{base}/v1/credits", {"Authorization": f"Bearer {key}"}).get("data") or {}
    return _number(data.get("total_credits"), "total_credits") - _number(data.get("total_usage"), "total_usage")


def _deepseek(base, key):
    infos = _get(f"{base}/user/balance", {"Authorization": f"Bearer {key}"}).get("balance_infos") or []
    return _number(next((i.get("total_balance") for i in infos if i.get("currency") == "CNY"), None), "CNY balance")


def _siliconflow(base, key):
    data = _get(f"{base}/v1/user/info", {"Authorization": f"Bearer {key}"}).get("data") or {}
    return _number(data.get("totalBalance"), "totalBalance")


# type id → how to read its balance; the base is the channel's base URL or the type's default.
_BALANCES = {1: _openai_balance, 8: _openai_balance, 4: _credit_grants("total_available"),
             12: _credit_grants("total_remaining"), 13: _credit_grants("total_available"), 10: _aiproxy,
             20: _openrouter, 36: _deepseek, 44: _siliconflow}


def query_balance(channel):
    """Ask the provider for the channel's balance, store it, and return it (US$ or the provider's unit)."""
    reader = _BALANCES.get(channel.type)
    if reader is None:
        raise BalanceError("balance queries are not available for this channel type")
    base = (channel.base_url or channel_types.get(channel.type).base_url).rstrip("/")
    try:
        balance = reader(base, channel.key)
    except requests.RequestException as error:
        raise BalanceError(f"the balance query failed: {type(error).__name__}") from None
    db.session.execute(update(Channel).where(Channel.id == channel.id).values(
        balance=balance, balance_updated_time=int(time.time())))
    db.session.commit()
    return balance
