from flask import Blueprint

bp = Blueprint("logs", __name__)

from oneapi.logs import routes  # noqa: E402,F401
