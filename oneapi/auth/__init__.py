from flask import Blueprint

bp = Blueprint("auth", __name__)

from oneapi.auth import oauth, oauth_pages, routes  # noqa: E402,F401, I001
from oneapi.auth import account_pages, accounts  # noqa: E402,F401, I001
