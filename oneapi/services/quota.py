"""The only place quota moves on the relay path: reserve before the call, settle once after it.

Every change is a single-statement conditional UPDATE (`... WHERE quota >= :n`), so no balance ever
goes below zero, whatever races; no network I/O happens inside these transactions. Settlement deletes
the request's reservation row first and stops if it was already gone: a second `finally`, a retry or a
second worker can never bill the same request twice.
"""

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, case, create_engine, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from oneapi.extensions import db
from oneapi.models import Channel, Log, LogType, QuotaReservation, Token, User
from oneapi.models.token import TOKEN_ENABLED, TOKEN_EXHAUSTED
from oneapi.services import accounts, cache, logbook, options

_NO_SYNC = {"synchronize_session": False}  # plain SQL: no ORM-side evaluation of these statements


class QuotaExceeded(Exception):
    def __init__(self, who):
        super().__init__(who)
        self.who = who  # "token" (its quota), "uses" (its number of uses) or "user"


@dataclass
class Reservation:
    request_id: str
    user_id: int
    token_id: int
    amount: int
    limited_token: bool
    took_use: bool = False  # one of the token's limited uses was taken; given back if nothing is billed


# The hot-path statements, built once: Core on the tables, so each execution is a cached compile and one
# round trip, with none of the ORM's per-statement work (it was most of a request's CPU).
_tokens, _users, _channels = Token.__table__, User.__table__, Channel.__table__
_reservations, _logs = QuotaReservation.__table__, Log.__table__
_n, _id = bindparam("n"), bindparam("row_id")
_TAKE_TOKEN = (_tokens.update().where(_tokens.c.id == _id, _tokens.c.remain_quota >= _n)
               .values(remain_quota=_tokens.c.remain_quota - _n, accessed_time=bindparam("now")))
_TAKE_USER = _users.update().where(_users.c.id == _id, _users.c.quota >= _n).values(quota=_users.c.quota - _n)
_TAKE_USE = _tokens.update().where(_tokens.c.id == _id, _tokens.c.remain_times > 0).values(
    remain_times=_tokens.c.remain_times - 1)
_GIVE_BACK_USE = _tokens.update().where(_tokens.c.id == _id, _tokens.c.remain_times >= 0).values(
    remain_times=_tokens.c.remain_times + 1)
_HOLD = _reservations.insert()
_RELEASE = _reservations.delete().where(_reservations.c.request_id == bindparam("rid"))


def _adjusted(column, delta):
    """column - delta, never below zero: a shortfall past the reservation takes what is left."""
    return case((column >= delta, column - delta), else_=0)


_SETTLE_TOKEN = {  # by (limited token, delta > 0)
    (True, True): _tokens.update().where(_tokens.c.id == _id).values(
        remain_quota=_adjusted(_tokens.c.remain_quota, bindparam("delta")),
        used_quota=_tokens.c.used_quota + _n, accessed_time=bindparam("now")),
    (True, False): _tokens.update().where(_tokens.c.id == _id).values(
        remain_quota=_tokens.c.remain_quota + bindparam("refund"),
        used_quota=_tokens.c.used_quota + _n, accessed_time=bindparam("now")),
    (False, True): _tokens.update().where(_tokens.c.id == _id).values(
        used_quota=_tokens.c.used_quota + _n, accessed_time=bindparam("now")),
}
_SETTLE_TOKEN[(False, False)] = _SETTLE_TOKEN[(False, True)]
_SETTLE_USER = {  # by delta > 0
    True: _users.update().where(_users.c.id == _id).values(
        quota=_adjusted(_users.c.quota, bindparam("delta")), used_quota=_users.c.used_quota + _n,
        request_count=_users.c.request_count + bindparam("count")),
    False: _users.update().where(_users.c.id == _id).values(
        quota=_users.c.quota + bindparam("refund"), used_quota=_users.c.used_quota + _n,
        request_count=_users.c.request_count + bindparam("count")),
}
_CHARGE_CHANNEL = _channels.update().where(_channels.c.id == _id).values(used_quota=_channels.c.used_quota + _n)
_LOG_DEFAULTS = {"content": "", "username": "", "token_name": "", "model_name": "", "prompt_tokens": 0,
                 "completion_tokens": 0, "elapsed_time": 0, "is_stream": False, "system_prompt_reset": False,
                 "outcome": "", "usage_estimated": False}
