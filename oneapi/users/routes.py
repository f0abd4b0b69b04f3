"""The caller's own account: read it, change it, and make a management access token."""

from sqlalchemy import select

from oneapi.auth.guards import caller, renew_session, require_role
from oneapi.config import DEFAULT_ROOT_PASSWORD
from oneapi.envelope import ApiError, fail, field, json_object, ok
from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import ROLE_COMMON
from oneapi.services import accounts, cache
from oneapi.users import bp

PASSWORD_MIN, PASSWORD_MAX = 8, 64


def validate_password(password):
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ApiError(f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if len(password.encode()) > 72:
        raise ApiError("password must be at most 72 bytes in UTF-8")
    if password == DEFAULT_ROOT_PASSWORD:
        raise ApiError("that is the well-known default password; choose another")


@bp.get("/api/user/self")
@require_role(ROLE_COMMON)
def get_self():
    return ok(caller().to_dict())


@bp.put("/api/user/self")
@require_role(ROLE_COMMON)
def update_self():
    user = caller()
    body = json_object()
    username = field(body, "username", str)
    display_name = field(body, "display_name", str)
    password = field(body, "password", str)
    if username is not None and username != user.username:
        username = username.strip()
        if not 1 <= len(username) <= 12:
            raise ApiError("username must be 1 to 12 characters")
        if username.startswith("deleted_"):
            raise ApiError("usernames starting with deleted_ are reserved")
        if db.session.scalar(select(User.id).where(User.username == username, User.id != user.id)):
            raise ApiError("that username is taken")
        user.username = username
    if display_name is not None:
        if len(display_name) > 20:
            raise ApiError("display_name must be at most 20 characters")
        user.display_name = display_name
    if password:
        validate_password(password)
        user.set_password(password)
        user.must_change_password = False
        renew_session(user)
    cache.publish(accounts.user_topic(user.id))
    db.session.commit()
    return ok()


@bp.post("/api/user/token")
@require_role(ROLE_COMMON)
def new_access_token():
    """A new management access token, shown once. The original does this on GET; we never change state on GET."""
    user = caller()
    token = user.new_access_token()
    db.session.commit()
    return ok(token)


@bp.get("/api/user/token")
def access_token_on_get():
    return fail("generating an access token changes state: use POST /api/user/token", 405)
