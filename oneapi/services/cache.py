"""The in-process cache that keeps database reads off the relay path.

Entries are keyed by the topic that invalidates them: "token:<key hash>", "user:<id>", "channels",
"options". A write publishes its topics as `cache_events` rows in the same transaction and drops its
own copies at once; every worker polls the new rows about once a second (CACHE_SYNC_INTERVAL) and drops
what they name, so a change made on any worker or node applies everywhere within a second. A full
clear every SYNC_FREQUENCY seconds is the backstop.
"""

import time

from flask import current_app
from sqlalchemy import delete, func, select

from oneapi.extensions import db
from oneapi.models import CacheEvent
from oneapi.services import broadcast

_MISSING = object()
MAX_ENTRIES = 100_000
_LOOK_BACK = 200


class _State:
    def __init__(self):
        self.entries = {}
        self.generation = 0
        self.last_event_id = None
        self.last_poll = 0.0
        self.last_full = 0.0
        self.last_prune = 0.0
        self.seen = set()  # ids near the top already applied (ids may commit out of order)


def _state():
    state = current_app.extensions.get("oneapi_cache")
    if state is None:
        state = current_app.extensions["oneapi_cache"] = _State()
    return state


def get(topic, loader):
    """The cached value for `topic`, loaded (and cached, None included) on a miss."""
    state = _state()
    value = state.entries.get(topic, _MISSING)
    if value is _MISSING:
        generation = state.generation
        value = loader()
        # A change published while we were loading makes what we loaded suspect: do not keep it.
        if generation == state.generation:
            if len(state.entries) >= MAX_ENTRIES:
                state.entries.clear()
            state.entries[topic] = value
    return value


def drop(*topics):
    state = _state()
    state.generation += 1
    for topic in topics:
        if topic == "*":
            state.entries.clear()
        else:
            state.entries.pop(topic, None)


def publish(*topics):
    """Record that these topics changed. Call inside the writing transaction, before its commit."""
    now = int(time.time())
    for topic in topics:
        db.session.add(CacheEvent(topic=topic, created_at=now))
    broadcast.remember(db.session, topics)
    drop(*topics)
    state = _state()
    if time.monotonic() - state.last_prune > 60:
        state.last_prune = time.monotonic()
        keep = current_app.config["SYNC_FREQUENCY"] + 300
        db.session.execute(delete(CacheEvent).where(CacheEvent.created_at < now - keep))


def sync():
    """Apply changes made by other workers and nodes; at most one small query per interval."""
    state = _state()
    now = time.monotonic()
    if now - state.last_poll < current_app.config["CACHE_SYNC_INTERVAL"]:
        return
    state.last_poll = now
    if state.last_event_id is None or now - state.last_full > current_app.config["SYNC_FREQUENCY"]:
        state.last_event_id = db.session.scalar(select(func.max(CacheEvent.id))) or 0
        state.seen = set(db.session.scalars(select(CacheEvent.id).where(
            CacheEvent.id > max(state.last_event_id - _LOOK_BACK, 0))))
        state.last_full = now
        drop("*")
        return
    # Look a little below the highest id seen: on MySQL and PostgreSQL a lower id can commit after a higher
    # one, and must not be skipped. Rows already applied are recognised and not dropped again.
    floor = max(state.last_event_id - _LOOK_BACK, 0)
    rows = db.session.execute(
        select(CacheEvent.id, CacheEvent.topic).where(CacheEvent.id > floor).order_by(CacheEvent.id)
    ).all()
    fresh = [row for row in rows if row.id not in state.seen]
    if fresh:
        drop(*{row.topic for row in fresh})
    if rows:
        state.last_event_id = max(state.last_event_id, rows[-1].id)
        state.seen = {row.id for row in rows}
    db.session.close()  # give the connection back at once: the request may go on for long
