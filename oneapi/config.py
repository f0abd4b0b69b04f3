"""Every setting in one place: the original's environment variables, our additions, and the CLI flags.

Names and meanings follow songquanpeng/one-api (spec §8.5) so an operator moving over changes nothing.
`load()` reads the environment once; `create_app()` stores the result in `app.config`.
"""

import os
import re
from urllib.parse import quote

VERSION = "0.1.0"

# The original's well-known first password. While root still has it, /api is locked (spec §12.1).
DEFAULT_ROOT_PASSWORD = "123456"


def _bool(value, default=False):
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _int(value, default):
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise SystemExit(f"configuration error: expected an integer, got {value!r}") from None


def _float(value, default):
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        raise SystemExit(f"configuration error: expected a number, got {value!r}") from None


_GO_MYSQL_DSN = re.compile(
    r"^(?P<user>[^:@/]*)(?::(?P<password>.*))?@tcp\((?P<host>[^)]+)\)/(?P<db>[^?]*)(?:\?(?P<params>.*))?$"
)


def database_url(dsn, sqlite_path, setting="SQL_DSN"):
    """Turn SQL_DSN or LOG_SQL_DSN (the original's forms or a SQLAlchemy URL) into a SQLAlchemy URL.

    `""` means SQLite at SQLITE_PATH; `postgres://...` PostgreSQL through psycopg 3;
    `user:pass@tcp(host:3306)/db` (go-sql-driver) or `mysql://...` MySQL/MariaDB through PyMySQL.
    """
    dsn = (dsn or "").strip()
    if not dsn:
        return "sqlite:///" + os.path.abspath(sqlite_path)
    if dsn.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + dsn.split("://", 1)[1]
    if dsn.startswith("mysql://"):
        return _with_utf8mb4("mysql+pymysql://" + dsn.split("://", 1)[1])
    if "://" in dsn:
        return _with_utf8mb4(dsn) if dsn.startswith("mysql") else dsn
    match = _GO_MYSQL_DSN.match(dsn)
    if not match:
        raise SystemExit(f"configuration error: {setting} is neither a URL nor user:pass@tcp(host:port)/db")
    auth = quote(match["user"], safe="")
    if match["password"] is not None:
        auth += ":" + quote(match["password"], safe="")
    params = [p for p in (match["params"] or "").split("&") if p and not p.startswith(("parseTime", "loc", "charset"))]
    url = f"mysql+pymysql://{auth}@{match['host']}/{match['db']}"
    return _with_utf8mb4(url + ("?" + "&".join(params) if params else ""))


def _with_utf8mb4(url):
    if "charset=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "charset=utf8mb4"