_ADD_LOG = _logs.insert()
# (statement, dialect, parameter names): (SQL, bind names in order, fixed binds, bind processors, positional?),
# or False for a statement that goes the ordinary way
_as_sent = {}


def _run(conn, statement, params):
    """conn.execute(statement, params), with the SQL compiled once per statement, dialect and set of parameter
    names: the same SQL without SQLAlchemy's per-execution compile-cache lookup and parameter processing,
    which were half of a quota transaction's CPU (docs/performance.md). `conn` is a Connection (the SQL goes
    out with exec_driver_sql, with its events and errors) or a _Direct cursor (see _direct). A statement whose
    binds need a value from SQLAlchemy (a Python-side column default) goes the ordinary way."""
    key = (statement, conn.dialect.name, frozenset(params))
    plan = _as_sent.get(key)
    if plan is None:
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(params) if statement.is_insert else None)
        fixed = {name: value for name, value in compiled.params.items() if name not in params}
        # a literal the statement carries (CASE ... ELSE 0) is usable; None or a marker means SQLAlchemy fills it
        usable = all(type(value) in (int, float, str, bytes, bool) for value in fixed.values())
        names = compiled.positiontup if compiled.positiontup is not None else list(compiled.params)
        plan = _as_sent[key] = (str(compiled), names, fixed, dict(compiled._bind_processors),
                                compiled.positiontup is not None) if usable else False
    if plan is False:
        if type(conn) is _Direct:
            raise _NeedsCore
        return conn.execute(statement, params)
    sql, names, fixed, processors, positional = plan
    values = {**fixed, **params} if fixed else params
    if processors:
        values = {**values, **{name: process(values[name]) for name, process in processors.items() if name in values}}
    if positional:
        return conn.exec_driver_sql(sql, tuple(values[name] for name in names))
    return conn.exec_driver_sql(sql, {name: values[name] for name in names})


class _NeedsCore(Exception):
    """A statement cannot go out as plain SQL: run the transaction through SQLAlchemy's Connection instead."""


class _Direct:
    """The DBAPI cursor of a quota transaction, with the two things _run needs of a Connection."""

    __slots__ = ("dialect", "_cursor")

    def __init__(self, dialect, cursor):
        self.dialect, self._cursor = dialect, cursor

    def exec_driver_sql(self, sql, parameters):
        self._cursor.execute(sql, parameters)
        return self._cursor  # its rowcount is all the callers read


def _watched(quota_engine):
    """Whether anything observes this engine's statements (test counters, tracing, echo): then every quota
    statement goes through SQLAlchemy's Connection, which is what they hook."""
    dispatch, dialect = quota_engine.dispatch, quota_engine.dialect.dispatch
    return bool(quota_engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute
                or dispatch.before_execute or dispatch.after_execute or dispatch.begin or dispatch.commit
                or dispatch.rollback or dialect.handle_error or dialect.do_execute)


def _through_core(quota_engine, work):
    with quota_engine.begin() as conn:
        return work(conn)


