"""Log lines to stdout and, with --log-dir, to oneapi-YYYYMMDD.log (or oneapi.log, ONLY_ONE_LOG_FILE)."""

import logging
import os
import time

from flask import g, has_request_context


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure(app):
    root = logging.getLogger()
    if getattr(root, "_oneapi_configured", False):
        return
    root._oneapi_configured = True
    level = logging.DEBUG if app.config["DEBUG"] else logging.INFO
    formatter = logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    handlers = [logging.StreamHandler()]
    if app.config["LOG_DIR"]:
        os.makedirs(app.config["LOG_DIR"], exist_ok=True)
        name = "oneapi.log" if app.config["ONLY_ONE_LOG_FILE"] else time.strftime("oneapi-%Y%m%d.log")
        handlers.append(logging.FileHandler(os.path.join(app.config["LOG_DIR"], name)))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if app.config["DEBUG_SQL"] else logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
