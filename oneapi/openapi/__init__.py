"""The management API described as OpenAPI 3.0: GET /api/openapi.json (public)."""

from functools import lru_cache

from flask import Blueprint, current_app, jsonify

bp = Blueprint("openapi", __name__)


@lru_cache(maxsize=4)
def _document(version):
    from oneapi.openapi.document import build

    return build(version)


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(_document(current_app.config["VERSION"]))
