from flask import Blueprint

bp = Blueprint("users", __name__)

from oneapi.users import routes  # noqa: E402,F401
