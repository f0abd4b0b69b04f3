"""create_app(): settings, extensions, blueprints, error handlers."""

import os

from flask import Flask

from oneapi import config as config_module
from oneapi.extensions import db, login_manager

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(overrides=None, *, port=None, log_dir=None, migrations=True):
    app = Flask(__name__, template_folder=os.path.join(ROOT_DIR, "templates"),
                static_folder=os.path.join(ROOT_DIR, "static"))
    app.config.update(config_module.load(port=port, log_dir=log_dir))
    if overrides:
        app.config.update(overrides)
        if "SQL_DSN" in overrides or "SQLITE_PATH" in overrides:
            app.config["SQLALCHEMY_DATABASE_URI"] = config_module.database_url(
                app.config["SQL_DSN"], app.config["SQLITE_PATH"])

    from oneapi import logsetup, plumbing

    logsetup.configure(app)
    plumbing.configure_database(app)
    plumbing.configure_sessions(app)

    db.init_app(app)
    from oneapi.services import logbook

    logbook.attach(app)  # the Log model's bind: the log database (LOG_SQL_DSN), or the main engine
    if migrations:  # `flask db ...`, setup, app.py; gunicorn's workers serve only (the master migrated)
        from flask_migrate import Migrate

        Migrate(app, db, directory=os.path.join(ROOT_DIR, "migrations"))
    login_manager.init_app(app)

    from flask_sqlalchemy.session import Session

    from oneapi.services import broadcast

    broadcast.configure(app, Session)

    from oneapi.services import tokenizer

    tokenizer.configure(app.config["TIKTOKEN_CACHE_DIR"] or os.path.join(app.config["DATA_DIR"], "tiktoken"))

    from oneapi.auth import bp as auth_bp
    from oneapi.channels import bp as channels_bp
    from oneapi.logs import bp as logs_bp
    from oneapi.openapi import bp as openapi_bp
    from oneapi.options import bp as options_bp
    from oneapi.redemptions import bp as redemptions_bp
    from oneapi.relay import bp as relay_bp
    from oneapi.tokens import bp as tokens_bp
    from oneapi.users import bp as users_bp
    from oneapi.web import bp as web_bp

    for blueprint in (auth_bp, users_bp, tokens_bp, channels_bp, redemptions_bp, logs_bp, options_bp, relay_bp,
                      web_bp, openapi_bp):
        app.register_blueprint(blueprint)

    plumbing.register_hooks(app)

    from oneapi import proxies, ratelimit

    ratelimit.init_app(app)
    app.wsgi_app = proxies.TrustedProxies(app.wsgi_app, proxies.parse_networks(app.config["TRUSTED_PROXIES"]))

    from oneapi import cli

    cli.register(app)
    return app
