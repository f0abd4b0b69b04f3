"""Background jobs: the low-quota mail (QuotaRemindThreshold) through a real SMTP server on 127.0.0.1, once
per fall below the threshold; and the job list with one lease per job."""

import time

from sqlalchemy import update

from oneapi.extensions import db
from oneapi.models import User
from oneapi.services import reminders, scheduler
from tests.test_accounts import register, set_options, wait_for_mail
from tests.test_notify import smtp  # noqa: F401  (the SMTP server fixture)


def set_user(app, username, **values):
    with app.app_context():
        db.session.execute(update(User).where(User.username == username).values(**values))
        db.session.commit()


def run(app):
    with app.app_context():
        return reminders.remind_low_quota()


def test_one_mail_per_fall_below_the_threshold(app, root, smtp):  # noqa: F811
    inbox = smtp()
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=inbox.port, SMTPFrom="gw@example.test",
                QuotaRemindThreshold=1000, SystemName="Gateway", ServerAddress="https://gw.example.test")
    for name in ("alice", "bob", "carol", "dave"):
        assert register(app.test_client(), username=name)["success"]
    set_user(app, "alice", email="alice@example.test", quota=400, used_quota=600)  # fell below: mailed
    set_user(app, "bob", email="", quota=10, used_quota=5)  # no address
    set_user(app, "carol", email="carol@example.test", quota=10, used_quota=5, status=2)  # disabled
    set_user(app, "dave", email="dave@example.test", quota=10, used_quota=0)  # never used anything yet

    assert run(app) == 1
    message = wait_for_mail(inbox, 1)
    assert message["to"] == ["alice@example.test"]
    assert "running low" in message["message"]["Subject"] and "https://gw.example.test/topup" in message["body"]
    assert run(app) == 0  # still low: no second mail

    set_user(app, "alice", quota=5000)  # topped up
    assert run(app) == 0
    set_user(app, "alice", quota=0)  # and used up again
    assert run(app) == 1
    assert "used up" in wait_for_mail(inbox, 2)["message"]["Subject"]
    time.sleep(0.1)
    assert len(inbox.messages) == 2


def test_nothing_without_mail_or_threshold(app, root):
    assert register(app.test_client())["success"]
    set_user(app, "alice", email="alice@example.test", quota=1, used_quota=5)
    assert run(app) == 0  # SMTP not configured
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=1, QuotaRemindThreshold=0)
    assert run(app) == 0  # threshold 0: off


def test_a_mail_server_that_fails_does_not_mail_again_every_minute(app, root):
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=1, QuotaRemindThreshold=1000)  # nothing listens
    assert register(app.test_client())["success"]
    set_user(app, "alice", email="alice@example.test", quota=1, used_quota=5)
    assert run(app) == 0
    with app.app_context():
        assert db.session.get(User, 2).quota_reminded is True


def test_each_job_has_its_own_lease(app):
    app.config["CHANNEL_TEST_FREQUENCY"] = 5
    names = {name: (lease, period) for name, lease, period, _ in scheduler.jobs(app)}
    assert names == {"quota reminders": ("_QuotaReminderLease", 60),
                     "stale reservations": ("_StaleReservationLease", 600),
                     "channel tests": (scheduler.LEASE, 300)}
    with app.app_context():
        assert scheduler.claim(60, "_QuotaReminderLease") is True
        assert scheduler.claim(60, "_StaleReservationLease") is True  # another job: its own lease
        assert scheduler.claim(60, "_QuotaReminderLease") is False
    app.config["CHANNEL_TEST_FREQUENCY"] = 0
    assert "channel tests" not in {name for name, *_ in scheduler.jobs(app)}
