"""Extensions live at module level and are bound to the app in create_app(). Flask-Migrate is not here: it
brings Alembic (~10 MB per process), which only the processes that migrate need (create_app(migrations=...))."""

from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
