"""SQLite's WAL checkpoints, off the request path.

In WAL mode a commit appends to the -wal file; every 1,000 pages SQLite copies the WAL back into the database
and syncs it, inside whichever commit crossed the mark. Under the relay's two commits per request that is
about one request in a hundred, and the sync (several ms, in C) freezes the whole gevent worker: it was the
added-latency p99. Here each serving process checkpoints ten times a second from a real OS thread (sqlite3
releases the GIL while it works, so the event loop runs on), and its own connections stop checkpointing by
themselves. Measured (bench/run.py, SQLite): added p99 at concurrency 1 5.5 ms → 3.9 ms; checkpointing once
a second instead let the WAL grow and cost ~20 % of throughput. PASSIVE checkpoints never wait for readers
or writers. Only file databases, only while the server runs (not in tests, nor in CLI commands, which keep
SQLite's default).
"""

import logging
import os
import sqlite3

log = logging.getLogger(__name__)
INTERVAL = 0.1
_state = {"pid": None, "generation": 0}


def active():
    """Whether this process checkpoints in the background (its new connections then leave it to us)."""
    return _state["pid"] == os.getpid()


def ensure_started(app):
    if _state["pid"] == os.getpid() or app.testing or not app.config.get("SQLITE_BACKGROUND_CHECKPOINT", True):
        return
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        return
    from gevent import monkey

    start_thread = monkey.get_original("_thread", "start_new_thread")
    sleep = monkey.get_original("time", "sleep")
    _state["pid"] = os.getpid()
    _state["generation"] += 1
    start_thread(_loop, (path, sleep, _state["generation"]))


def stop():
    """End this process's checkpointer (tests); its connections made from now on checkpoint by themselves."""
    _state["pid"] = None
    _state["generation"] += 1


def _loop(path, sleep, generation):
    connection = None
    while _state["generation"] == generation:
        sleep(INTERVAL)
        try:
            if connection is None:
                connection = sqlite3.connect(path, timeout=1, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:
            log.warning("background WAL checkpoint failed: %s", error)
            if connection is not None:
                connection.close()
                connection = None
