from flask import Blueprint

bp = Blueprint("redemptions", __name__)

from oneapi.redemptions import routes  # noqa: E402,F401
