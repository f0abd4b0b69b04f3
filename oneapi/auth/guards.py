"""Who is calling /api: a session cookie or `Authorization: <access token>`, role re-read every time."""

from functools import wraps

from flask import g, request, session
from flask_login import current_user, logout_user
from sqlalchemy import select

from oneapi.envelope import ApiError
from oneapi.extensions import db, login_manager
from oneapi.models import User
from oneapi.models.user import STATUS_ENABLED, hash_secret

STAMP = "_stamp"


@login_manager.user_loader
def load_user(user_id):
    """The session's user, re-read on every request, and only while its password, role and status are the
    ones it logged in with: a password change, a demotion or a disable ends the user's other sessions."""
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    if user is None:
        return None
    if session.get(STAMP) != user.session_stamp():
        if user.status != STATUS_ENABLED:
            return user  # caller() answers "this user is disabled" (403) and ends the session
        session.clear()
        return None
    return user


def renew_session(user):
    """After the caller changed their own password: this session stays, every other one ends."""
    if session.get(STAMP):
        session[STAMP] = user.session_stamp()


@login_manager.request_loader
def load_user_from_header(req):
    header = req.headers.get("Authorization", "").strip()
    token = header.removeprefix("Bearer ").strip()
    if not token:
        return None
    g.access_token_used = True
    return db.session.scalar(select(User).where(User.access_token == hash_secret(token)))


def caller():
    """The authenticated, enabled user, or an ApiError with the original's messages and statuses."""
    if not current_user.is_authenticated:
        if g.get("access_token_used"):
            raise ApiError("the access token is invalid")
        raise ApiError("not logged in and no access token given", 401)
    if current_user.status != STATUS_ENABLED:
        logout_user()
        raise ApiError("this user is disabled", 403)
    return current_user


def require_role(role):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = caller()
            if user.role < role:
                raise ApiError("permission denied", 403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def access_token_request():
    return bool(request.headers.get("Authorization"))
