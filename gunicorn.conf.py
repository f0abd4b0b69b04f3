"""gunicorn settings. Standard library only: this file is read before gevent patches anything."""

import os
import subprocess
import sys
import time

bind = os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '3000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
timeout = 30  # a heartbeat for gevent workers, not a request limit: long streams are fine
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "300"))  # lets running streams finish on restart
keepalive = int(os.environ.get("KEEPALIVE", "75"))  # above nginx's upstream keepalive_timeout
preload_app = False  # the app must be imported after the gevent patch
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # ACCESS_LOG="" turns it off
# The path without its query string and no Referer: a password-reset link carries its token in the query
# (/user/reset?email=…&token=…), and whoever reads the log must not be able to use it.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"


def on_starting(server):
    """Migrate and create root once, in a child process, before any worker starts (NODE_TYPE=slave skips).
    A child process keeps the app, and so ssl and requests, out of the unpatched master."""
    if os.environ.get("NODE_TYPE", "master") == "slave" or os.environ.get("SKIP_SETUP") == "true":
        return
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "setup"], cwd=here)
    if result.returncode != 0:
        raise SystemExit("database setup failed; see the messages above")


def post_fork(server, worker):
    """Streams may write their events to the client's socket themselves (oneapi/relay/client_writer.py) only
    when this worker speaks plain HTTP to its clients. The Date header is formatted once a second."""
    plain_http = getattr(server.cfg, "protocol", "http") == "http" and not server.cfg.is_ssl
    os.environ["ONEAPI_GUNICORN_HTTP"] = "1" if plain_http else ""
    util = sys.modules.get("gunicorn.util")
    if util is not None and callable(getattr(util, "http_date", None)):
        util.http_date = _per_second(util.http_date)


def _per_second(http_date):
    """gunicorn formats every response's Date header with `email.utils` (~1 % of a relayed request's CPU); the
    header has one-second resolution, so the text is kept for the second it names."""
    if getattr(http_date, "per_second", False):
        return http_date
    kept = [None, ""]

    def http_date_per_second(timestamp=None):
        if timestamp is not None:
            return http_date(timestamp)
        now = int(time.time())
        if now != kept[0]:
            kept[1] = http_date(now)
            kept[0] = now
        return kept[1]

    http_date_per_second.per_second = True
    return http_date_per_second
