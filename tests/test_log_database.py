"""LOG_SQL_DSN: the logs table in a database of its own. Consume rows, top-ups, redemptions, admin changes and
channel tests land there and nowhere else; the log API reads it; `flask setup` makes its schema; and a log
database that is away never fails, delays or repeats a relay request's bill.

The log database is a SQLite file here; with SQL_DSN on a server database, a second database on the same
server too (TEST_LOG_SQL_DSN names it, else `<main database>_logs` is made)."""

import os
import time

import pytest
from sqlalchemy import create_engine, event, func, inspect, select, text

from oneapi import create_app
from oneapi.bootstrap import create_root_if_needed, prepare_log_database
from oneapi.config import database_url
from oneapi.extensions import db
from oneapi.models import Log, LogType, Token, User
from oneapi.models.log import LOG_BIND
from oneapi.services import logbook, quota
from tests.conftest import add_channel, add_token, empty_tables

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
COST = 3  # gpt-4o-mini with the mock's usage (11 + 7): ceil((11 + 7 × 4) × 0.075)
UNREACHABLE = "postgres://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1: refused at once


def server_log_dsn(main_dsn):
    """A second database on the main database's server, made if missing."""
    if os.environ.get("TEST_LOG_SQL_DSN"):
        return os.environ["TEST_LOG_SQL_DSN"]
    base, _, name = main_dsn.rpartition("/")
    name, query = (name.split("?", 1) + [""])[:2]
    engine = create_engine(database_url(main_dsn, ""), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": f"{name}_logs"}).first():
                conn.execute(text(f'CREATE DATABASE "{name}_logs"'))
        else:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}_logs`"))
    engine.dispose()
    return f"{base}/{name}_logs" + (f"?{query}" if query else "")


def make_app(database, tmp_path, log_dsn):
    dsn, sqlite_path = database
    return create_app({
        "TESTING": True, "SQL_DSN": dsn, "SQLITE_PATH": sqlite_path, "DATA_DIR": str(tmp_path / "data"),
        "BCRYPT_ROUNDS": 4, "CACHE_SYNC_INTERVAL": 0, "INITIAL_ROOT_PASSWORD": "", "LOG_SQL_DSN": log_dsn,
    })


def dispose(app):
    with app.app_context():
        db.session.remove()
        for engine in set(db.engines.values()):
            engine.dispose()


@pytest.fixture(params=["sqlite", "server"])
def app(request, database, upstream, tmp_path, monkeypatch):
    """The conftest app, with its logs in a second database (and the same main database)."""
    if request.param == "server":
        if not database[0]:
            pytest.skip("needs SQL_DSN on a MySQL/MariaDB or PostgreSQL server")
        log_dsn = server_log_dsn(database[0])
    else:
        log_dsn = f"sqlite:///{tmp_path}/logs/one-api-logs.db"
    monkeypatch.setattr(logbook, "RETRY_SECONDS", (0.05,))
    upstream.reset()
    application = make_app(database, tmp_path, log_dsn)
    with application.app_context():
        Log.__table__.drop(logbook.current().engine, checkfirst=True)
        prepare_log_database()
        empty_tables()
        create_root_if_needed()
    yield application
    with application.app_context():
        logbook.current()._waiting.clear()  # lets a retry thread still running end
    dispose(application)


def main_log_count(app):
    """Rows in the main database's own logs table (the one used without LOG_SQL_DSN)."""
    with app.app_context():
        return db.session.execute(text("SELECT COUNT(*) FROM logs")).scalar_one()


def log_rows(app, *clauses):
    with app.app_context():
        engine = logbook.current().engine
        with engine.connect() as conn:
            return conn.execute(select(Log.__table__).where(*clauses).order_by(Log.id)).all()


def balances(app, token_id):
    with app.app_context():
        db.session.expire_all()
        token, user = db.session.get(Token, token_id), db.session.get(User, 1)
        return token.remain_quota, token.used_quota, user.quota, user.used_quota


def relay(root, key, **extra):
    response = root.post("/v1/chat/completions", json={**CHAT, **extra}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.data, response.data  # reading a stream settles it
    return response


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- where the rows go ---------------------------------------------------------------------------


def test_the_consume_log_goes_to_the_log_database_only(app, root, upstream):
    add_channel(root, upstream.url)
    token = add_token(root, unlimited_quota=False, remain_quota=10_000)
    relay(root, token["key"])
    relay(root, token["key"], stream=True)
    rows = log_rows(app, Log.type == LogType.CONSUME)
    assert [(r.quota, r.prompt_tokens, r.completion_tokens, r.is_stream, r.outcome) for r in rows] == [
        (COST, 11, 7, False, "done"), (COST, 11, 7, True, "done")]
    assert rows[0].token_id == token["id"] and rows[0].username == "root" and rows[0].request_id
    assert main_log_count(app) == 0
    remain, used, _, user_used = balances(app, token["id"])
    assert (remain, used, user_used) == (10_000 - 2 * COST, 2 * COST, 2 * COST)


def test_the_log_api_reads_the_log_database(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root)["key"]
    for _ in range(3):
        relay(root, key)
    assert [row["quota"] for row in root.get("/api/log/?type=2").json["data"]] == [COST] * 3
    assert len(root.get("/api/log/self").json["data"]) == 3
    assert root.get("/api/log/stat").json["data"] == {"quota": 3 * COST}
    assert root.get("/api/log/self/stat?model_name=gpt-4o-mini").json["data"] == {"quota": 3 * COST}
    assert len(root.get("/api/log/search?keyword=model").json["data"]) == 3
    assert len(root.get("/api/log/self/search?keyword=2").json["data"]) == 3
    (day,) = root.get("/api/user/dashboard").json["data"]
    assert (day["RequestCount"], day["Quota"], day["PromptTokens"]) == (3, 3 * COST, 33)
    assert root.get("/log").status_code == 200 and b"gpt-4o-mini" in root.get("/log").data
    assert root.delete(f"/api/log/?target_timestamp={int(time.time()) + 10}").json["data"] == 3
    assert root.get("/api/log/").json["data"] == [] and log_rows(app) == []


def test_top_ups_redemptions_admin_changes_and_channel_tests_land_there(app, root, upstream):
    (channel_id,) = add_channel(root, upstream.url)
    code = root.post("/api/redemption/", json={"name": "gift", "quota": 1000}).json["data"][0]
    before = root.get("/api/user/self").json["data"]["quota"]
    assert root.post("/api/user/topup", json={"key": code}).json["data"] == 1000
    assert root.post("/api/topup", json={"user_id": 1, "quota": 777, "remark": "invoice 42"}).json["success"]
    assert root.put("/api/user/", json={"id": 1, "quota": before + 2000}).json["success"]
    assert root.get(f"/api/channel/test/{channel_id}").json["success"]
    assert root.get("/api/user/self").json["data"]["quota"] == before + 2000
    rows = log_rows(app)
    assert [(r.type, r.quota) for r in rows] == [(LogType.TOPUP, 1000), (LogType.TOPUP, 777),
                                                (LogType.MANAGE, 2000 - 1777), (LogType.TEST, 0)]
    assert rows[1].content == "invoice 42" and rows[3].channel_id == channel_id
    assert main_log_count(app) == 0
    assert [row["quota"] for row in root.get("/api/log/self?type=1").json["data"]] == [777, 1000]


def test_a_failed_admin_change_writes_no_log_row(app, root):
    code = root.post("/api/redemption/", json={"name": "once", "quota": 5}).json["data"][0]
    assert root.post("/api/user/topup", json={"key": code}).json["success"]
    assert not root.post("/api/user/topup", json={"key": code}).json["success"]  # rolled back: no second row
    assert [r.quota for r in log_rows(app)] == [5]
    with app.app_context():  # a session that rolls back forgets the rows it held
        db.session.add(Log(type=LogType.MANAGE, user_id=1, content="never"))
        db.session.flush()
        db.session.rollback()
        db.session.commit()
    assert [r.quota for r in log_rows(app)] == [5]


def test_the_settlement_writes_the_main_database_and_then_one_row_to_the_log_database(app, root, upstream):
    """The hot path with a log database: the same writes to the main database minus the log row, which is
    one insert and one commit on the log engine right after."""
    add_channel(root, upstream.url)
    key = add_token(root, unlimited_quota=False, remain_quota=10_000)["key"]
    app.config["CACHE_SYNC_INTERVAL"] = 3600
    for _ in range(2):
        relay(root, key)
    with app.app_context():
        engines = {"main": quota.engine(), "logs": logbook.current().engine}  # quota's: db.engine but on SQLite
    seen = {name: [] for name in engines}
    listeners = []
    for name, engine in engines.items():
        def on_execute(conn, cursor, statement, *args, _name=name):
            words = statement.split()
            seen[_name].append(words[0].upper() + " " + words[1 if words[0].upper() == "UPDATE" else 2].strip('"`'))

        def on_commit(conn, _name=name):
            seen[_name].append("COMMIT")

        listeners += [(engine, "before_cursor_execute", on_execute), (engine, "commit", on_commit)]
    for listener in listeners:
        event.listen(*listener)
    try:
        relay(root, key)
    finally:
        for listener in listeners:
            event.remove(*listener)
    assert seen["main"] == ["UPDATE tokens", "UPDATE users", "INSERT quota_reservations", "COMMIT",
                            "DELETE quota_reservations", "UPDATE tokens", "UPDATE users", "UPDATE channels", "COMMIT"]
    assert seen["logs"] == ["INSERT logs", "COMMIT"]


