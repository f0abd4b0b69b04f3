"""gunicorn settings. Standard library only: this file is read before gevent patches anything."""

import os
import subprocess
import sys

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
    when this worker speaks plain HTTP to its clients."""
    plain_http = getattr(server.cfg, "protocol", "http") == "http" and not server.cfg.is_ssl
    os.environ["ONEAPI_GUNICORN_HTTP"] = "1" if plain_http else ""
