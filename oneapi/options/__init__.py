from flask import Blueprint

bp = Blueprint("options", __name__)

from oneapi.options import routes  # noqa: E402,F401