# --- the log database away -----------------------------------------------------------------------


def test_a_missing_log_table_never_fails_a_request_and_its_rows_are_written_later(app, root, upstream, caplog):
    add_channel(root, upstream.url)
    token = add_token(root, unlimited_quota=False, remain_quota=10_000)
    with app.app_context():
        book = logbook.current()
        Log.__table__.drop(book.engine)
    for stream in (False, True, False):
        relay(root, token["key"], stream=stream)
    code = root.post("/api/redemption/", json={"name": "gift", "quota": 100}).json["data"][0]
    assert root.post("/api/user/topup", json={"key": code}).json["data"] == 100  # the money moves regardless
    assert balances(app, token["id"])[:2] == (10_000 - 3 * COST, 3 * COST)
    assert main_log_count(app) == 0 and book.waiting() >= 4
    assert "the log database failed" in caplog.text
    with app.app_context():
        prepare_log_database()  # what `flask setup` does: the table is back
    wait_until(lambda: book.waiting() == 0)
    rows = log_rows(app)
    assert sorted((r.type, r.quota) for r in rows) == [(LogType.TOPUP, 100)] + [(LogType.CONSUME, COST)] * 3
    assert len({r.request_id for r in rows if r.type == LogType.CONSUME}) == 3  # each row exactly once
    remain, used, _, user_used = balances(app, token["id"])
    assert (remain, used, user_used) == (10_000 - 3 * COST, 3 * COST, 3 * COST)


