"""Fixtures: an app per test on a migrated database (SQLite by default; SQL_DSN selects MariaDB or
PostgreSQL), a real mock upstream, and a live server process for black-box tests."""

import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import MetaData, create_engine, text

from oneapi import background, create_app
from oneapi.bootstrap import prepare_log_database
from oneapi.config import database_url
from oneapi.extensions import db
from oneapi.models import Log
from oneapi.services import logbook, quota
from tests.mock_upstream import MockUpstream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Nodes sharing a server database must share a session secret (the app refuses to start otherwise).
os.environ.setdefault("SESSION_SECRET", "test-session-secret-" + "x" * 32)
# Every test talks from 127.0.0.1: the per-address limits are off unless a test turns them on
# (tests/test_rate_limits.py). Per-token limits are always on.
for _name in ("GLOBAL_API_RATE_LIMIT", "GLOBAL_WEB_RATE_LIMIT", "CRITICAL_RATE_LIMIT"):
    os.environ.setdefault(_name, "0")
TEST_PASSWORD = "s3cret-pass"


def worker_dsn(dsn):
    """Under pytest-xdist each worker gets its own server database (test_gw0, test_gw1...), made if missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not dsn or not worker:
        return dsn
    base, _, name = dsn.rpartition("/")
    name, query = (name.split("?", 1) + [""])[:2]
    own = f"{name}_{worker}"
    engine = create_engine(database_url(dsn, ""), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own}).first():
                conn.execute(text(f'CREATE DATABASE "{own}"'))
        else:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{own}`"))
    engine.dispose()
    return f"{base}/{own}" + (f"?{query}" if query else "")


def worker_log_dsn(dsn, tmp_path_factory):
    """LOG_SQL_DSN set for the run puts every test's logs in a second database: one per worker, as SQL_DSN's."""
    if dsn.startswith("sqlite"):
        return f"sqlite:///{tmp_path_factory.mktemp('logs') / 'one-api-logs.db'}"
    return worker_dsn(dsn)


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """(SQL_DSN, SQLITE_PATH) of a database migrated once for the whole run, emptied before."""
    dsn = worker_dsn(os.environ.get("SQL_DSN", ""))
    if os.environ.get("LOG_SQL_DSN"):  # read by every app of the run, the live servers' too
        os.environ["LOG_SQL_DSN"] = worker_log_dsn(os.environ["LOG_SQL_DSN"], tmp_path_factory)
    sqlite_path = str(tmp_path_factory.mktemp("db") / "one-api.db")
    if dsn:
        engine = create_engine(database_url(dsn, sqlite_path))
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    app = create_app({"SQL_DSN": dsn, "SQLITE_PATH": sqlite_path, "DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=app.extensions["migrate"].directory)
        prepare_log_database()
        for engine in set(db.engines.values()):
            engine.dispose()
    return dsn, sqlite_path


def empty_tables():
    """Empty every table and restart the ids, so each test sees ids from 1 (root is user 1) on every database."""
    _empty(db.session, list(reversed(db.metadata.sorted_tables)), db.engine.dialect.name)
    db.session.commit()
    book = logbook.current()
    if book is not None:  # LOG_SQL_DSN: the logs are in a second database
        with book.engine.begin() as conn:
            _empty(conn, [Log.__table__], book.engine.dialect.name)


def _empty(session, tables, dialect):
    if dialect == "postgresql":
        names = ", ".join(f'"{table.name}"' for table in tables)
        session.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY"))
    elif dialect == "mysql":
        for table in tables:
            session.execute(text(f"TRUNCATE TABLE `{table.name}`"))
    else:
        for table in tables:
            session.execute(table.delete())
        if session.execute(text("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
            session.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture(scope="session")
def upstream():
    mock = MockUpstream()
    yield mock
    mock.close()


@pytest.fixture
def app(database, upstream, tmp_path):
    dsn, sqlite_path = database
    upstream.reset()
    application = create_app({
        "TESTING": True, "SQL_DSN": dsn, "SQLITE_PATH": sqlite_path, "DATA_DIR": str(tmp_path),
        "BCRYPT_ROUNDS": 4, "CACHE_SYNC_INTERVAL": 0, "INITIAL_ROOT_PASSWORD": "",
    })
    with application.app_context():
        empty_tables()
        from oneapi.bootstrap import create_root_if_needed

        create_root_if_needed()
    yield application
    background.wait()  # work still running (a reset mail, a test of all channels) would deadlock the next TRUNCATE
    with application.app_context():
        db.session.remove()
        for engine in set(db.engines.values()):  # the main engine, and the log database's with LOG_SQL_DSN
            engine.dispose()
        quota.dispose(application)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def root(client):
    """A client logged in as root, with the default password already changed."""
    assert client.post("/api/user/login", json={"username": "root", "password": "123456"}).json["success"]
    assert client.put("/api/user/self", json={"password": TEST_PASSWORD}).json["success"]
    return client


def add_channel(admin, upstream_url, **fields):
    payload = {"name": "mock", "type": 1, "key": "sk-upstream-secret-key-123456", "base_url": upstream_url,
               "models": "gpt-4o-mini,gpt-4o,text-embedding-3-small", "group": "default", **fields}
    reply = admin.post("/api/channel/", json=payload).json
    assert reply["success"], reply
    return reply["data"]


def add_token(client, **fields):
    reply = client.post("/api/token/", json={"name": "t", "remain_quota": 0, "unlimited_quota": True, **fields}).json
    assert reply["success"], reply
    return reply["data"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


class LiveServer:
    def __init__(self, command, port, env, log_path):
        self.env = env
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.url + "/api/status", self.process)

    def app(self):
        """An app on the server's database, to look at what the server wrote."""
        return create_app({"SQL_DSN": self.env["SQL_DSN"], "SQLITE_PATH": self.env["SQLITE_PATH"],
                           "DATA_DIR": self.env["DATA_DIR"]})

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def live_server_factory(database, tmp_path):
    """Starts the real server (`python app.py` or gunicorn) on an emptied database; stops it after the test."""
    dsn, _ = database
    servers = []

    def start(kind="app", **extra_env):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PORT"))}
        # Small pools: two xdist workers' servers share one PostgreSQL, which allows 100 connections in all.
        env.update({"SQL_DSN": dsn, "DATA_DIR": str(tmp_path / "data"), "SQLITE_PATH": str(tmp_path / "live.db"),
                    "CACHE_SYNC_INTERVAL": "0.2", "SQL_MAX_IDLE_CONNS": "4", "SQL_MAX_OPEN_CONNS": "8"})
        if kind == "gunicorn":
            env.update({"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "ACCESS_LOG": "", "GRACEFUL_TIMEOUT": "3"})
            command = [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
        else:
            command = [sys.executable, "app.py", "--port", str(port), "--log-dir", str(tmp_path / "logs")]
        env.update(extra_env)
        server = LiveServer(command, port, env, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    if dsn:
        app = create_app({"SQL_DSN": dsn, "DATA_DIR": str(tmp_path / "data")})
        with app.app_context():
            empty_tables()
            db.engine.dispose()
    yield start
    for server in servers:
        server.stop()
