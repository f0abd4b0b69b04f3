"""The only place quota moves on the relay path: reserve before the call, settle once after it.

Every change is a single-statement conditional UPDATE (`... WHERE quota >= :n`), so no balance ever
goes below zero, whatever races; no network I/O happens inside these transactions. Settlement deletes
the request's reservation row first and stops if it was already gone: a second `finally`, a retry or a
second worker can never bill the same request twice.
"""

import time
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update

from oneapi.extensions import db
from oneapi.models import Channel, Log, LogType, QuotaReservation, Token, User
from oneapi.models.token import TOKEN_ENABLED, TOKEN_EXHAUSTED
from oneapi.services import accounts, cache, options

_NO_SYNC = {"synchronize_session": False}  # plain SQL: no ORM-side evaluation of these statements


class QuotaExceeded(Exception):
    def __init__(self, who):
        super().__init__(who)
        self.who = who  # "token" or "user"


@dataclass
class Reservation:
    request_id: str
    user_id: int
    token_id: int
    amount: int
    limited_token: bool


def reserve(request_id, user_id, token_id, amount, limited_token):
    amount = max(int(amount), 0)
    now = int(time.time())
    try:
        if limited_token:
            taken = db.session.execute(
                update(Token)
                .where(Token.id == token_id, Token.remain_quota >= amount)
                .values(remain_quota=Token.remain_quota - amount, accessed_time=now),
                execution_options=_NO_SYNC,
            ).rowcount
            if taken != 1:
                raise QuotaExceeded("token")
        taken = db.session.execute(
            update(User).where(User.id == user_id, User.quota >= amount).values(quota=User.quota - amount),
            execution_options=_NO_SYNC,
        ).rowcount
        if taken != 1:
            raise QuotaExceeded("user")
        db.session.add(QuotaReservation(
            request_id=request_id, user_id=user_id, token_id=token_id,
            token_quota=amount if limited_token else 0, user_quota=amount, created_at=now,
        ))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return Reservation(request_id, user_id, token_id, amount, limited_token)


def _adjust(column, delta):
    """column - delta, never below zero: a shortfall past the reservation takes what is left."""
    if delta <= 0:
        return column + (-delta)
    return case((column >= delta, column - delta), else_=0)


def settle(reservation, quota, *, log=None, channel_id=0, count_request=True):
    """Replace the reservation by the real charge `quota` and write the consume log row, at most once.

    Returns False when this request was already settled. `log` holds the log row's fields.
    """
    quota = max(int(quota), 0)
    delta = quota - reservation.amount
    now = int(time.time())
    try:
        gone = db.session.execute(
            delete(QuotaReservation).where(QuotaReservation.request_id == reservation.request_id),
            execution_options=_NO_SYNC,
        ).rowcount
        if gone != 1:
            db.session.rollback()
            return False
        token_values = {"used_quota": Token.used_quota + quota, "accessed_time": now}
        if reservation.limited_token:
            token_values["remain_quota"] = _adjust(Token.remain_quota, delta)
        db.session.execute(update(Token).where(Token.id == reservation.token_id).values(**token_values),
                           execution_options=_NO_SYNC)
        user_values = {"quota": _adjust(User.quota, delta), "used_quota": User.used_quota + quota}
        if count_request:
            user_values["request_count"] = User.request_count + 1
        db.session.execute(update(User).where(User.id == reservation.user_id).values(**user_values),
                           execution_options=_NO_SYNC)
        if channel_id and quota:
            db.session.execute(update(Channel).where(Channel.id == channel_id)
                               .values(used_quota=Channel.used_quota + quota), execution_options=_NO_SYNC)
        if log is not None and options.current().bool("LogConsumeEnabled"):
            db.session.add(Log(
                type=LogType.CONSUME, user_id=reservation.user_id, token_id=reservation.token_id,
                channel_id=channel_id, quota=quota, request_id=reservation.request_id, created_at=now, **log,
            ))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return True


def token_exhausted(token_id):
    """After a refused reservation: if the token has nothing left, mark it exhausted (status 4, as the
    original does) so it is refused at authentication from now on. Returns whether it is exhausted."""
    row = db.session.execute(select(Token.key_hash, Token.remain_quota, Token.unlimited_quota)
                             .where(Token.id == token_id)).first()
    if row is None or row.unlimited_quota or row.remain_quota > 0:
        db.session.rollback()
        return False
    db.session.execute(update(Token).where(Token.id == token_id, Token.status == TOKEN_ENABLED,
                                           Token.remain_quota <= 0).values(status=TOKEN_EXHAUSTED),
                       execution_options=_NO_SYNC)
    cache.publish(accounts.token_topic(row.key_hash))
    db.session.commit()
    return True


def refund(reservation):
    """Give the whole reservation back (the request failed before anything billable happened)."""
    return settle(reservation, 0, log=None, count_request=False)


def refund_stale(max_age_seconds):
    """Refund reservations older than `max_age_seconds`: left behind by a process that died mid-request.
    Returns how many were refunded. Settlement's exactly-once guard makes this safe beside live requests."""
    cutoff = int(time.time()) - max_age_seconds
    rows = db.session.scalars(select(QuotaReservation).where(QuotaReservation.created_at < cutoff)).all()
    stale = [Reservation(r.request_id, r.user_id, r.token_id, r.user_quota, r.token_quota > 0) for r in rows]
    db.session.rollback()
    return sum(1 for reservation in stale if refund(reservation))
