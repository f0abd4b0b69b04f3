"""flask commands: `flask --app app setup` (migrate + first root) and `reset-password`."""

import click
from sqlalchemy import select

from oneapi.extensions import db


def register(app):
    @app.cli.command("setup")
    def setup():
        """Apply the migrations (with LOG_SQL_DSN, also make the log database's table) and create root on an
        empty database."""
        from oneapi import bootstrap

        bootstrap.prepare()
        click.echo("database ready")

    @app.cli.command("reset-password")
    @click.argument("username")
    @click.password_option()
    def reset_password(username, password):
        """Set a user's password (for a lost root password)."""
        from oneapi.models import User
        from oneapi.services import accounts, cache
        from oneapi.users.routes import validate_password

        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"no user named {username!r}")
        try:
            validate_password(password)
        except Exception as error:
            raise click.ClickException(str(error)) from None
        user.set_password(password)
        user.must_change_password = False
        cache.publish(accounts.user_topic(user.id))
        db.session.commit()
        click.echo(f"password of {username} changed")