def _direct(quota_engine, work):
    """One quota transaction on a pooled DBAPI connection: the statements, then COMMIT (the driver opens the
    transaction with the first statement, as under SQLAlchemy). Skips SQLAlchemy's Connection, Transaction and
    per-statement execution context, about a fifth of the transaction's CPU on SQLite. Driver errors come out
    as SQLAlchemy's (OperationalError, IntegrityError, ...), and a connection the database dropped is
    invalidated, not returned to the pool, as the Connection would."""
    dialect = quota_engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    raw = cursor = None
    try:
        raw = quota_engine.raw_connection()
        cursor = raw.cursor()
        result = work(_Direct(dialect, cursor))
        raw.commit()
    except dbapi_error as error:
        lost = raw is not None and dialect.is_disconnect(error, raw.dbapi_connection, cursor)
        _abandon(raw, cursor, dbapi_error, lost)
        raise DBAPIError.instance(None, None, error, dbapi_error, connection_invalidated=lost,
                                  dialect=dialect) from error
    except BaseException as error:
        # an exit (a greenlet killed, a gevent Timeout) may have cut a conversation with the database in
        # half: that connection is not used again, as SQLAlchemy's Connection would not
        _abandon(raw, cursor, dbapi_error, not isinstance(error, Exception))
        raise
    _close_cursor(cursor, dbapi_error)
    # committed: back to the pool without the reset ROLLBACK a plain close() sends (a round trip on MySQL),
    # as SQLAlchemy's Connection does after a commit
    raw._close_special(transaction_reset=True)
    return result


def _close_cursor(cursor, dbapi_error):
    if cursor is not None:
        try:
            cursor.close()
        except dbapi_error:
            pass


def _abandon(raw, cursor, dbapi_error, lost):
    """Roll back and give the connection back, or invalidate it when it is lost or will not roll back. The
    cursor is closed first: an open statement would keep a closed SQLite connection, and its lock, alive."""
    _close_cursor(cursor, dbapi_error)
    if raw is None:
        return
    if not lost:
        try:
            raw.rollback()
        except Exception:
            lost = True
    if lost:
        raw.invalidate()
    else:
        raw.close()


# SQLite: a writer that finds the database locked by another process waits in sqlite3's busy handler, which
# sleeps in C and freezes the whole gevent worker (every stream and request on it) for 1 to 100 ms per try.
# The quota statements use an engine of their own that never waits in C (busy timeout 0) and instead retry
# here with a cooperative sleep, so the rest of the worker runs meanwhile. Other databases wait on a socket,
# which is cooperative already.
LOCK_WAIT_SECONDS = 5.0


def engine():
    main = db.engine
    if main.dialect.name != "sqlite":
        return main
    extensions = current_app.extensions
    quota_engine = extensions.get("oneapi_quota_engine")
    if quota_engine is None or quota_engine.url != main.url:
        quota_engine = extensions["oneapi_quota_engine"] = create_engine(
            main.url, connect_args={"timeout": 0}, pool_size=5, max_overflow=20, pool_timeout=10)
    return quota_engine


def dispose(app):
    quota_engine = app.extensions.pop("oneapi_quota_engine", None)
    if quota_engine is not None:
        quota_engine.dispose()


def _transaction(work):
    """Run `work(conn)` in one transaction; on SQLite, retry it while another process holds the lock."""
    quota_engine = engine()
    if quota_engine is db.engine:
        return _once(quota_engine, work)
    deadline, pause = time.monotonic() + LOCK_WAIT_SECONDS, 0.0005
    while True:
        try:
            return _once(quota_engine, work)
        except OperationalError as error:
            if "locked" not in str(error.orig) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # gevent's sleep under the server: the worker goes on with its other requests
        pause = min(pause * 2, 0.02)


def _once(quota_engine, work):
    if _watched(quota_engine):
        return _through_core(quota_engine, work)
    try:
        return _direct(quota_engine, work)
    except _NeedsCore:  # rolled back; every hot statement has a plan, so this is for a future one
        return _through_core(quota_engine, work)


def reserve(request_id, user_id, token_id, amount, limited_token, limited_uses=False):
    """Hold `amount` of the token's and the user's quota, and one of the token's uses when they are limited."""
    amount = max(int(amount), 0)
    now = int(time.time())

    def work(conn):  # one short transaction; rolled back whole if any limit is reached
        if limited_token and _run(conn, _TAKE_TOKEN, {"row_id": token_id, "n": amount, "now": now}).rowcount != 1:
            raise QuotaExceeded("token")
        if limited_uses and _run(conn, _TAKE_USE, {"row_id": token_id}).rowcount != 1:
            raise QuotaExceeded("uses")
        if _run(conn, _TAKE_USER, {"row_id": user_id, "n": amount}).rowcount != 1:
            raise QuotaExceeded("user")
        _run(conn, _HOLD, {"request_id": request_id, "user_id": user_id, "token_id": token_id,
                           "token_quota": amount if limited_token else 0, "user_quota": amount,
                           "token_uses": int(limited_uses), "created_at": now})

    _transaction(work)
    return Reservation(request_id, user_id, token_id, amount, limited_token, limited_uses)