def load(env=None, port=None, log_dir=None):
    """Read every setting. `port` and `log_dir` come from the CLI flags; PORT in the env wins (as in the original)."""
    env = os.environ if env is None else env
    data_dir = env.get("DATA_DIR") or "./data"
    sqlite_path = env.get("SQLITE_PATH") or os.path.join(data_dir, "one-api.db")
    return {
        "VERSION": VERSION,
        "PORT": _int(env.get("PORT"), port or 3000),
        "LOG_DIR": log_dir if log_dir is not None else env.get("LOG_DIR", ""),
        "ONLY_ONE_LOG_FILE": _bool(env.get("ONLY_ONE_LOG_FILE")),
        "DEBUG": _bool(env.get("DEBUG")),
        "DEBUG_SQL": _bool(env.get("DEBUG_SQL")),
        "DATA_DIR": data_dir,
        "SESSION_SECRET": env.get("SESSION_SECRET", ""),
        # Database (spec §2.9). A non-empty LOG_SQL_DSN puts the logs table in its own database, read by the
        # same rules as SQL_DSN (plumbing.configure_database); empty means the main database.
        "SQL_DSN": env.get("SQL_DSN", ""),
        "LOG_SQL_DSN": env.get("LOG_SQL_DSN", ""),
        "SQLITE_PATH": sqlite_path,
        "SQLITE_BUSY_TIMEOUT": _int(env.get("SQLITE_BUSY_TIMEOUT"), 3000),
        # Ours: WAL checkpoints from a background thread instead of inside commits (oneapi/walcheckpoint.py).
        "SQLITE_BACKGROUND_CHECKPOINT": _bool(env.get("SQLITE_BACKGROUND_CHECKPOINT"), True),
        "SQL_MAX_IDLE_CONNS": _int(env.get("SQL_MAX_IDLE_CONNS"), 100),
        "SQL_MAX_OPEN_CONNS": _int(env.get("SQL_MAX_OPEN_CONNS"), 1000),
        "SQL_MAX_LIFETIME": _int(env.get("SQL_MAX_LIFETIME"), 60),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("SQL_DSN"), sqlite_path),
        # Redis and caches (spec §8.2-8.4)
        "REDIS_CONN_STRING": env.get("REDIS_CONN_STRING", ""),
        "REDIS_PASSWORD": env.get("REDIS_PASSWORD", ""),
        "REDIS_MASTER_NAME": env.get("REDIS_MASTER_NAME", ""),
        "MEMORY_CACHE_ENABLED": _bool(env.get("MEMORY_CACHE_ENABLED")),  # always on here; accepted for compatibility
        "SYNC_FREQUENCY": _int(env.get("SYNC_FREQUENCY"), 600),
        "CACHE_SYNC_INTERVAL": _float(env.get("CACHE_SYNC_INTERVAL"), 1.0),
        "NODE_TYPE": env.get("NODE_TYPE", "master"),
        "FRONTEND_BASE_URL": env.get("FRONTEND_BASE_URL", ""),
        "CHANNEL_TEST_FREQUENCY": _int(env.get("CHANNEL_TEST_FREQUENCY"), 0),
        "CHANNEL_UPDATE_FREQUENCY": _int(env.get("CHANNEL_UPDATE_FREQUENCY"), 0),
        "POLLING_INTERVAL": _int(env.get("POLLING_INTERVAL"), 0),
        "BATCH_UPDATE_ENABLED": _bool(env.get("BATCH_UPDATE_ENABLED")),
        "BATCH_UPDATE_INTERVAL": _int(env.get("BATCH_UPDATE_INTERVAL"), 5),
        "GLOBAL_API_RATE_LIMIT": _int(env.get("GLOBAL_API_RATE_LIMIT"), 480),
        "GLOBAL_WEB_RATE_LIMIT": _int(env.get("GLOBAL_WEB_RATE_LIMIT"), 240),
        # Ours: the fixed CriticalRateLimit of the original (20 per 20 min) made configurable.
        "CRITICAL_RATE_LIMIT": _int(env.get("CRITICAL_RATE_LIMIT"), 20),
        "CRITICAL_RATE_LIMIT_DURATION": _int(env.get("CRITICAL_RATE_LIMIT_DURATION"), 1200),
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE")),
        "TURNSTILE_VERIFY_URL": env.get("TURNSTILE_VERIFY_URL")
        or "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        # Forwarded headers are believed only from these (IPs/CIDRs); oneapi/proxies.py.
        "TRUSTED_PROXIES": env.get("TRUSTED_PROXIES", "127.0.0.1/32,::1/128"),
        # Relay (spec §5). RELAY_TIMEOUT keeps the original's meaning (a total cap, 0 = none); the
        # connect and idle timeouts are ours, so a healthy long stream is never cut by default.
        "RELAY_TIMEOUT": _float(env.get("RELAY_TIMEOUT"), 0),
        "RELAY_CONNECT_TIMEOUT": _float(env.get("RELAY_CONNECT_TIMEOUT"), 10),
        "RELAY_IDLE_TIMEOUT": _float(env.get("RELAY_IDLE_TIMEOUT"), 600),
        "RELAY_PROXY": env.get("RELAY_PROXY", ""),
        "RELAY_MAX_BODY_MB": _float(env.get("RELAY_MAX_BODY_MB"), 64),
        "RELAY_MAX_RESPONSE_MB": _float(env.get("RELAY_MAX_RESPONSE_MB"), 128),
        "STREAM_MAX_LINE_MB": _float(env.get("STREAM_MAX_LINE_MB"), 128),
        "STREAM_KEEPALIVE_SECONDS": _float(env.get("STREAM_KEEPALIVE_SECONDS"), 15),
        # After a client disconnects, how long and how much to keep reading the upstream for its usage.
        "STREAM_DRAIN_SECONDS": _float(env.get("STREAM_DRAIN_SECONDS"), 60),
        "STREAM_DRAIN_MB": _float(env.get("STREAM_DRAIN_MB"), 16),
        "ENFORCE_INCLUDE_USAGE": _bool(env.get("ENFORCE_INCLUDE_USAGE")),
        # Circuit breaker for channels that answer 429, 5xx, time out or refuse connections.
        "BREAKER_FAILURES": _int(env.get("BREAKER_FAILURES"), 3),
        "BREAKER_COOLDOWN_SECONDS": _float(env.get("BREAKER_COOLDOWN_SECONDS"), 30),
        "BREAKER_MAX_COOLDOWN_SECONDS": _float(env.get("BREAKER_MAX_COOLDOWN_SECONDS"), 300),
        # Outbound requests to URLs others chose (webhooks, alerts) go through services/egress.py, which refuses
        # private and local addresses unless this is on (tests, webhooks on a private network).
        "EGRESS_ALLOW_PRIVATE": _bool(env.get("EGRESS_ALLOW_PRIVATE")),
        # At most one channel disable/enable notification per channel in this many seconds (per process).
        "NOTIFY_WINDOW_SECONDS": _float(env.get("NOTIFY_WINDOW_SECONDS"), 600),
        "USER_CONTENT_REQUEST_PROXY": env.get("USER_CONTENT_REQUEST_PROXY", ""),
        "USER_CONTENT_REQUEST_TIMEOUT": _int(env.get("USER_CONTENT_REQUEST_TIMEOUT"), 30),
        "TIKTOKEN_CACHE_DIR": env.get("TIKTOKEN_CACHE_DIR") or env.get("DATA_GYM_CACHE_DIR") or "",
        "GEMINI_SAFETY_SETTING": env.get("GEMINI_SAFETY_SETTING", "BLOCK_NONE"),
        "GEMINI_VERSION": env.get("GEMINI_VERSION", "v1"),
        "THEME": env.get("THEME", "default"),
        "ENABLE_METRIC": _bool(env.get("ENABLE_METRIC")),
        "METRIC_QUEUE_SIZE": _int(env.get("METRIC_QUEUE_SIZE"), 10),
        "METRIC_SUCCESS_RATE_THRESHOLD": _float(env.get("METRIC_SUCCESS_RATE_THRESHOLD"), 0.8),
        "TEST_PROMPT": env.get("TEST_PROMPT", "Output only your specific model name with no additional text."),
        # Third-party login (spec §3.7): the providers' fixed URLs, overridable for GitHub Enterprise, Lark
        # (larksuite.com) and tests. The OIDC endpoints and the WeChat server are options set in the console.
        "GITHUB_OAUTH_BASE_URL": env.get("GITHUB_OAUTH_BASE_URL") or "https://github.com",
        "GITHUB_API_BASE_URL": env.get("GITHUB_API_BASE_URL") or "https://api.github.com",
        "LARK_AUTHORIZE_URL": env.get("LARK_AUTHORIZE_URL") or "https://accounts.feishu.cn/open-apis/authen/v1/authorize",
        "LARK_TOKEN_URL": env.get("LARK_TOKEN_URL") or "https://open.feishu.cn/open-apis/authen/v2/oauth/token",
        "LARK_USERINFO_URL": env.get("LARK_USERINFO_URL") or "https://passport.feishu.cn/suite/passport/oauth/userinfo",
        # First start (spec §3.1)
        "INITIAL_ROOT_TOKEN": env.get("INITIAL_ROOT_TOKEN", ""),
        "INITIAL_ROOT_ACCESS_TOKEN": env.get("INITIAL_ROOT_ACCESS_TOKEN", ""),
        "INITIAL_ROOT_PASSWORD": env.get("INITIAL_ROOT_PASSWORD", ""),
    }
