"""Background jobs of the master nodes (slave nodes run none):

- every CHANNEL_TEST_FREQUENCY minutes (0 = never), re-test the channels the system disabled and re-enable
  the ones that answer (AutomaticEnableChannelEnabled); never the ones an admin disabled;
- every minute, mail the users whose quota fell below QuotaRemindThreshold (services/reminders.py);
- every 10 minutes, refund quota reservations older than 6 hours: a process that died mid-request, or a
  settlement the database refused every time (the start-up sweep alone would wait for a restart).

Every worker of every master node runs the loop, but a lease row per job, claimed with a conditional UPDATE,
lets only one of them do each round."""

import logging
import os
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from oneapi.extensions import db
from oneapi.models import Channel, Option
from oneapi.models.channel import CHANNEL_AUTO_DISABLED, CHANNEL_ENABLED

log = logging.getLogger(__name__)
LEASE = "_ChannelTestLease"
TICK = 30
_started = {"pid": None}


def jobs(app):
    """(name, lease option key, period in seconds, function) of the jobs this node runs."""
    from oneapi.bootstrap import STALE_RESERVATION_SECONDS
    from oneapi.services import quota, reminders

    found = [("quota reminders", "_QuotaReminderLease", 60, reminders.remind_low_quota),
             ("stale reservations", "_StaleReservationLease", 600,
              lambda: quota.refund_stale(STALE_RESERVATION_SECONDS))]
    if app.config["CHANNEL_TEST_FREQUENCY"] > 0:
        found.append(("channel tests", LEASE, app.config["CHANNEL_TEST_FREQUENCY"] * 60, retest_disabled))
    return found


def ensure_started(app):
    if app.config["NODE_TYPE"] == "slave" or app.testing or _started["pid"] == os.getpid():
        return
    _started["pid"] = os.getpid()
    threading.Thread(target=_loop, args=(app,), daemon=True, name="oneapi-jobs").start()


def _loop(app):
    due = {}
    while True:
        time.sleep(TICK)
        for name, lease, period, function in jobs(app):
            if time.monotonic() < due.get(name, 0):
                continue
            due[name] = time.monotonic() + min(period, TICK * 2)
            try:
                with app.app_context():
                    if claim(period, lease):
                        function()
            except Exception:
                log.exception("the background job %r failed", name)


def claim(period, lease=LEASE):
    """Take this round's lease; False if another worker or node took it less than `period` ago."""
    now = int(time.time())
    if db.session.get(Option, lease) is None:
        try:
            db.session.add(Option(key=lease, value="0"))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
    claimed = db.session.execute(update(Option).where(Option.key == lease, Option.value <= str(now - period))
                                 .values(value=str(now))).rowcount
    db.session.commit()
    return claimed == 1


def retest_disabled():
    """Test every channel the system disabled; re-enable those that answer when the option allows."""
    from oneapi.services import health, options, probes, routing

    enable = options.current().bool("AutomaticEnableChannelEnabled")
    ids = list(db.session.scalars(select(Channel.id).where(Channel.status == CHANNEL_AUTO_DISABLED)))
    table = routing.table()
    for channel_id in ids:
        info = table.channel(channel_id)
        if info is None:
            continue
        ok, message, seconds, _ = probes.test_channel(info)
        if ok and enable:
            health.set_status(channel_id, CHANNEL_ENABLED, f"re-enabled automatically: a test answered in {seconds:.1f} s",
                              only_if=CHANNEL_AUTO_DISABLED)
    return len(ids)