def settle(reservation, quota, *, log=None, channel_id=0, count_request=True, give_back_use=False):
    """Replace the reservation by the real charge `quota` and write the consume log row, at most once.

    Returns False when this request was already settled. `log` holds the log row's fields. The row is part of
    the settlement's transaction, or, with a separate log database, written right after it commits.
    """
    quota = max(int(quota), 0)
    delta = quota - reservation.amount
    now = int(time.time())
    params = {"n": quota, "delta": delta, "refund": -delta, "now": now}
    row = None
    if log is not None and options.current().bool("LogConsumeEnabled"):
        row = {**_LOG_DEFAULTS, **log, "type": int(LogType.CONSUME), "user_id": reservation.user_id,
               "token_id": reservation.token_id, "channel_id": channel_id, "quota": quota,
               "request_id": reservation.request_id, "created_at": now}
    book = logbook.current() if row is not None else None

    def work(conn):
        if _run(conn, _RELEASE, {"rid": reservation.request_id}).rowcount != 1:
            return False  # already settled: by another finally, a retry, or the stale-reservation sweep
        _run(conn, _SETTLE_TOKEN[(reservation.limited_token, delta > 0)], {**params, "row_id": reservation.token_id})
        _run(conn, _SETTLE_USER[delta > 0], {**params, "row_id": reservation.user_id, "count": int(count_request)})
        if channel_id and quota:
            _run(conn, _CHARGE_CHANNEL, {"row_id": channel_id, "n": quota})
        if give_back_use and reservation.took_use:
            _run(conn, _GIVE_BACK_USE, {"row_id": reservation.token_id})
        if row is not None and book is None:
            _run(conn, _ADD_LOG, row)
        return True

    if not _transaction(work):
        return False
    if book is not None:
        book.write(row)  # never raises: the quota above is settled whatever the log database does
    return True


def token_exhausted(token_id):
    """After a refused reservation: if the token has no quota or no uses left, mark it exhausted (status 4,
    as the original does) so it is refused at authentication from now on. Returns whether it is exhausted."""
    row = db.session.execute(select(Token.key_hash, Token.remain_quota, Token.unlimited_quota, Token.remain_times)
                             .where(Token.id == token_id)).first()
    if row is None or ((row.unlimited_quota or row.remain_quota > 0) and row.remain_times != 0):
        db.session.rollback()
        return False
    db.session.execute(update(Token).where(Token.id == token_id, Token.status == TOKEN_ENABLED)
                       .values(status=TOKEN_EXHAUSTED), execution_options=_NO_SYNC)
    cache.publish(accounts.token_topic(row.key_hash))
    db.session.commit()
    return True


def refund(reservation):
    """Give the whole reservation back (the request failed before anything billable happened)."""
    return settle(reservation, 0, log=None, count_request=False, give_back_use=True)


def refund_stale(max_age_seconds):
    """Refund reservations older than `max_age_seconds`: left behind by a process that died mid-request.
    Returns how many were refunded. Settlement's exactly-once guard makes this safe beside live requests."""
    cutoff = int(time.time()) - max_age_seconds
    rows = db.session.scalars(select(QuotaReservation).where(QuotaReservation.created_at < cutoff)).all()
    stale = [Reservation(r.request_id, r.user_id, r.token_id, r.user_quota, r.token_quota > 0, r.token_uses > 0)
             for r in rows]
    db.session.rollback()
    return sum(1 for reservation in stale if refund(reservation))
