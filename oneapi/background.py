"""Work a request starts and does not wait for (reset mail, a test of all channels, a settlement retry): a
daemon thread (a greenlet under gunicorn's gevent workers), remembered so that `wait()` can let it finish
before what comes next (the test suite empties the tables between tests; a clean shutdown)."""

import threading
import time

_threads, _lock = [], threading.Lock()


def start(target, *args, name="oneapi-background"):
    thread = threading.Thread(target=target, args=args, daemon=True, name=name)
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()
    return thread


def wait(timeout=10.0):
    """Wait up to `timeout` seconds in all for the work in flight."""
    deadline = time.monotonic() + timeout
    with _lock:
        threads = list(_threads)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
