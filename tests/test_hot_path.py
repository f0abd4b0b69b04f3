"""The relay path in the steady state: no database reads, and two short write transactions per request
(the reservation; the settlement with its log row)."""

import time

import pytest
from sqlalchemy import event

from oneapi.extensions import db
from oneapi.services import quota
from tests.conftest import add_channel, add_token

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def record_sql(app):
    statements, commits = [], []
    with app.app_context():
        engines = {db.engine, quota.engine()}  # on SQLite the quota statements have an engine of their own

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        statements.append(words[0].upper() + " " + words[1 if words[0].upper() == "UPDATE" else 2].strip('"`'))

    def on_commit(conn):
        commits.append(1)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "commit", on_commit)

    def stop():
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)
            event.remove(engine, "commit", on_commit)

    return statements, commits, stop


def test_steady_state_relay_reads_nothing_and_writes_twice(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root, unlimited_quota=False, remain_quota=10_000)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    app.config["CACHE_SYNC_INTERVAL"] = 3600  # the once-a-second change poll is not part of a request
    for _ in range(2):  # warm the caches: token, user, routing table, options
        assert root.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    for stream in (False, True):
        statements, commits, stop = record_sql(app)
        try:
            response = root.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers)
            assert response.status_code == 200 and response.data
        finally:
            stop()
        assert not [s for s in statements if s.startswith("SELECT")], statements
        assert len(commits) == 2, (commits, statements)
        assert statements == [
            "UPDATE tokens", "UPDATE users", "INSERT quota_reservations",
            "DELETE quota_reservations", "UPDATE tokens", "UPDATE users", "UPDATE channels", "INSERT logs",
        ], statements
    with app.app_context():
        dialect = quota.engine().dialect.name
    plans = {key[0]: plan for key, plan in quota._as_sent.items() if key[1] == dialect}
    # every statement above went out as SQL compiled once, none the ordinary (slower) way
    assert len(plans) >= 8 and all(plan is not False for plan in plans.values()), plans


def test_a_steady_state_relay_request_makes_no_orm_session(app, root, upstream, monkeypatch):
    """Everything the relay reads is cached and the quota service uses its own connections: making a session
    only to close it again was 2-3 % of a relay worker's samples in py-spy (docs/performance.md)."""
    add_channel(root, upstream.url)
    key = add_token(root, unlimited_quota=False, remain_quota=10_000)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    app.config["CACHE_SYNC_INTERVAL"] = 3600
    assert root.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    made = []
    real = db.session.registry.createfunc
    monkeypatch.setattr(db.session.registry, "createfunc", lambda: made.append(1) or real())
    for stream in (False, True):
        response = root.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers)
        assert response.status_code == 200 and response.data
    assert made == []
    app.config["CACHE_SYNC_INTERVAL"] = 0  # a request that must read (the change poll) still gets its session
    assert root.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    assert made


def test_request_ids_keep_the_originals_shape_across_seconds(monkeypatch):
    from oneapi import plumbing

    now = [1_764_900_000 * 10**9 + 999_999_999]
    monkeypatch.setattr(plumbing.time, "time_ns", lambda: now[0])
    first = plumbing.new_request_id()
    now[0] += 1
    second = plumbing.new_request_id()
    for request_id, at in ((first, 1_764_900_000), (second, 1_764_900_001)):
        assert len(request_id) == 31 and request_id.isdigit()
        assert request_id[:14] == time.strftime("%Y%m%d%H%M%S", time.localtime(at))
    assert first[14:23] == "999999999" and second[14:23] == "000000000"


