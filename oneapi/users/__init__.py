from flask import Blueprint

bp = Blueprint("users", __name__)

from oneapi.users import admin, routes  # noqa: E402,F401
