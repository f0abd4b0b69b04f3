"""Background jobs: every CHANNEL_TEST_FREQUENCY minutes, re-test the channels the system disabled and
re-enable the ones that answer (AutomaticEnableChannelEnabled); never the ones an admin disabled.

Every worker of every master node runs the loop, but a lease row claimed with a conditional UPDATE lets
only one of them do each round. Slave nodes run no background jobs."""

import logging
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from oneapi.extensions import db
from oneapi.models import Channel, Option
from oneapi.models.channel import CHANNEL_AUTO_DISABLED, CHANNEL_ENABLED

log = logging.getLogger(__name__)
LEASE = "_ChannelTestLease"
_started = {"pid": None}


def ensure_started(app):
    minutes = app.config["CHANNEL_TEST_FREQUENCY"]
    if minutes <= 0 or app.config["NODE_TYPE"] == "slave" or app.testing:
        return
    import os

    if _started["pid"] == os.getpid():
        return
    _started["pid"] = os.getpid()
    threading.Thread(target=_loop, args=(app, minutes * 60), daemon=True, name="oneapi-channel-tests").start()


def _loop(app, period):
    while True:
        time.sleep(min(period, 30))
        try:
            with app.app_context():
                if claim(period):
                    retest_disabled()
        except Exception:
            log.exception("scheduled channel tests failed")


def claim(period):
    """Take this round's lease; False if another worker or node took it less than `period` ago."""
    now = int(time.time())
    if db.session.get(Option, LEASE) is None:
        try:
            db.session.add(Option(key=LEASE, value="0"))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
    claimed = db.session.execute(update(Option).where(Option.key == LEASE, Option.value <= str(now - period))
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
