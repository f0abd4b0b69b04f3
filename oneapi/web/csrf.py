"""CSRF for posted HTML forms: a random token per session, sent back in a hidden field and checked before
every state-changing request that is not the JSON API. The pages call /api with fetch, Content-Type:
application/json and X-Requested-With, which a cross-site form cannot send (and the cookie is SameSite=Lax);
every cookie-authenticated POST to /api must carry one of the two."""

import hmac
import secrets

from flask import abort, request, session
from markupsafe import Markup

from oneapi.envelope import ApiError
from oneapi.web import bp

FIELD = "csrf_token"
XHR = "X-Requested-With"
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
    if request.method == "POST" and request.path.startswith("/api/"):
        return _check_api_post()
    if request.method in _SAFE_METHODS or request.path.startswith(_NOT_FORMS):
        return None
    expected = session.get(FIELD, "")
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "This form has expired or did not come from this site. Reload the page and try again.")
    return None


def _check_api_post():
    """A POST to /api that the browser sends with the session cookie must prove it came from a script of this
    site: a JSON body (json_object) or an X-Requested-With header, neither of which a form or a no-cors fetch
    of another site can send. Body-less POSTs (new access token, new API key) need the header. Requests
    authenticated by an access token carry no cookie authority and are exempt."""
    if "_user_id" not in session:  # nobody logged in: no cookie authority to borrow (login itself is JSON)
        return None
    if request.headers.get("Authorization") or request.is_json or request.headers.get(XHR):
        return None
    if not request.content_length and not request.content_type:
        raise ApiError(f"send this request from a script with the header {XHR}: XMLHttpRequest, or use an "
                       "access token", 415)
    raise ApiError("send the body with Content-Type: application/json", 415)
