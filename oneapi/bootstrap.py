"""First start: apply the migrations (and create the log database's table, with LOG_SQL_DSN), then create
root (spec §3.1) if there are no users yet."""

import logging
import time

from flask import current_app
from sqlalchemy import Column, func, inspect, literal, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from oneapi.config import DEFAULT_ROOT_PASSWORD
from oneapi.extensions import db
from oneapi.models import Log, Token, User
from oneapi.models.user import ROLE_ROOT, hash_secret
from oneapi.services import accounts, logbook, quota

log = logging.getLogger(__name__)
ROOT_QUOTA = 500_000_000_000_000
STALE_RESERVATION_SECONDS = 6 * 3600  # longer than any request can run


def wait_for_database(seconds=60, engine=None):
    """Retry the first connection for a while: a database started beside us may not be up yet."""
    engine = engine or db.engine
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except OperationalError as error:
            where = engine.url.render_as_string(hide_password=True)
            if time.monotonic() > deadline:
                raise SystemExit(f"cannot connect to the database at {where}: {error.orig}") from None
            log.warning("waiting for the database at %s: %s", where, error.orig)
            time.sleep(2)


def prepare():
    """Run inside an app context: migrate, create root, warn about the default password."""
    wait_for_database()
    from flask_migrate import upgrade  # Alembic: ~10 MB, loaded only where migrations run

    upgrade(directory=current_app.extensions["migrate"].directory)
    prepare_log_database()
    create_root_if_needed()
    refunded = quota.refund_stale(STALE_RESERVATION_SECONDS)
    if refunded:
        log.warning("refunded %d quota reservations left behind by a stopped process", refunded)
    if accounts.root_must_change_password():
        log.warning("root still has the default password %r: /api and the pages stay locked until it is "
                    "changed (log in, then PUT /api/user/self with a new password)", DEFAULT_ROOT_PASSWORD)


def prepare_log_database():
    """With LOG_SQL_DSN: the logs table in the log database follows the Log model, as the original's GORM
    AutoMigrate does: created when missing, and given the columns and indexes a newer version added. Nothing
    is ever dropped or changed there; the main database's own logs table stays under the migrations."""
    book = logbook.current()
    if book is None:
        return
    engine, table = book.engine, Log.__table__
    wait_for_database(engine=engine)
    table.create(engine, checkfirst=True)
    inspector = inspect(engine)
    present = {column["name"] for column in inspector.get_columns(table.name)}
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as conn:
        operations = Operations(MigrationContext.configure(conn))
        for column in table.columns:
            if column.name not in present:
                operations.add_column(table.name, _addable(column))
                log.info("added the column logs.%s to the log database", column.name)
    indexes = {index["name"] for index in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(engine)


def _addable(column):
    """A new column for a table that has rows: NOT NULL with its scalar default, else nullable."""
    default = column.default.arg if column.default is not None and column.default.is_scalar else None
    if default is None:
        return Column(column.name, column.type, nullable=True)
    return Column(column.name, column.type, nullable=False, server_default=literal(default, column.type))


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
