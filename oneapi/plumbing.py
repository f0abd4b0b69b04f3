"""What every request shares: database engine settings, the session secret, the request id, the cache
sync, the default-password lock, and errors in the right shape for each audience."""

import logging
import os
import secrets
import time

from flask import abort, g, jsonify, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from oneapi import walcheckpoint
from oneapi.config import database_url
from oneapi.envelope import ID_MAX, ApiError, fail
from oneapi.models.log import LOG_BIND
from oneapi.services import accounts, broadcast, cache, options, scheduler

log = logging.getLogger(__name__)


def configure_database(app):
    config = app.config
    url = config["SQLALCHEMY_DATABASE_URI"]
    config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(url, config)
    log_url = _log_database_url(config)
    if log_url and log_url != url:
        # The Log model's bind (models/log.py); without it, services/logbook.attach aliases the main engine.
        log_options = _engine_options(log_url, config)
        if not log_url.startswith("sqlite") and "connect_timeout" not in log_url:
            # A log server that stops answering holds up the requests settling at that moment for 5 s at
            # most; after that its rows wait in memory without trying it (services/logbook.py).
            log_options["connect_args"] = {"connect_timeout": 5}
        config["SQLALCHEMY_BINDS"] = {**config.get("SQLALCHEMY_BINDS", {}), LOG_BIND: {"url": log_url, **log_options}}
    config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    if not config.get("MAX_CONTENT_LENGTH"):
        # One byte over the relay's cap, so a chunked body (no Content-Length) that is too large reads as
        # cap + 1 bytes and is refused with 413 instead of being cut silently at the cap.
        config["MAX_CONTENT_LENGTH"] = int(config["RELAY_MAX_BODY_MB"] * 1024 * 1024) + 1


def _engine_options(url, config):
    """Pool, isolation and SQLite settings for one engine: the main database's, and the log database's."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return {"connect_args": {"timeout": config["SQLITE_BUSY_TIMEOUT"] / 1000}}
    idle = max(1, min(config["SQL_MAX_IDLE_CONNS"], config["SQL_MAX_OPEN_CONNS"], 20))
    pool = {
        "pool_size": idle,
        "max_overflow": max(0, min(config["SQL_MAX_OPEN_CONNS"], 40) - idle),
        "pool_recycle": max(config["SQL_MAX_LIFETIME"], 1),
        "pool_pre_ping": True,
        "pool_timeout": 10,
    }
    if url.startswith("mysql"):
        # InnoDB's default REPEATABLE READ would let a request's session keep reading the snapshot it
        # began with, missing the quota updates committed meanwhile on the quota service's connection.
        pool["isolation_level"] = "READ COMMITTED"
    return pool


def _log_database_url(config):
    """LOG_SQL_DSN as a SQLAlchemy URL, or "" for the main database. A relative SQLite path is taken from the
    working directory, as SQLITE_PATH is (Flask-SQLAlchemy would otherwise put it in the instance folder)."""
    dsn = (config.get("LOG_SQL_DSN") or "").strip()
    if not dsn:
        return ""
    url = database_url(dsn, config["SQLITE_PATH"], "LOG_SQL_DSN")
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and path != ":memory:" and not os.path.isabs(path):
        url = "sqlite:///" + os.path.abspath(path)
    return url


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if walcheckpoint.active():  # a background thread checkpoints; commits never stop to do it
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()


class _SessionInterface(SecureCookieSessionInterface):
    """No cookie session on the API-key routes: /v1 and /dashboard never read one, and opening it (a signing
    serializer per request) was a measurable share of a relay request's CPU."""

    def open_session(self, app, request):
        if request.path.startswith(_KEY_ROUTES):
            return self.null_session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app):
        """Secure whenever the request came over HTTPS (directly, or by a trusted proxy's X-Forwarded-Proto)."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


_KEY_ROUTES = ("/v1/", "/dashboard/")


def configure_sessions(app):
    secret = app.config["SESSION_SECRET"]
    if secret == "random_string":
        secret = ""
    if not secret and app.config["SQL_DSN"]:
        raise SystemExit("SESSION_SECRET must be set when SQL_DSN is: nodes that share a database must sign "
                         "sessions with one secret (set the same long random value on every node)")
    if not secret:
        # One secret per data folder, so every worker of this node signs cookies alike and sessions
        # survive restarts. Several nodes must share SESSION_SECRET (docs/deployment.md).
        path = os.path.join(app.config["DATA_DIR"], ".session_secret")
        os.makedirs(app.config["DATA_DIR"], exist_ok=True)
        try:
            with open(path, "x") as f:
                os.chmod(path, 0o600)
                f.write(secrets.token_hex(32))
        except FileExistsError:
            pass
        with open(path) as f:
            secret = f.read().strip()
    app.config["SECRET_KEY"] = secret
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_NAME="session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=7 * 24 * 3600)


API_MAX_BODY = 2 * 1024 * 1024
# The console is never framed (clickjacking); no type guessing; reset links' tokens never leave in a Referer.
_PAGE_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


_stamp = [0, ""]  # the second, and its yyyyMMddHHmmss in local time


def new_request_id():
    """The original's shape: yyyyMMddHHmmss, nanoseconds, 8 random digits. The local time's text is made
    once a second (strftime asks the C library for the time zone each time)."""
    now = time.time_ns()
    second = now // 1_000_000_000
    if second != _stamp[0]:
        _stamp[1] = time.strftime("%Y%m%d%H%M%S", time.localtime(second))
        _stamp[0] = second
    return f"{_stamp[1]}{now % 1_000_000_000:09d}{secrets.randbelow(10**8):08d}"


# While root has the default password only these stay open (plus login), so root can change it.
_OPEN_WHILE_LOCKED = {
    ("GET", "/api/status"), ("GET", "/api/user/logout"), ("GET", "/api/user/self"), ("PUT", "/api/user/self"),
    ("POST", "/api/user/login"), ("GET", "/api/openapi.json"),
}
_OPEN_PAGES_WHILE_LOCKED = {"/login", "/logout", "/user/password"}


def _locked_response():
    path = request.path
    if path.startswith(("/v1/", "/static/", "/dashboard/")) or path in ("/healthz",):
        return None
    if (request.method, path.rstrip("/") or "/") in _OPEN_WHILE_LOCKED or path in _OPEN_PAGES_WHILE_LOCKED:
        return None
    if not accounts.root_must_change_password():
        return None
    if path.startswith("/api/"):
        return fail("root still has the default password: change the default password first "
                    "(PUT /api/user/self with a new password)", 403)
    if current_user.is_authenticated:
        return redirect(url_for("web.password"))
    return redirect(url_for("auth.login_page"))


def _frontend_redirect(app):
    """Slave nodes may send page requests to the master's web address (FRONTEND_BASE_URL, spec §1.6)."""
    base = app.config["FRONTEND_BASE_URL"]
    if not base or app.config["NODE_TYPE"] != "slave" or request.path.startswith(_NODE_LOCAL):
        return None
    return redirect(base.rstrip("/") + request.full_path.rstrip("?"), 301)