def test_an_unreachable_log_server_never_fails_a_request(database, upstream, tmp_path, monkeypatch):
    monkeypatch.setattr(logbook, "RETRY_SECONDS", (0.05,))
    upstream.reset()
    plain = make_app(database, tmp_path, "")
    with plain.app_context():
        empty_tables()
        create_root_if_needed()
    dispose(plain)
    app = make_app(database, tmp_path, UNREACHABLE)
    try:
        with app.app_context():
            book = logbook.current()
        client = app.test_client()
        assert client.post("/api/user/login", json={"username": "root", "password": "123456"}).json["success"]
        assert client.put("/api/user/self", json={"password": "s3cret-pass"}).json["success"]
        add_channel(client, upstream.url)
        token = add_token(client, unlimited_quota=False, remain_quota=10_000)
        started = time.monotonic()
        for _ in range(5):
            relay(client, token["key"])
        assert time.monotonic() - started < 10
        assert balances(app, token["id"])[:2] == (10_000 - 5 * COST, 5 * COST)
        assert client.post("/api/topup", json={"user_id": 1, "quota": 10}).json["success"]
        assert book.waiting() == 6 and main_log_count(app) == 0
        with app.app_context():
            book._waiting.clear()
    finally:
        dispose(app)


def test_a_row_the_log_database_refuses_is_dropped_and_the_others_written(app):
    with app.app_context():
        book = logbook.current()
        with book.engine.begin() as conn:
            if conn.dialect.name != "sqlite":
                pytest.skip("the refusing trigger is written for SQLite")
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON logs WHEN NEW.content = 'bad' "
                              "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    book.write({"content": "bad", "created_at": 1})  # refused at once: dropped, not kept
    assert book.waiting() == 0
    book._retrying = True  # as if the database had been away: these wait, then go as one batch
    for content in ("a", "bad", "b"):
        book.write({"content": content, "created_at": 1})
    book._retrying = False
    book.write({"content": "c", "created_at": 1})
    book._keep({"content": "d", "created_at": 1})
    book._retrying = True
    book._retry()
    assert [r.content for r in log_rows(app)] == ["c", "a", "b", "d"] and book.waiting() == 0


# --- configuration and setup ---------------------------------------------------------------------


def test_without_log_sql_dsn_the_logs_stay_in_the_main_database(database, tmp_path):
    for log_dsn in ("", " "):
        app = make_app(database, tmp_path, log_dsn)
        with app.app_context():
            assert logbook.current() is None and db.engines[LOG_BIND] is db.engine
            assert "SQLALCHEMY_BINDS" not in app.config or LOG_BIND not in app.config["SQLALCHEMY_BINDS"]
        dispose(app)
    app = make_app(database, tmp_path, database[0] or f"sqlite:///{database[1]}")  # the main database itself
    with app.app_context():
        assert logbook.current() is None
    dispose(app)


