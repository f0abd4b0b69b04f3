"""Cache invalidation across nodes through Redis pub/sub (REDIS_CONN_STRING), on top of the
`cache_events` poll: a change committed on one node is dropped from every node's cache within
milliseconds instead of within CACHE_SYNC_INTERVAL. Without Redis, or when Redis is briefly away, the
poll still applies every change; nothing here can lose one."""

import hashlib
import json
import logging
import os
import threading
import time

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
CHANNEL = "oneapi:cache"


def channel(app):
    """The pub/sub channel of the nodes sharing this database: one Redis can serve several gateways (or test
    runs) on different databases without one's changes dropping the others' caches. Nodes must name the
    database alike (the same SQL_DSN); if they do not, they still converge through the cache_events poll."""
    name = app.extensions.get("oneapi_cache_channel")
    if name is None:
        url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
        name = app.extensions["oneapi_cache_channel"] = f"{CHANNEL}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    return name
_listening = {"pid": None, "app": None}
_hooks = {"registered": False}


SOCKET_TIMEOUT = 5  # seconds for any Redis command to answer
LISTEN_WAIT = 30  # the subscriber's wait for the next message; a health-check PING goes out while it waits


def client(app):
    return app.extensions.get("oneapi_redis")


def configure(app, session_class):
    url = app.config["REDIS_CONN_STRING"]
    if not url:
        return
    import redis

    connection = redis.Redis.from_url(url, password=app.config["REDIS_PASSWORD"] or None,
                                      socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=5,
                                      health_check_interval=30)
    try:
        connection.ping()
    except redis.RedisError as error:
        raise SystemExit(f"cannot reach Redis at REDIS_CONN_STRING: {error}") from None
    app.extensions["oneapi_redis"] = connection
    if not _hooks["registered"]:  # once per process, whatever number of apps (tests make many)
        _hooks["registered"] = True
        event.listen(session_class, "after_commit", _announce)
        event.listen(session_class, "after_rollback", _forget)


def _announce(session):
    topics = session.info.pop("oneapi_topics", None)
    connection = current_app.extensions.get("oneapi_redis") if topics and has_app_context() else None
    if connection is not None:
        try:
            connection.publish(channel(current_app), json.dumps(sorted(topics)))
        except Exception as error:  # the poll will carry the change
            log.warning("could not announce cache changes over Redis: %s", error)


def _forget(session):
    session.info.pop("oneapi_topics", None)


def remember(session, topics):
    """Topics to announce once the session's transaction commits."""
    session.info.setdefault("oneapi_topics", set()).update(topics)


def ensure_listening(app):
    """Start this process's subscriber (once per process: after a fork the parent's does not exist)."""
    if client(app) is None:
        return
    _listening["app"] = app
    if _listening["pid"] == os.getpid():
        return
    _listening["pid"] = os.getpid()
    threading.Thread(target=_listen, daemon=True, name="oneapi-cache-listener").start()


def _listen():
    from oneapi.services import cache

    while True:
        try:
            pubsub = client(_listening["app"]).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel(_listening["app"]))
            while True:
                # Wait for a message without the client's read timeout: a quiet channel is not a lost Redis
                # (pubsub.listen() raised it after SOCKET_TIMEOUT of quiet, and each retry missed changes).
                message = pubsub.get_message(timeout=LISTEN_WAIT)
                if message is None or message.get("type") != "message":
                    continue
                topics = json.loads(message["data"])
                with _listening["app"].app_context():
                    cache.drop(*topics)
        except Exception as error:  # Redis went away: retry; the poll covers the gap
            log.warning("cache listener lost Redis (%s: %s); retrying", type(error).__name__, error)
            time.sleep(1)
