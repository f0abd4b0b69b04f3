"""Password login and logout (spec §3.4), as JSON for scripts and the SPA, and as a page."""

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import or_, select

from oneapi.auth import bp
from oneapi.auth.guards import STAMP
from oneapi.envelope import ApiError, fail, field, json_object, ok
from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import STATUS_ENABLED, check_password
from oneapi.ratelimit import critical, critical_posts
from oneapi.services import options

# A real bcrypt hash of a random string: unknown users cost as much time as wrong passwords.
_DUMMY_HASH = "$2b$12$RGleqgpk1gNhhMA3lwpTO.lJj/eoDKYK79ns6bXRs/UmuNVrOAklC"
BAD_CREDENTIALS = "wrong username or password, or the user is disabled"


def authenticate(username, password):
    if not options.current().bool("PasswordLoginEnabled"):
        raise ApiError("password login has been turned off by the administrator")
    user = db.session.scalar(select(User).where(or_(User.username == username, User.email == username))
                             .where(User.username != "").order_by(User.id))
    if user is None or not user.has_password:  # the same bcrypt cost: nobody learns which names exist
        check_password(_DUMMY_HASH, password)
        raise ApiError(BAD_CREDENTIALS)
    if not user.check_password(password) or user.status != STATUS_ENABLED:
        raise ApiError(BAD_CREDENTIALS)
    return user


def start_session(user):
    session.clear()
    session.permanent = True
    session[STAMP] = user.session_stamp()
    login_user(user)


@bp.post("/api/user/login")
@critical
def login():
    body = json_object()
    username = (field(body, "username", str, default="") or "").strip()
    password = field(body, "password", str, default="")
    if not username or not password:
        return fail("username and password are required", 400)
    user = authenticate(username, password)
    start_session(user)
    return ok({"id": user.id, "username": user.username, "display_name": user.display_name,
               "role": user.role, "status": user.status})


@bp.get("/api/user/logout")
def logout():
    logout_user()
    session.clear()
    return ok()


@bp.route("/login", methods=["GET", "POST"])
@critical_posts
def login_page():
    if request.method == "POST":
        try:
            user = authenticate(request.form.get("username", "").strip(), request.form.get("password", ""))
        except ApiError as error:
            flash(error.message, "error")
            return render_template("auth/login.html"), 401
        start_session(user)
        if user.must_change_password:
            return redirect(url_for("web.password"))
        return redirect(url_for("web.home"))
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    return render_template("auth/login.html")


@bp.post("/logout")
def logout_page():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login_page"))