def test_log_sql_dsn_takes_the_same_forms_and_engine_settings(database, tmp_path, monkeypatch):
    app = make_app(database, tmp_path, "user:p@ss@tcp(db.example:3306)/oneapi_logs?parseTime=true")
    bind = app.config["SQLALCHEMY_BINDS"][LOG_BIND]
    assert bind["url"] == "mysql+pymysql://user:p%40ss@db.example:3306/oneapi_logs?charset=utf8mb4"
    assert bind["isolation_level"] == "READ COMMITTED" and bind["pool_pre_ping"] and bind["pool_size"] == 20
    assert bind["connect_args"] == {"connect_timeout": 5}
    app = make_app(database, tmp_path, "postgres://u:p@db.example/logs")
    assert app.config["SQLALCHEMY_BINDS"][LOG_BIND]["url"] == "postgresql+psycopg://u:p@db.example/logs"
    monkeypatch.chdir(tmp_path)
    app = make_app(database, tmp_path, "sqlite:///relative/logs.db")
    bind = app.config["SQLALCHEMY_BINDS"][LOG_BIND]
    assert bind["url"] == f"sqlite:///{tmp_path}/relative/logs.db" and (tmp_path / "relative").is_dir()
    assert bind["connect_args"] == {"timeout": 3.0}
    with app.app_context():
        with logbook.current().engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    dispose(app)
    with pytest.raises(SystemExit, match="LOG_SQL_DSN"):
        make_app(database, tmp_path, "not a dsn")


def test_flask_setup_creates_the_log_schema(database, tmp_path):
    log_file = tmp_path / "setup" / "logs.db"
    app = make_app(database, tmp_path, f"sqlite:///{log_file}")
    try:
        result = app.test_cli_runner().invoke(args=["setup"])
        assert result.exit_code == 0 and "database ready" in result.output, result.output
        engine = create_engine(f"sqlite:///{log_file}")
        inspector = inspect(engine)
        assert inspector.get_table_names() == ["logs"]  # only the logs: no users, tokens or alembic_version
        assert {c["name"] for c in inspector.get_columns("logs")} == {c.name for c in Log.__table__.columns}
        assert {i["name"] for i in inspector.get_indexes("logs")} == {i.name for i in Log.__table__.indexes}
        engine.dispose()
    finally:
        dispose(app)


def test_setup_adds_what_a_newer_version_added_to_an_existing_log_table(database, tmp_path):
    log_file = tmp_path / "old" / "logs.db"
    log_file.parent.mkdir()
    engine = create_engine(f"sqlite:///{log_file}")
    with engine.begin() as conn:  # the table as an older version made it: no outcome, usage_estimated, index
        conn.execute(text("CREATE TABLE logs (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, created_at BIGINT "
                          "NOT NULL, type INTEGER NOT NULL, content TEXT NOT NULL, username VARCHAR(64) NOT NULL, "
                          "token_name VARCHAR(64) NOT NULL, model_name VARCHAR(191) NOT NULL, quota BIGINT NOT NULL, "
                          "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, channel_id INTEGER "
                          "NOT NULL, request_id VARCHAR(64) NOT NULL, elapsed_time INTEGER NOT NULL, is_stream "
                          "BOOLEAN NOT NULL, system_prompt_reset BOOLEAN NOT NULL, token_id INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO logs VALUES (1, 1, 100, 2, 'old', 'root', 't', 'm', 5, 1, 2, 1, 'r', 3, 0, 0, 1)"))
    engine.dispose()
    app = make_app(database, tmp_path, f"sqlite:///{log_file}")
    try:
        with app.app_context():
            prepare_log_database()
            prepare_log_database()  # a second run changes nothing
            row = db.session.scalars(select(Log)).one()
            assert (row.content, row.outcome, row.usage_estimated) == ("old", "", False)
            logbook.current().write({"content": "new", "created_at": 2, "outcome": "done"})
            assert db.session.scalar(select(func.count(Log.id)).where(Log.outcome == "done")) == 1
            indexes = {i["name"] for i in inspect(logbook.current().engine).get_indexes("logs")}
            assert indexes == {i.name for i in Log.__table__.indexes}
    finally:
        dispose(app)


def test_the_main_metadata_still_knows_the_logs_table():
    """Migrations (autogenerate) and whole-database tools see the main database's logs table, unchanged."""
    twin = db.metadata.tables["logs"]
    assert twin is not Log.__table__ and Log.__table__.metadata.info["bind_key"] == LOG_BIND
    assert [c.name for c in twin.columns] == [c.name for c in Log.__table__.columns]
    assert {i.name for i in twin.indexes} == {i.name for i in Log.__table__.indexes}
