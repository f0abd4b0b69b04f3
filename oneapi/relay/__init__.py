"""The OpenAI-compatible relay under /v1 (spec §1.4)."""

from flask import Blueprint

bp = Blueprint("relay", __name__)

from oneapi.relay import dashboard, views  # noqa: E402,F401
