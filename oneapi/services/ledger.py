"""Quota that is not a relay charge: redemption codes, admin top-ups and edits. Each is one transaction of
conditional single-statement updates with its log row, so the ledger always adds up."""

import time

from sqlalchemy import select, update

from oneapi.envelope import MAX_BALANCE
from oneapi.extensions import db
from oneapi.models import Log, LogType, Redemption, User
from oneapi.models.redemption import REDEMPTION_ENABLED, REDEMPTION_USED

_NO_SYNC = {"synchronize_session": False}


class LedgerError(Exception):
    pass


def redeem(user_id, key):
    """Redeem a code for a user, exactly once however many try at the same moment. Returns the quota added."""
    now = int(time.time())
    try:
        taken = db.session.execute(
            update(Redemption).where(Redemption.key == key, Redemption.status == REDEMPTION_ENABLED)
            .values(status=REDEMPTION_USED, redeemed_time=now, redeemed_by=user_id), execution_options=_NO_SYNC,
        ).rowcount
        if taken != 1:
            raise LedgerError("this redemption code is invalid or has already been used")
        amount = db.session.scalar(select(Redemption.quota).where(Redemption.key == key))
        if db.session.execute(update(User).where(User.id == user_id, User.quota <= MAX_BALANCE - amount)
                              .values(quota=User.quota + amount), execution_options=_NO_SYNC).rowcount != 1:
            raise LedgerError(f"the balance would exceed the maximum of {MAX_BALANCE}")
        username = db.session.scalar(select(User.username).where(User.id == user_id))
        db.session.add(Log(type=LogType.TOPUP, user_id=user_id, username=username, quota=amount, created_at=now,
                           content=f"redeemed a code for {amount} quota"))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return amount


def top_up(user_id, amount, remark, log_type=LogType.TOPUP):
    """Add quota to a user (admin top-up, gifts). Returns False when there is no such user."""
    now = int(time.time())
    try:
        changed = db.session.execute(update(User).where(User.id == user_id, User.quota <= MAX_BALANCE - amount)
                                     .values(quota=User.quota + amount), execution_options=_NO_SYNC).rowcount
        if changed != 1:
            db.session.rollback()
            if db.session.get(User, user_id) is not None:
                raise LedgerError(f"the balance would exceed the maximum of {MAX_BALANCE}")
            return False
        username = db.session.scalar(select(User.username).where(User.id == user_id))
        db.session.add(Log(type=log_type, user_id=user_id, username=username, quota=amount, created_at=now,
                           content=remark))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return True
