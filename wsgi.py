"""gunicorn entry: `gunicorn -c gunicorn.conf.py wsgi:app`. Patch first (a no-op under the gevent worker,
needed under any other launcher); skipped under the flask CLI, which must not be monkey-patched."""

import gc
import os

if not os.environ.get("FLASK_RUN_FROM_CLI"):
    from gevent import monkey

    monkey.patch_all()

from oneapi import create_app  # noqa: E402

app = create_app(migrations=False)  # gunicorn's on_starting ran `flask setup` (migrations) before the workers

# The ~90,000 objects of the loaded app live as long as the worker: out of the collector's sight, a full
# collection takes microseconds instead of ~20 ms during which every stream of the worker waits.
gc.collect()
gc.freeze()
