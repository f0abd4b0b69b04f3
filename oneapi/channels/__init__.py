from flask import Blueprint

bp = Blueprint("channels", __name__)

from oneapi.channels import routes  # noqa: E402,F401
