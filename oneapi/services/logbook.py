"""Log rows on their way to a separate log database (LOG_SQL_DSN). With one database nothing here is used.

With one database a log row is written in the transaction of the quota change it records (services/quota.py
for the relay; the ledger, user and probe services through the session). A second database cannot share
that transaction, so with LOG_SQL_DSN the row is written right after the quota's transaction commits, in a
short transaction of its own on the log engine. The quota is the money and the row is the record: a failure
of the log database never fails, repeats or holds up a quota change.

A row the log database did not take because it is away (unreachable, locked, its table missing) waits in
memory, in order, up to MAX_WAITING rows. While rows wait, new rows join them without touching the database,
so requests do not each wait for a dead server, and a background thread retries until every row is written.
A row the database refuses for itself (a value too long for its column, say) is dropped with an error.
Rows still waiting when the process ends are lost, and counted in the error log.
"""

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from itertools import islice

from flask import current_app, has_app_context
from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from oneapi.extensions import db
from oneapi.models.log import LOG_BIND, Log

log = logging.getLogger(__name__)
KEY = "oneapi_logbook"
MAX_WAITING = 20_000  # rows held while the log database is away, about 1 KB each
BATCH = 500
RETRY_SECONDS = (1, 2, 5, 10, 30)
_ADD = Log.__table__.insert()
_COLUMNS = [column for column in Log.__table__.columns if column.key != "id"]
_books = weakref.WeakSet()
_hooks = {"registered": False}


def attach(app):
    """After db.init_app(app): give the Log model's bind key its engine. Without LOG_SQL_DSN that is the main
    engine itself, not a second engine on the same database, so a session that writes a user and a log row
    keeps one connection and one transaction, exactly as without binds."""
    with app.app_context():
        engines = db.engines  # this app's own bind key -> engine mapping
        if LOG_BIND not in engines:
            engines[LOG_BIND] = engines[None]
            app.extensions[KEY] = None
            return
        app.extensions[KEY] = Logbook(engines[LOG_BIND])
    if not _hooks["registered"]:  # once per process, whatever number of apps (tests make many)
        _hooks["registered"] = True
        event.listen(Session, "before_flush", _hold_log_rows)
        event.listen(Session, "after_commit", _write_held_rows)
        event.listen(Session, "after_transaction_end", _forget_held_rows)


def current():
    """The app's Logbook when the logs have their own database, else None."""
    return current_app.extensions.get(KEY)


def full_row(row):
    """Every column of a log row (one shape for every row, so rows can be written as one batch)."""
    missing = {column.key: _default(column) for column in _COLUMNS if row.get(column.key) is None}
    return {**row, **missing} if missing else row


def _default(column):
    if column.default is None:
        return None
    return column.default.arg if column.default.is_scalar else column.default.arg(None)


class Logbook:
    def __init__(self, engine):
        self.engine = engine
        self._waiting = deque()
        self._lock = threading.Lock()
        self._retrying = False
        self._lost = 0
        _books.add(self)

    def write(self, row):
        """Write one log row now, or leave it to the retry thread if the log database is away. Never raises."""
        row = full_row(row)
        with self._lock:
            if self._retrying:
                self._keep(row)
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(_ADD, row)
        except Exception as error:
            if not _away(error):
                log.exception("the log database refused a log row; it is dropped: %s", row)
                return
            with self._lock:
                self._keep(row)
                start, self._retrying = not self._retrying, True
            if start:
                log.error("the log database failed (%s): log rows wait in memory and are retried", _short(error))
                threading.Thread(target=self._retry, daemon=True, name="oneapi-log-retry").start()

    def waiting(self):
        return len(self._waiting)

    def _keep(self, row):  # with the lock held
        if len(self._waiting) < MAX_WAITING:
            self._waiting.append(row)
            return
        self._lost += 1
        if self._lost in (1, 10, 100) or self._lost % 1000 == 0:
            log.error("%d log rows lost: more than %d were waiting for the log database", self._lost, MAX_WAITING)

    def _retry(self):
        attempt, size = 0, BATCH
        while True:
            time.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            while True:
                with self._lock:
                    rows = list(islice(self._waiting, size))  # only this thread removes rows
                    if not rows:
                        self._retrying = False
                        log.warning("the log database answers again: every waiting log row is written")
                        return
                try:
                    with self.engine.begin() as conn:
                        conn.execute(_ADD, rows)
                except Exception as error:
                    if _away(error):
                        attempt += 1
                        log.warning("the log database is still away (%s): %d log rows wait", _short(error),
                                    self.waiting())
                        break
                    if size > 1:
                        size = 1  # find the row it refuses, one at a time
                        continue
                    log.exception("the log database refused a log row; it is dropped: %s", rows[0])
                with self._lock:
                    for _ in rows:
                        self._waiting.popleft()


def _away(error):
    """The database's fault (unreachable, locked, no logs table), not the row's: the row is worth keeping."""
    return isinstance(error, DBAPIError | PoolTimeout | DisconnectionError) and not isinstance(
        error, DataError | IntegrityError)


def _short(error):
    return str(getattr(error, "orig", None) or error).splitlines()[0][:200]


# The session's log rows (top-ups, redemptions, admin changes, gifts, channel tests): with a separate log
# database they leave the flush and are written once the session's transaction has committed.

def _hold_log_rows(session, _context, _instances):
    book = current() if has_app_context() else None
    if book is None:
        return
    logs = [obj for obj in session.new if isinstance(obj, Log)]
    for obj in logs:
        session.expunge(obj)
        row = {column.key: getattr(obj, column.key) for column in _COLUMNS}
        session.info.setdefault(KEY, []).append((book, full_row(row)))


def _write_held_rows(session):
    for book, row in session.info.pop(KEY, ()):
        book.write(row)


def _forget_held_rows(session, transaction):
    if transaction.parent is None:  # the session's transaction ended without a commit (after_commit took them)
        session.info.pop(KEY, None)


@atexit.register
def _count_unwritten():
    for book in list(_books):
        if book.waiting():
            log.error("%d log rows were never written to the log database (it was away); they are lost",
                      book.waiting())
