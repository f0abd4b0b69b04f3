"""First start: apply the migrations, then create root (spec §3.1) if there are no users yet."""

import logging
import time

from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from oneapi.config import DEFAULT_ROOT_PASSWORD
from oneapi.extensions import db
from oneapi.models import Token, User
from oneapi.models.user import ROLE_ROOT, hash_secret
from oneapi.services import accounts, quota

log = logging.getLogger(__name__)
ROOT_QUOTA = 500_000_000_000_000
STALE_RESERVATION_SECONDS = 6 * 3600  # longer than any request can run


def wait_for_database(seconds=60):
    """Retry the first connection for a while: a database started beside us may not be up yet."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            db.session.execute(text("SELECT 1"))
            db.session.rollback()
            return
        except OperationalError as error:
            db.session.rollback()
            where = db.engine.url.render_as_string(hide_password=True)
            if time.monotonic() > deadline:
                raise SystemExit(f"cannot connect to the database at {where}: {error.orig}") from None
            log.warning("waiting for the database at %s: %s", where, error.orig)
            time.sleep(2)


def prepare():
    """Run inside an app context: migrate, create root, warn about the default password."""
    wait_for_database()
    upgrade(directory=current_app.extensions["migrate"].directory)
    create_root_if_needed()
    refunded = quota.refund_stale(STALE_RESERVATION_SECONDS)
    if refunded:
        log.warning("refunded %d quota reservations left behind by a stopped process", refunded)
    if accounts.root_must_change_password():
        log.warning("root still has the default password %r: /api and the pages stay locked until it is "
                    "changed (log in, then PUT /api/user/self with a new password)", DEFAULT_ROOT_PASSWORD)


def create_root_if_needed():
    if db.session.scalar(select(func.count(User.id))):
        return
    config = current_app.config
    password = config["INITIAL_ROOT_PASSWORD"] or DEFAULT_ROOT_PASSWORD
    root = User(username="root", display_name="Root User", role=ROLE_ROOT, quota=ROOT_QUOTA,
                must_change_password=password == DEFAULT_ROOT_PASSWORD)
    root.set_password(password)
    if config["INITIAL_ROOT_ACCESS_TOKEN"]:
        root.access_token = hash_secret(config["INITIAL_ROOT_ACCESS_TOKEN"])
    db.session.add(root)
    try:
        db.session.flush()
        if config["INITIAL_ROOT_TOKEN"]:
            key = config["INITIAL_ROOT_TOKEN"].removeprefix("sk-")
            if "-" in key:
                raise SystemExit("INITIAL_ROOT_TOKEN must not contain '-' (it would read as a pinned channel)")
            token = Token(user_id=root.id, name="Initial Root Token", unlimited_quota=True, expired_time=-1)
            token.set_key(key)
            db.session.add(token)
        db.session.commit()
    except IntegrityError:  # another worker created root at the same moment
        db.session.rollback()
        return
    log.info("created the root user")
