"""The relay path in the steady state: no database reads, and two short write transactions per request
(the reservation; the settlement with its log row)."""

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


def test_on_sqlite_a_locked_database_is_waited_for_cooperatively(app, root, monkeypatch):
    """Another process holding SQLite's write lock: the quota transaction retries with a (gevent-friendly)
    sleep instead of freezing the worker in sqlite3's C busy handler, succeeds once the lock is gone, and
    gives up with the database's error after LOCK_WAIT_SECONDS."""
    import sqlite3
    import threading

    import pytest
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