def test_unwatched_quota_transactions_go_straight_to_the_driver_with_the_same_statements(app, root, upstream,
                                                                                          monkeypatch):
    """With nothing listening on the engine (as in production), each quota transaction runs on a pooled DBAPI
    connection (quota._direct): the same eight statements in two commits, and the same balances."""
    import sqlite3

    from sqlalchemy import event as sa_event

    add_channel(root, upstream.url)
    token = add_token(root, unlimited_quota=False, remain_quota=10_000)
    headers = {"Authorization": f"Bearer {token['key']}"}
    app.config["CACHE_SYNC_INTERVAL"] = 3600
    assert root.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200  # warm
    with app.app_context():
        quota_engine = quota.engine()
        assert not quota._watched(quota_engine)
    direct = []
    real_direct = quota._direct
    monkeypatch.setattr(quota, "_direct", lambda *args: (direct.append(1), real_direct(*args))[1])
    traced = []

    def trace(dbapi_connection, record, proxy):  # a pool event: it does not make the engine "watched"
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(traced.append)

    def untrace(dbapi_connection, record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(None)

    sa_event.listen(quota_engine.pool, "checkout", trace)
    sa_event.listen(quota_engine.pool, "checkin", untrace)
    try:
        with app.app_context():
            before = db.session.execute(db.text("SELECT remain_quota, used_quota FROM tokens WHERE id = :i"),
                                        {"i": token["id"]}).one()
            db.session.rollback()
        answer = root.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert answer.status_code == 200
    finally:
        sa_event.remove(quota_engine.pool, "checkout", trace)
        sa_event.remove(quota_engine.pool, "checkin", untrace)
    assert len(direct) == 2  # the reservation and the settlement
    with app.app_context():
        after = db.session.execute(db.text("SELECT remain_quota, used_quota FROM tokens WHERE id = :i"),
                                   {"i": token["id"]}).one()
        charged = db.session.execute(db.text("SELECT quota FROM logs WHERE token_id = :i ORDER BY id DESC"),
                                     {"i": token["id"]}).scalar()
        held = db.session.execute(db.text("SELECT COUNT(*) FROM quota_reservations")).scalar()
        db.session.rollback()
    assert charged > 0 and after.used_quota - before.used_quota == charged
    assert before.remain_quota - after.remain_quota == charged and held == 0
    if quota_engine.dialect.name == "sqlite":
        words = [" ".join(sql.split()[:3]).upper() for sql in traced]
        assert not [w for w in words if w.startswith("SELECT")], traced
        assert [w.split()[0] for w in words if w.split()[0] in ("UPDATE", "INSERT", "DELETE", "COMMIT")] == [
            "UPDATE", "UPDATE", "INSERT", "COMMIT", "DELETE", "UPDATE", "UPDATE", "UPDATE", "INSERT", "COMMIT"], traced


def test_a_driver_error_in_a_direct_quota_transaction_is_sqlalchemys_and_loses_nothing(app):
    """A statement the database refuses: SQLAlchemy's exception class with the driver's error inside, the
    transaction rolled back whole, the connection back in the pool; a dropped connection is invalidated."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.exc import DBAPIError

    with app.app_context():
        quota_engine = quota.engine()
        first = quota.reserve("req-direct-1", 1, 1, 10, limited_token=False)
        with pytest.raises(DBAPIError) as caught:  # the same request id again: the reservation row exists
            quota.reserve("req-direct-1", 1, 1, 10, limited_token=False)
        assert isinstance(caught.value.orig, quota_engine.dialect.loaded_dbapi.Error)
        assert quota_engine.pool.checkedout() == 0
        quota_now = db.session.execute(db.text("SELECT quota FROM users WHERE id = 1")).scalar()
        db.session.rollback()
        assert quota.refund(first) is True
        assert db.session.execute(db.text("SELECT quota FROM users WHERE id = 1")).scalar() == quota_now + 10
        db.session.rollback()

        invalidated = []
        sa_event.listen(quota_engine.pool, "invalidate", lambda *args: invalidated.append(1))
        second = quota.reserve("req-direct-2", 1, 1, 10, limited_token=False)
        quota_engine.dialect.is_disconnect = lambda *args: True  # as if the database had dropped the connection
        try:
            with pytest.raises(DBAPIError) as caught:
                quota.reserve("req-direct-2", 1, 1, 10, limited_token=False)
        finally:
            del quota_engine.dialect.is_disconnect
        assert caught.value.connection_invalidated and invalidated == [1]
        assert quota.refund(second) is True  # the pool opens a fresh connection

        class Killed(BaseException):  # as gevent's GreenletExit or Timeout: not an Exception
            pass

        def cut_short(conn):
            quota._run(conn, quota._TAKE_USER, {"row_id": 1, "n": 10})
            raise Killed()

        with pytest.raises(Killed):
            quota._transaction(cut_short)
        assert invalidated == [1, 1]  # the connection is dropped, not rolled back and reused
        assert db.session.execute(db.text("SELECT quota FROM users WHERE id = 1")).scalar() == quota_now + 10
        db.session.rollback()


def test_on_sqlite_a_locked_database_is_waited_for_cooperatively(app, root, monkeypatch):
    """Another process holding SQLite's write lock: the quota transaction retries with a (gevent-friendly)
    sleep instead of freezing the worker in sqlite3's C busy handler, succeeds once the lock is gone, and
    gives up with the database's error after LOCK_WAIT_SECONDS."""
    import sqlite3
    import threading

    from sqlalchemy.exc import OperationalError

    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only")
        path = db.engine.url.database
    sleeps = []
    real_sleep = quota.time.sleep
    monkeypatch.setattr(quota.time, "sleep", lambda seconds: (sleeps.append(seconds), real_sleep(seconds)))
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    threading.Timer(0.3, other.execute, args=("COMMIT",)).start()
    with app.app_context():
        reservation = quota.reserve("req-locked-1", 1, 1, 10, limited_token=False)
        assert quota.refund(reservation) is True
    assert len(sleeps) >= 3 and max(sleeps) <= 0.02  # it waited in small cooperative steps

    other.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(quota, "LOCK_WAIT_SECONDS", 0.2)
    try:
        with app.app_context(), pytest.raises(OperationalError, match="locked"):
            quota.reserve("req-locked-2", 1, 1, 10, limited_token=False)
    finally:
        other.execute("COMMIT")
        other.close()


def test_sqlite_wal_is_checkpointed_in_the_background(tmp_path, monkeypatch):
    """The serving process's commits leave the WAL alone; a background thread copies it into the database."""
    import os
    import sqlite3
    import time
    from types import SimpleNamespace

    from oneapi import walcheckpoint

    path = str(tmp_path / "wal.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 400)
    before = os.path.getsize(path)
    monkeypatch.setattr(walcheckpoint, "INTERVAL", 0.05)
    walcheckpoint.ensure_started(SimpleNamespace(testing=False, config={"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"}))
    try:
        assert walcheckpoint.active()
        deadline = time.monotonic() + 5
        while os.path.getsize(path) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(path) > before + 100_000  # the rows moved from the WAL into the database file
    finally:
        walcheckpoint.stop()
        writer.close()
    assert not walcheckpoint.active()
