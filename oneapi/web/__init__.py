from flask import Blueprint

bp = Blueprint("web", __name__)

from oneapi.web import account, admin_pages, csrf, routes, settings_pages, site  # noqa: E402,F401