_NODE_LOCAL = ("/api/", "/v1/", "/dashboard/", "/static/", "/healthz")


def _wants_json():
    return request.path.startswith(("/api/", "/v1/", "/dashboard/"))


def register_hooks(app):
    @app.before_request
    def _start():
        if any(isinstance(v, int) and v > ID_MAX for v in (request.view_args or {}).values()):
            abort(404)  # no row has an id beyond 32 bits; asking the database would be an error, not a miss
        g.request_id = new_request_id()
        g.started = time.monotonic()
        if not request.path.startswith(_KEY_ROUTES):
            # Only /v1 takes big bodies (images, audio). Elsewhere a JSON body is small, and one parsed before
            # any login must not cost a worker its memory (a 64 MB "[{},{},...]" is ~1.5 GB of objects).
            request.max_content_length = API_MAX_BODY
        broadcast.ensure_listening(app)
        scheduler.ensure_started(app)
        walcheckpoint.ensure_started(app)
        cache.sync()
        return _frontend_redirect(app) or _locked_response()

    @app.after_request
    def _finish(response):
        response.headers["X-Oneapi-Request-Id"] = g.get("request_id", "")
        if not request.path.startswith(_KEY_ROUTES):
            response.headers.update(_PAGE_HEADERS)
        return response

    @app.errorhandler(ApiError)
    def _api_error(error):
        return fail(error.message, error.status)

    @app.errorhandler(HTTPException)
    def _http_error(error):
        if request.path.startswith(("/v1/", "/dashboard/")):
            from oneapi.relay.errors import openai_error

            message = error.description
            if error.code == 404:
                message = f"Invalid URL ({request.method} {request.path})"
            return openai_error(error.code, message, "invalid_request_error", "")
        if request.path.startswith("/api/"):
            return fail(error.description if error.code != 404 else f"no such route: {request.method} {request.path}",
                        error.code)
        return render_template("error.html", code=error.code, message=error.description), error.code

    @app.errorhandler(Exception)
    def _unexpected(error):
        log.exception("unhandled error")
        if _wants_json():
            if request.path.startswith("/api/"):
                return fail(f"internal error (request id: {g.get('request_id', '')})", 500)
            from oneapi.relay.errors import openai_error

            return openai_error(500, "internal error", "one_api_error", "internal_error")
        return render_template("error.html", code=500, message="Something went wrong."), 500

    @app.context_processor
    def _site():
        return {"site_name": options.current().get("SystemName")}

    @app.get("/healthz")
    def _healthz():
        return jsonify({"status": "ok"})
