"""The low-quota mail (spec §4.3, QuotaRemindThreshold): a user whose balance falls below the threshold gets
one mail, and one more only after the balance has been back above it.

The original checked at every reservation, on the request path, and mailed at every request while the
balance stayed low. Here a background job (services/scheduler.py, once a minute, one worker of the master
nodes) looks for users below the threshold not yet reminded, so a relay request pays nothing for it. The
`quota_reminded` flag on the user remembers the mail was sent; it clears once the balance is back above.
"""

import logging
import smtplib
import ssl

from sqlalchemy import select, update

from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import STATUS_ENABLED
from oneapi.services import mail, options

log = logging.getLogger(__name__)
BATCH = 100


def remind_low_quota():
    """Mail the users who went below the threshold since the last round; returns how many were mailed."""
    snapshot = options.current()
    threshold = snapshot.int("QuotaRemindThreshold")
    if threshold <= 0 or not mail.configured():
        return 0
    db.session.execute(update(User).where(User.quota_reminded.is_(True), User.quota >= threshold)
                       .values(quota_reminded=False))
    db.session.commit()
    rows = db.session.execute(
        select(User.id, User.username, User.email, User.quota)
        .where(User.quota < threshold, User.quota_reminded.is_(False), User.status == STATUS_ENABLED,
               User.email != "", User.used_quota > 0)
        .order_by(User.id).limit(BATCH)).all()
    db.session.rollback()
    sent = 0
    for row in rows:
        # Mark first: a mail server that accepts and then times out must not make us mail again each minute.
        marked = db.session.execute(update(User).where(User.id == row.id, User.quota_reminded.is_(False))
                                    .values(quota_reminded=True)).rowcount
        db.session.commit()
        if marked != 1:
            continue
        try:
            mail.send([row.email], *_compose(snapshot, row, threshold))
            sent += 1
        except (mail.MailError, smtplib.SMTPException, ssl.SSLError, OSError) as error:
            log.warning("the low-quota mail to user %s could not be sent: %s", row.id, type(error).__name__)
    return sent


def _compose(snapshot, row, threshold):
    site = snapshot.get("SystemName") or "One API"
    per_unit = max(snapshot.int("QuotaPerUnit"), 1)
    left = f"${row.quota / per_unit:.4f}" if snapshot.bool("DisplayInCurrencyEnabled") else f"{row.quota} quota"
    address = snapshot.get("ServerAddress").strip().rstrip("/")
    top_up = f"\nTop up at {address}/topup" if address else ""
    subject = f"{site}: your quota is running low" if row.quota > 0 else f"{site}: your quota is used up"
    body = (f"Hello {row.username},\n\nyour balance on {site} is {left}, below the reminder threshold of "
            f"{threshold} quota. Requests stop when it reaches zero.{top_up}\n")
    return subject, body
