"""CSRF for posted HTML forms: a random token per session, sent back in a hidden field and checked before
every state-changing request that is not the JSON API. The pages call /api with fetch and
Content-Type: application/json, which a cross-site form cannot send (and the cookie is SameSite=Lax)."""

import hmac
import secrets

from flask import abort, request, session
from markupsafe import Markup

from oneapi.web import bp

FIELD = "csrf_token"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_NOT_FORMS = ("/api/", "/v1/", "/dashboard/")


def token():
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


@bp.app_template_global()
def csrf_field():
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, token())


@bp.before_app_request
def check_csrf():
    if request.method in _SAFE_METHODS or request.path.startswith(_NOT_FORMS):
        return None
    expected = session.get(FIELD, "")
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "This form has expired or did not come from this site. Reload the page and try again.")
    return None
